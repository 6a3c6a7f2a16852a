//! `ContextFields` with a real `tracing_subscriber::fmt` subscriber writing into a buffer:
//! events carry the context variables of the request they were emitted for, also from a
//! blocking-pool worker, with no code at the call sites.

#[path = "../examples/support/client.rs"]
mod client;

use std::net::SocketAddr;
use std::sync::OnceLock;

use axum::Router;
use axum::extract::Request;
use axum::http::HeaderMap;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use contextvars::context_var;
use contextvars::tower::ContextLayer;
use contextvars::tracing::ContextFields;
use tracing_subscriber::fmt::format;

mod support;
use support::LogBuffer;

#[context_var(name = "user")]
static USER: String;

#[context_var(name = "request_id")]
static REQUEST_ID: u64;

/// Every line the subscriber wrote. The subscriber is global (events come from worker
/// threads too), so each test picks out the lines of its own requests.
fn log() -> &'static LogBuffer {
    static LOG: OnceLock<LogBuffer> = OnceLock::new();
    LOG.get_or_init(|| {
        let buffer = LogBuffer::default();
        let writer = buffer.clone();
        tracing_subscriber::fmt()
            .event_format(
                ContextFields::new(&[&USER, &REQUEST_ID]).format(format().without_time().with_target(false)),
            )
            .with_writer(move || writer.clone())
            .init();
        buffer
    })
}

/// The lines that contain `marker`.
fn lines_with(marker: &str) -> Vec<String> {
    log().text().lines().filter(|line| line.contains(marker)).map(str::to_owned).collect()
}

async fn handler(headers: HeaderMap) -> &'static str {
    let user = headers.get("x-user").unwrap().to_str().unwrap().to_owned();
    USER.set(user);
    tracing::info!(step = "handler", "authenticated");
    // A worker on the blocking pool: its events carry the values copied from the request.
    contextvars::spawn_blocking(|| tracing::info!(step = "worker", "report rendered")).await.unwrap();
    "ok"
}

/// Numbers the request, and writes the access log line after the handler.
async fn access_log(request: Request, next: Next) -> Response {
    let id = request.headers().get("x-request-id").unwrap().to_str().unwrap().parse().unwrap();
    REQUEST_ID.set(id);
    let response = next.run(request).await;
    tracing::info!(status = response.status().as_u16(), "access");
    response
}

async fn serve() -> SocketAddr {
    let app = Router::new()
        .route("/", get(handler))
        .layer(middleware::from_fn(access_log))
        .layer(ContextLayer::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// `GET /` as `user` with request id `id`, on a connection of its own.
async fn request(addr: SocketAddr, user: &str, id: u64) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.unwrap();
    tokio::spawn(connection);
    let request = hyper::Request::get("/")
        .header("host", "localhost")
        .header("x-user", user)
        .header("x-request-id", id.to_string())
        .body(http_body_util::Empty::<hyper::body::Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_from_the_handler_a_worker_and_the_middleware_carry_the_request_values() {
    log();
    let addr = serve().await;
    request(addr, "ada", 101).await;

    let lines = lines_with("request_id=101");
    assert_eq!(
        lines,
        [
            r#" INFO authenticated step="handler" user="ada" request_id=101"#,
            r#" INFO report rendered step="worker" user="ada" request_id=101"#,
            r#" INFO access status=200 user="ada" request_id=101"#,
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_log_their_own_values() {
    log();
    let addr = serve().await;
    let mut requests = tokio::task::JoinSet::new();
    for n in 0..6u64 {
        requests.spawn(request(addr, if n % 2 == 0 { "even" } else { "odd" }, 200 + n));
    }
    requests.join_all().await;

    for n in 0..6u64 {
        let user = if n % 2 == 0 { "even" } else { "odd" };
        let lines = lines_with(&format!("request_id={}", 200 + n));
        assert_eq!(lines.len(), 3, "{lines:?}");
        for line in lines {
            assert!(line.ends_with(&format!(r#"user="{user}" request_id={}"#, 200 + n)), "{line}");
        }
    }
}

#[test]
fn variables_that_are_not_set_are_left_out() {
    log();
    tracing::info!(marker = "unset-case", "outside any request");
    REQUEST_ID.set(7);
    tracing::info!(marker = "id-case", "only the id");

    assert_eq!(lines_with("unset-case"), [r#" INFO outside any request marker="unset-case""#]);
    assert_eq!(lines_with("id-case"), [r#" INFO only the id marker="id-case" request_id=7"#]);
}
