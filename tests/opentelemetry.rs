//! Feature `opentelemetry`: variables across services in the W3C `baggage` header, the trace
//! context with them, values back over the wire, interop with `opentelemetry_sdk`'s own
//! propagators, all through real HTTP on loopback; and the codec against random bytes.

use std::net::SocketAddr;

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::get;
use contextvars::opentelemetry::{
    BACK_HEADER, Baggage, FORWARDED, IncomingLayer, MAX_BYTES, MAX_ENTRIES, OutgoingLayer, TRACE_CONTEXT,
};
use contextvars::{context_var, sync_endpoint};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use opentelemetry::baggage::BaggageExt;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use proptest::prelude::*;
use tower::{Layer, Service, ServiceExt, service_fn};

#[context_var(baggage = "user.id")]
static USER: Option<String>;

fn sum(base: &u64, parent: &u64, child: &u64) -> u64 {
    parent + child - base
}

#[context_var(baggage = "db.rows", back_from_remote = true, merge = sum)]
static ROWS: u64;

#[context_var(baggage = "cache.hit", back_from_remote = true)]
static CACHE_HIT: bool;

#[context_var(baggage = "tenant")]
static TENANT: String = "public".to_string();

/// The user as the handler sees it, with the forwarded `other` entry and the trace id.
async fn whoami() -> String {
    let trace = TRACE_CONTEXT.get();
    let trace_id = trace.span().span_context().trace_id();
    format!(
        "{}|{}|{}|{}",
        USER.get().unwrap_or_default(),
        TENANT.get(),
        FORWARDED.get().get("other").unwrap_or("-"),
        if trace_id == TraceId::INVALID { "-".to_string() } else { trace_id.to_string() },
    )
}

/// What the OpenTelemetry API itself sees as the current trace, in the handler's future and
/// in a blocking thread started from it (which attaches nothing itself).
async fn otel_current() -> String {
    let here = opentelemetry::Context::current().span().span_context().trace_id();
    let blocking =
        contextvars::spawn_blocking(|| opentelemetry::Context::current().span().span_context().trace_id())
            .await
            .unwrap();
    format!("{here}|{blocking}")
}

/// Blocking work that counts rows: what it sets goes back to the caller.
#[sync_endpoint]
fn query() -> String {
    ROWS.set(ROWS.get() + 3);
    CACHE_HIT.set(true);
    format!("rows for {}", USER.get().unwrap_or_default())
}

/// A server that tries to set variables the caller never opened to it.
async fn hostile() -> ([(&'static str, &'static str); 1], &'static str) {
    ([(BACK_HEADER, "user.id=mallory,tenant=evil,unknown=1,db.rows=5")], "hostile")
}

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn server() -> Router {
    Router::new()
        .route("/whoami", get(whoami))
        .route("/query", get(query))
        .route("/hostile", get(hostile))
        .route("/otel", get(otel_current))
        .layer(IncomingLayer::new())
}

/// A hyper client, one connection per request, as a tower service.
fn transport(
    addr: SocketAddr,
) -> impl Service<http::Request<Empty<Bytes>>, Response = http::Response<String>, Error = hyper::Error> + Clone
{
    service_fn(move |request: http::Request<Empty<Bytes>>| async move {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        let response = sender.send_request(request).await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(http::Response::from_parts(parts, String::from_utf8(body.to_vec()).unwrap()))
    })
}

fn request(path: &str) -> http::Request<Empty<Bytes>> {
    http::Request::get(path).body(Empty::new()).unwrap()
}

async fn call(
    client: &mut impl Service<
        http::Request<Empty<Bytes>>,
        Response = http::Response<String>,
        Error = hyper::Error,
    >,
    request: http::Request<Empty<Bytes>>,
) -> http::Response<String> {
    client.ready().await.unwrap().call(request).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_variables_travel_to_the_server_and_undeclared_entries_are_forwarded() {
    let addr = serve(server()).await;
    let mut client = OutgoingLayer::new().layer(transport(addr));

    USER.set(Some("ada lovelace".into()));
    let reply = call(&mut client, request("/whoami")).await;
    assert_eq!(reply.body(), "ada lovelace|public|-|-");

    // An entry no variable declares reaches the handler's FORWARDED, and is sent on.
    let mut request = request("/whoami");
    request.headers_mut().insert("baggage", "other=1,user.id=bob".parse().unwrap());
    let reply = call(&mut transport(addr), request).await;
    assert_eq!(reply.body(), "bob|public|1|-");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_request_does_not_see_another_requests_baggage() {
    let addr = serve(server()).await;
    let mut with = request("/whoami");
    with.headers_mut().insert("baggage", "user.id=ada,tenant=acme".parse().unwrap());
    assert_eq!(call(&mut transport(addr), with).await.body(), "ada|acme|-|-");
    assert_eq!(call(&mut transport(addr), request("/whoami")).await.body(), "|public|-|-");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_backend_changes_comes_back_and_merges_like_a_join() {
    let addr = serve(server()).await;
    let mut client = OutgoingLayer::new().layer(transport(addr));
    USER.set(Some("ada".into()));
    ROWS.set(10);

    // The request leaves with rows=10; the backend adds 3 (13) while the caller counts 10
    // more (20): the merge of `ROWS` keeps both, 20 + 13 - 10.
    let response = client.ready().await.unwrap().call(request("/query"));
    ROWS.set(20);
    let reply = response.await.unwrap();
    assert_eq!(reply.body(), "rows for ada");
    assert_eq!(reply.headers()[BACK_HEADER], "cache.hit=true,db.rows=13");
    assert_eq!(ROWS.get(), 23);
    assert!(CACHE_HIT.get());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_comes_back_when_the_handler_changed_nothing() {
    let addr = serve(server()).await;
    let mut client = OutgoingLayer::new().layer(transport(addr));
    ROWS.set(4);
    let reply = call(&mut client, request("/whoami")).await;
    assert!(reply.headers().get(BACK_HEADER).is_none());
    assert_eq!(ROWS.get(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_service_cannot_set_variables_not_opened_to_it() {
    let addr = serve(server()).await;
    let mut client = OutgoingLayer::new().layer(transport(addr));
    USER.set(Some("ada".into()));
    let reply = call(&mut client, request("/hostile")).await;
    assert_eq!(reply.body(), "hostile");
    assert_eq!(USER.get().as_deref(), Some("ada"));
    assert_eq!(TENANT.get(), "public");
    assert_eq!(ROWS.get(), 5, "db.rows is declared back_from_remote");
}

struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|name| name.as_str()).collect()
    }
}

struct HeadersMut<'a>(&'a mut HeaderMap);

impl Injector for HeadersMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(http::HeaderName::try_from(key).unwrap(), value.parse().unwrap());
    }
}

fn remote_span() -> SpanContext {
    SpanContext::new(
        TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
        SpanId::from_hex("00f067aa0ba902b7").unwrap(),
        TraceFlags::SAMPLED,
        true,
        TraceState::from_key_value([("vendor", "opaque")]).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_reads_what_opentelemetry_sdk_propagators_write() {
    let addr = serve(server()).await;
    let sent = opentelemetry::Context::new().with_remote_span_context(remote_span()).with_baggage([
        opentelemetry::KeyValue::new("user.id", "ada lovelace, née Byron"),
        opentelemetry::KeyValue::new("other", "x;y"),
    ]);
    let mut request = request("/whoami");
    BaggagePropagator::new().inject_context(&sent, &mut HeadersMut(request.headers_mut()));
    TraceContextPropagator::new().inject_context(&sent, &mut HeadersMut(request.headers_mut()));
    let reply = call(&mut transport(addr), request).await;
    assert_eq!(reply.body(), "ada lovelace, née Byron|public|x;y|4bf92f3577b34da6a3ce929d0e0e4736");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_opentelemetry_api_sees_the_incoming_trace_in_the_handler() {
    let addr = serve(server()).await;
    let mut request = request("/otel");
    let sent = opentelemetry::Context::new().with_remote_span_context(remote_span());
    TraceContextPropagator::new().inject_context(&sent, &mut HeadersMut(request.headers_mut()));
    let reply = call(&mut transport(addr), request).await;
    assert_eq!(reply.body(), "4bf92f3577b34da6a3ce929d0e0e4736|4bf92f3577b34da6a3ce929d0e0e4736");
    // And without a trace, no trace.
    let reply = call(&mut transport(addr), self::request("/otel")).await;
    assert_eq!(*reply.body(), format!("{0}|{0}", TraceId::INVALID));
}

/// A server without the layer: reads its request with `opentelemetry_sdk`'s propagators.
async fn sdk_reader(headers: HeaderMap) -> String {
    let received =
        BaggagePropagator::new().extract_with_context(&opentelemetry::Context::new(), &Headers(&headers));
    let received = TraceContextPropagator::new().extract_with_context(&received, &Headers(&headers));
    let span = received.span().span_context().clone();
    let baggage = received.baggage();
    let mut entries: Vec<String> = baggage.iter().map(|(key, (value, _))| format!("{key}={value}")).collect();
    entries.sort();
    format!("{}|{}|{}", entries.join(","), span.trace_id(), span.trace_state().header())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opentelemetry_sdk_propagators_read_what_the_client_writes() {
    let addr = serve(Router::new().route("/", get(sdk_reader))).await;
    let mut client = OutgoingLayer::new().layer(transport(addr));
    USER.set(Some("ada lovelace, née Byron".into()));
    TENANT.set("acme".into());
    TRACE_CONTEXT.set(opentelemetry::Context::new().with_remote_span_context(remote_span()));
    FORWARDED.set(std::sync::Arc::new(Baggage::parse([&b"other=x%3By"[..]])));
    let reply = call(&mut client, request("/")).await;
    assert_eq!(
        reply.body(),
        "other=x;y,tenant=acme,user.id=ada lovelace, née Byron|4bf92f3577b34da6a3ce929d0e0e4736|vendor=opaque"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trace_context_follows_spawned_tasks_and_threads() {
    let addr = serve(server()).await;
    TRACE_CONTEXT.set(opentelemetry::Context::new().with_remote_span_context(remote_span()));
    // Headers written in a blocking thread started from a task carry the trace context.
    let headers = contextvars::spawn(async {
        contextvars::spawn_blocking(|| {
            let mut headers = HeaderMap::new();
            contextvars::opentelemetry::inject(&mut headers);
            headers
        })
        .await
        .unwrap()
    })
    .await
    .unwrap();
    let mut request = request("/whoami");
    *request.headers_mut() = headers;
    let reply = call(&mut transport(addr), request).await;
    assert!(reply.body().ends_with("|4bf92f3577b34da6a3ce929d0e0e4736"), "{}", reply.body());
}

#[test]
fn an_oversized_header_is_cut_to_the_limits_never_refused() {
    let header: Vec<String> = (0..200).map(|i| format!("k{i}={}", "v".repeat(100))).collect();
    let baggage = Baggage::parse([header.join(",").as_bytes()]);
    assert!(baggage.len() <= MAX_ENTRIES && !baggage.is_empty());
    assert!(baggage.to_header_string().len() <= MAX_BYTES);
}

#[test]
fn a_value_that_is_not_of_the_variables_type_is_dropped() {
    let mut headers = HeaderMap::new();
    headers.insert("baggage", "db.rows=many,user.id=ada".parse().unwrap());
    let mut context = contextvars::Context::new();
    context.run(|| contextvars::opentelemetry::extract(&headers));
    assert!(!context.contains(&ROWS));
    assert_eq!(context.get(&USER).as_deref(), Some("ada"));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Whatever bytes arrive: no panic, the limits hold, the output is visible ASCII (no CR
    /// or LF can be injected) and reads back to the same entries.
    #[test]
    fn any_header_bytes_parse_within_limits_and_write_back_safely(
        headers in proptest::collection::vec(
            proptest::collection::vec(
                prop_oneof![
                    any::<u8>(),
                    Just(b','), Just(b'='), Just(b';'), Just(b'%'), Just(b' '), Just(b'a'), Just(b'\r'), Just(b'\n'),
                ],
                0..200,
            ),
            0..4,
        )
    ) {
        let baggage = Baggage::parse(headers.iter().map(Vec::as_slice));
        prop_assert!(baggage.len() <= MAX_ENTRIES);
        let text = baggage.to_header_string();
        prop_assert!(text.len() <= MAX_BYTES);
        prop_assert!(text.bytes().all(|byte| (0x21..0x7f).contains(&byte)), "{text:?}");
        prop_assert!(http::HeaderValue::from_str(&text).is_ok());
        prop_assert_eq!(Baggage::parse([text.as_bytes()]), baggage);
    }

    /// Any key and value a program inserts reads back the same after the round trip.
    #[test]
    fn inserted_text_round_trips(key in "[a-z0-9._*-]{1,16}", value in any::<String>()) {
        let mut baggage = Baggage::new();
        baggage.insert(&key, &value).unwrap();
        let text = baggage.to_header_string();
        prop_assert!(text.bytes().all(|byte| (0x21..0x7f).contains(&byte)));
        let read = Baggage::parse([text.as_bytes()]);
        prop_assert_eq!(read.get(&key), Some(value.as_str()));
    }
}

/// A type of the program's own, opted in through the trait.
#[derive(Clone, Debug, PartialEq)]
enum Plan {
    Free,
    Paid,
}

impl contextvars::opentelemetry::BaggageValue for Plan {
    fn to_baggage(&self) -> Option<String> {
        Some(match self {
            Plan::Free => "free".into(),
            Plan::Paid => "paid".into(),
        })
    }
    fn from_baggage(text: &str) -> Option<Plan> {
        match text {
            "free" => Some(Plan::Free),
            "paid" => Some(Plan::Paid),
            _ => None,
        }
    }
}

/// Declared with the builder, registered by hand.
static PLAN: contextvars::ContextVar<Plan> =
    contextvars::ContextVar::new("PLAN", || Plan::Free).baggage("plan");
contextvars::register_baggage!(PLAN);

async fn plan() -> String {
    format!("{:?}", PLAN.get())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_builder_declared_variable_of_a_custom_type_travels() {
    let addr = serve(Router::new().route("/plan", get(plan)).layer(IncomingLayer::new())).await;
    let mut client = OutgoingLayer::new().layer(transport(addr));
    assert_eq!(call(&mut client, request("/plan")).await.body(), "Free");
    PLAN.set(Plan::Paid);
    assert_eq!(call(&mut client, request("/plan")).await.body(), "Paid");
    let mut bad = request("/plan");
    bad.headers_mut().insert("baggage", "plan=gold".parse().unwrap());
    assert_eq!(call(&mut transport(addr), bad).await.body(), "Free", "a value not of the type is dropped");
}

#[test]
fn forwarded_entries_at_the_limits_never_crowd_out_the_services_own_variables() {
    // An upstream caller sends the most the specification lets through, all undeclared.
    let many: Vec<String> = (0..MAX_ENTRIES).map(|i| format!("junk{i}=x")).collect();
    let long = format!("junk={}", "x".repeat(MAX_BYTES - 10));
    for upstream in [many.join(","), long] {
        let mut headers = HeaderMap::new();
        headers.insert("baggage", upstream.parse().unwrap());
        contextvars::Context::new().run(|| {
            contextvars::opentelemetry::extract(&headers);
            USER.set(Some("ada".into()));
            ROWS.set(10);
            let mut out = HeaderMap::new();
            contextvars::opentelemetry::inject(&mut out);
            let sent = Baggage::from_headers(&out);
            assert_eq!((sent.get("user.id"), sent.get("db.rows")), (Some("ada"), Some("10")));
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_layers_around_one_call_merge_its_response_once() {
    let addr = serve(server()).await;
    let mut client = OutgoingLayer::new().layer(OutgoingLayer::new().layer(transport(addr)));
    ROWS.set(10);
    let reply = call(&mut client, request("/query")).await;
    assert_eq!(reply.headers()[BACK_HEADER], "cache.hit=true,db.rows=13");
    assert_eq!(ROWS.get(), 13);
}
