//! The two servers the request benches compare: an axum hello-world with an access log,
//! with contextvars (a `ContextLayer`, three variables set per request, the log line read
//! from them) and without (the same log line from local variables).

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use contextvars::ContextVar;
use contextvars::tower::ContextLayer;

static REQUEST_ID: ContextVar<u64> = ContextVar::new("request_id", || 0);
static USER: ContextVar<String> = ContextVar::new("user", String::new);
static HANDLER: ContextVar<&'static str> = ContextVar::new("handler", || "");

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn user_of(request: &Request) -> String {
    request.headers().get("x-user").and_then(|v| v.to_str().ok()).unwrap_or("anonymous").to_owned()
}

/// The access log line; `black_box` stands for the write to a log sink, the same in both.
fn log_line(id: u64, user: &str, handler: &str, status: u16, elapsed: Duration) {
    black_box(format!("id={id} user={user} handler={handler} status={status} took={elapsed:?}"));
}

/// With contextvars: the middleware sets two variables, the handler the third, and the log
/// line is written from what the context holds after the handler.
async fn access_log_contextvars(request: Request, next: Next) -> Response {
    let start = Instant::now();
    REQUEST_ID.set(NEXT_ID.fetch_add(1, Ordering::Relaxed));
    USER.set(user_of(&request));
    let response = next.run(request).await;
    USER.with(|user| {
        log_line(REQUEST_ID.get(), user, HANDLER.get(), response.status().as_u16(), start.elapsed())
    });
    response
}

async fn hello_contextvars() -> &'static str {
    HANDLER.set("hello");
    "hello, world"
}

/// Without: the same work, the values carried in local variables.
async fn access_log_plain(request: Request, next: Next) -> Response {
    let start = Instant::now();
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let user = user_of(&request);
    let response = next.run(request).await;
    log_line(id, &user, "hello", response.status().as_u16(), start.elapsed());
    response
}

async fn hello_plain() -> &'static str {
    "hello, world"
}

/// Iterations of [`busy`]: about as much time as contextvars adds to a request of the plain
/// server in `benches/request.rs` (about 0.6 µs, measured side by side there), which is
/// about 20,000 instructions of this loop against contextvars' 5,100.
const BUSY_ITERATIONS: u64 = 5_000;

/// Work that touches no memory but its stack and no code but its own loop, so that it costs
/// the same with cold caches as with warm ones: what the plain server would pay for
/// contextvars' instructions if they cost over the network what they cost in a hot loop.
fn busy() {
    for i in 0..BUSY_ITERATIONS {
        black_box(i);
    }
}

/// The plain access log with [`busy`] added.
async fn access_log_busy(request: Request, next: Next) -> Response {
    busy();
    access_log_plain(request, next).await
}

/// The server with contextvars.
pub fn with_contextvars() -> Router {
    Router::new()
        .route("/", get(hello_contextvars))
        .layer(middleware::from_fn(access_log_contextvars))
        .layer(ContextLayer::new())
}

/// The same server without.
pub fn plain() -> Router {
    Router::new().route("/", get(hello_plain)).layer(middleware::from_fn(access_log_plain))
}

/// The servers the benches can compare, by name, to split what contextvars costs into its
/// parts:
///
/// * `plain`: the server without contextvars;
/// * `plain_identity`: the same with one more tower layer that does nothing, which is what
///   any layer costs inside an axum `Router` (boxing, `Oneshot`, moves of the request);
/// * `plain_context_layer`: the plain server inside `ContextLayer::for_any_response()`: a
///   fresh context per request, no variable set or read;
/// * `contextvars_any_response`: the contextvars server, its response bodies not wrapped;
/// * `contextvars`: the contextvars server as a user would write it (`ContextLayer::new()`);
/// * `plain_busy`: the plain server plus a loop that takes, in a hot loop, as long as what
///   contextvars adds, and touches no memory: the control for whether contextvars' work
///   costs more over the network than work that cannot miss a cache.
pub const SERVERS: [&str; 6] = [
    "plain",
    "plain_identity",
    "plain_context_layer",
    "contextvars_any_response",
    "contextvars",
    "plain_busy",
];

/// The server named `name` (one of [`SERVERS`]).
pub fn server(name: &str) -> Router {
    let contextvars = || {
        Router::new().route("/", get(hello_contextvars)).layer(middleware::from_fn(access_log_contextvars))
    };
    match name {
        "plain" => plain(),
        "plain_identity" => plain().layer(tower::layer::layer_fn(|service| service)),
        "plain_context_layer" => plain().layer(ContextLayer::new().for_any_response()),
        "contextvars_any_response" => contextvars().layer(ContextLayer::new().for_any_response()),
        "contextvars" => with_contextvars(),
        "plain_busy" => {
            Router::new().route("/", get(hello_plain)).layer(middleware::from_fn(access_log_busy))
        }
        other => panic!("no server named {other:?}; the servers are {SERVERS:?}"),
    }
}
