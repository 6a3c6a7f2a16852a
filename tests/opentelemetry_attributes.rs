//! `ContextAttributes`: every span `opentelemetry_sdk` starts gets the chosen context
//! variables as typed attributes, read where it starts: in the request (set from its
//! `baggage` header), in a child task or thread, and nothing for a variable not set.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use contextvars::opentelemetry::{ContextAttributes, IncomingLayer};
use contextvars::{ContextVar, context_var};
use opentelemetry::trace::{Tracer, TracerProvider};
use opentelemetry::{Key, Value};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, Span, SpanData, SpanProcessor};
use tower::{Layer, ServiceExt, service_fn};

#[context_var(name = "user.id", baggage = "user.id")]
static USER: Option<String>;
static ROWS: ContextVar<u64> = ContextVar::new("db.rows", || 0);
static CACHED: ContextVar<bool> = ContextVar::new("cache.hit", || false);
static RATIO: ContextVar<f64> = ContextVar::new("ratio", || 0.0);
static TIMEOUT: ContextVar<Duration> = ContextVar::new("timeout", Duration::default);

/// Keeps every span that ended, as an exporter would get it.
#[derive(Clone, Debug, Default)]
struct Ended(Arc<Mutex<Vec<SpanData>>>);

impl SpanProcessor for Ended {
    fn on_start(&self, _span: &mut Span, _cx: &opentelemetry::Context) {}
    fn on_end(&self, span: SpanData) {
        self.0.lock().unwrap().push(span);
    }
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }
    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

impl Ended {
    /// The attributes of the span named `name`.
    fn attributes(&self, name: &str) -> Vec<(Key, Value)> {
        let spans = self.0.lock().unwrap();
        let span = spans.iter().find(|span| span.name == name).unwrap_or_else(|| panic!("no span {name}"));
        span.attributes.iter().map(|kv| (kv.key.clone(), kv.value.clone())).collect()
    }
}

fn provider() -> (SdkTracerProvider, Ended) {
    let ended = Ended::default();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(ContextAttributes::new(&[&USER, &ROWS, &CACHED, &RATIO, &TIMEOUT]))
        .with_span_processor(ended.clone())
        .build();
    (provider, ended)
}

fn attribute(key: &str, value: impl Into<Value>) -> (Key, Value) {
    (Key::from(key.to_string()), value.into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_get_the_variables_of_the_context_they_start_in() {
    let (provider, ended) = provider();
    let tracer = provider.tracer("test");
    USER.set(Some("ada".into()));
    ROWS.set(u64::MAX);
    RATIO.set(0.5);
    TIMEOUT.set(Duration::from_millis(1500));
    tracer.in_span("here", |_| {});
    let child_tracer = provider.tracer("test");
    contextvars::spawn_blocking(move || {
        CACHED.set(true);
        USER.set(None);
        child_tracer.in_span("child", |_| {});
    })
    .await
    .unwrap();

    assert_eq!(
        ended.attributes("here"),
        [
            attribute("user.id", "ada"),
            attribute("db.rows", u64::MAX.to_string()), // past i64: as text
            attribute("ratio", 0.5),
            attribute("timeout", "1.5s"), // no attribute type: its `Debug` text
        ]
    );
    // The child's own values; `None` is left out, like a variable not set.
    assert_eq!(
        ended.attributes("child"),
        [
            attribute("db.rows", u64::MAX.to_string()),
            attribute("cache.hit", true),
            attribute("ratio", 0.5),
            attribute("timeout", "1.5s"),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_span_started_in_a_request_gets_the_values_its_headers_set() {
    let (provider, ended) = provider();
    let tracer = provider.tracer("test");
    let handler = service_fn(move |_: http::Request<()>| {
        tracer.in_span("handler", |_| {});
        ROWS.set(3);
        async { Ok::<_, std::convert::Infallible>(http::Response::new(())) }
    });
    let service = IncomingLayer::new().layer(handler);
    let request = http::Request::get("/").header("baggage", "user.id=grace").body(()).unwrap();
    service.oneshot(request).await.unwrap();
    assert_eq!(ended.attributes("handler"), [attribute("user.id", "grace")]);
    assert!(USER.get().is_none()); // the request's context was its own
}

/// The same through real HTTP on loopback: an axum server behind `IncomingLayer`, a handler
/// that starts a span, a client that sends `baggage`; two requests, each its own values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_span_started_in_a_handler_over_loopback_gets_its_requests_values() {
    use axum::{Router, routing::get};
    use http_body_util::{BodyExt, Empty};
    use hyper::body::Bytes;

    let (provider, ended) = provider();
    let tracer = Arc::new(provider.tracer("test"));
    let handler = move || {
        let tracer = Arc::clone(&tracer);
        async move {
            ROWS.set(ROWS.get() + 1);
            tracer.in_span("handler", |_| {});
            "ok"
        }
    };
    let app = Router::new().route("/", get(handler)).layer(IncomingLayer::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    for user in ["ada", "grace"] {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.unwrap();
        tokio::spawn(connection);
        let request = http::Request::get("/")
            .header("host", "localhost")
            .header("baggage", format!("user.id={user}"))
            .body(Empty::<Bytes>::new())
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.into_body().collect().await.unwrap().to_bytes(), "ok");
    }
    let all: Vec<_> = ended
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|span| span.name == "handler")
        .map(|span| span.attributes.iter().map(|kv| (kv.key.clone(), kv.value.clone())).collect::<Vec<_>>())
        .collect();
    // Each request's own user, and its own count: 1, never the other request's 2.
    assert_eq!(
        all,
        [
            vec![attribute("user.id", "ada"), attribute("db.rows", 1_i64)],
            vec![attribute("user.id", "grace"), attribute("db.rows", 1_i64)],
        ]
    );
}

/// Spans started where no `contextvars` child runs (a plain thread, a plain tokio task on a
/// worker that just ran one that set the variables, the blocking pool after such a closure)
/// start without panicking and get nothing of anyone else's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_started_outside_any_context_get_no_foreign_values() {
    let (provider, ended) = provider();
    let tracer = provider.tracer("test");
    let set_all = || {
        USER.set(Some("ada".into()));
        ROWS.set(3);
    };
    for _ in 0..8 {
        contextvars::spawn(async move { set_all() }).await.unwrap();
        contextvars::spawn_blocking(set_all).await.unwrap();
    }
    let plain = tracer.clone();
    std::thread::spawn(move || plain.in_span("plain thread", |_| {})).join().unwrap();
    for index in 0..8 {
        let plain = tracer.clone();
        tokio::spawn(async move { plain.in_span(format!("plain task {index}"), |_| {}) }).await.unwrap();
        let plain = tracer.clone();
        tokio::task::spawn_blocking(move || plain.in_span(format!("plain blocking {index}"), |_| {}))
            .await
            .unwrap();
    }
    let names = ["plain thread".to_string()]
        .into_iter()
        .chain((0..8).flat_map(|index| [format!("plain task {index}"), format!("plain blocking {index}")]));
    for name in names {
        assert_eq!(ended.attributes(&name), [], "{name}");
    }
}

/// A value whose `Debug` starts a span through the global tracer.
#[derive(Clone)]
struct Traced;
impl std::fmt::Debug for Traced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // With an explicit parent: `in_span` would read the current context, which the
        // SDK holds borrowed while it starts the outer span.
        let empty = opentelemetry::Context::new();
        opentelemetry::trace::Span::end(
            &mut opentelemetry::global::tracer("debug").start_with_context("from inside a Debug", &empty),
        );
        f.write_str("traced")
    }
}
static TRACED: ContextVar<Traced> = ContextVar::new("traced", || Traced);

/// A variable whose `Debug` starts a span: that span gets no attributes (else it would
/// start another, until the stack overflows), the outer one gets the value.
#[test]
fn a_value_whose_debug_starts_a_span_is_written_once() {
    let ended = Ended::default();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(ContextAttributes::new(&[&TRACED]))
        .with_span_processor(ended.clone())
        .build();
    opentelemetry::global::set_tracer_provider(provider.clone());
    TRACED.set(Traced);
    provider.tracer("test").in_span("outer", |_| {});
    assert_eq!(ended.attributes("outer"), [attribute("traced", "traced")]);
    assert_eq!(ended.attributes("from inside a Debug"), []);
}
