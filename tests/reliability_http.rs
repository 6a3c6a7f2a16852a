//! HTTP soak: many concurrent keep-alive connections on 127.0.0.1, every request
//! authenticating as a different user through async handlers, `#[sync_endpoint]` handlers, a
//! `#[propagate(back)]` task and a blocking worker that runs async code with `block_on`; some
//! requests on the same connections carry no credentials at all. Every log line (written by
//! `ContextFields` from the handler, the workers and the access-log middleware) must name the
//! user of its own request, and a request without credentials must log no user: not the user
//! of the request before it on the same connection, nor of one served on the same thread.
//!
//! 64 connections x 32 requests by default; `CONTEXTVARS_LONG=1` runs 256 x 200. Bounded in
//! count, and in time by a timeout that fails the test rather than hang; the server is shut
//! down when the clients are done.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use contextvars::tower::ContextLayer;
use contextvars::tracing::ContextFields;
use contextvars::{ContextVar, propagate, sync_endpoint};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use tracing_subscriber::fmt::format;

mod support;
use support::LogBuffer;

/// Set only once a request authenticated: the log leaves unset variables out.
static USER: ContextVar<String> = ContextVar::new("user", String::new);
static REQUEST_ID: ContextVar<u64> = ContextVar::new("request_id", || 0);

/// The user a bearer token stands for: `token-<user>`.
fn authenticate(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("authorization")?.to_str().ok()?;
    value.strip_prefix("Bearer token-").map(str::to_owned)
}

/// Sets the user, if the request carries valid credentials.
fn log_in(headers: &HeaderMap) {
    if let Some(user) = authenticate(headers) {
        USER.set(user);
    }
}

fn shown() -> String {
    if USER.is_set() { USER.get() } else { "anonymous".to_owned() }
}

// -- The handlers: four ways to authenticate, each logging from where it runs.

async fn async_login(headers: HeaderMap) -> String {
    log_in(&headers);
    tokio::task::yield_now().await;
    tracing::info!(step = "async", "authenticated");
    shown()
}

#[sync_endpoint]
fn sync_login(headers: HeaderMap) -> String {
    log_in(&headers);
    tracing::info!(step = "sync", "authenticated");
    shown()
}

#[propagate(back)]
async fn check_credentials(headers: HeaderMap) {
    tokio::task::yield_now().await;
    log_in(&headers);
    tracing::info!(step = "task", "authenticated");
}

async fn task_login(headers: HeaderMap) -> String {
    // A plain `.await` of the task delivers what the `#[propagate(back)]` function set.
    contextvars::spawn(check_credentials(headers)).await.unwrap();
    shown()
}

async fn blocking_login(headers: HeaderMap) -> String {
    // Async code, on a blocking worker, through `block_on`; all its changes merged back.
    contextvars::spawn_blocking(move || {
        contextvars::block_on(async move {
            log_in(&headers);
            tracing::info!(step = "block_on", "authenticated");
        })
    })
    .merge_back()
    .await
    .unwrap();
    shown()
}

/// Numbers the request, lets the handler run, then writes the access-log line with what it
/// sees afterwards and reports the user in a header.
async fn access_log(request: Request, next: Next) -> Response {
    let id = request.headers().get("x-request-id").and_then(|v| v.to_str().ok()?.parse().ok()).unwrap();
    REQUEST_ID.set(id);
    let mut response = next.run(request).await;
    tracing::info!(status = response.status().as_u16(), "access");
    response.headers_mut().insert("x-seen-user", HeaderValue::from_str(&shown()).unwrap());
    response
}

const ROUTES: [&str; 4] = ["/async", "/sync", "/task", "/blocking"];

fn app() -> Router {
    Router::new()
        .route("/async", get(async_login))
        .route("/sync", get(sync_login))
        .route("/task", get(task_login))
        .route("/blocking", get(blocking_login))
        .layer(middleware::from_fn(access_log))
        .layer(ContextLayer::new())
}

// -- The log.

/// A subscriber whose lines, with `user=…` and `request_id=…` appended by `ContextFields`,
/// go to the log it returns.
fn install_log() -> LogBuffer {
    let log = LogBuffer::default();
    let writer = log.clone();
    tracing_subscriber::fmt()
        .event_format(
            ContextFields::new(&[&USER, &REQUEST_ID]).format(format().without_time().with_target(false)),
        )
        .with_writer(move || writer.clone())
        .init();
    log
}

/// The `user` and `request_id` fields of one log line.
fn fields(line: &str) -> (Option<String>, Option<u64>) {
    let user = line.split_once(" user=\"").map(|(_, rest)| rest.split('"').next().unwrap().to_owned());
    let id = line.split_once(" request_id=").map(|(_, rest)| rest.trim().parse().unwrap());
    (user, id)
}

// -- The clients.

/// One request of the soak: its id, its route, and the user it authenticates as (or none).
#[derive(Clone, Debug)]
struct Plan {
    id: u64,
    route: &'static str,
    user: Option<String>,
}

fn plan(connection: u64, n: u64, per_connection: u64) -> Plan {
    let id = connection * per_connection + n + 1;
    // Every fifth request carries no credentials: it must see nobody's user.
    let user = (!id.is_multiple_of(5)).then(|| format!("user{id}"));
    Plan { id, route: ROUTES[(id % 4) as usize], user }
}

/// What the server answered for one request.
struct Answer {
    body: String,
    seen_user: String,
}

/// Sends `requests` one after the other on one kept-alive connection.
async fn client(addr: SocketAddr, requests: Vec<Plan>) -> Vec<(Plan, Answer)> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.unwrap();
    let connection = tokio::spawn(connection);
    let mut answers = Vec::with_capacity(requests.len());
    for plan in requests {
        let mut request = hyper::Request::get(plan.route)
            .header("host", addr.to_string())
            .header("x-request-id", plan.id.to_string());
        if let Some(user) = &plan.user {
            request = request.header("authorization", format!("Bearer token-{user}"));
        }
        sender.ready().await.unwrap();
        let response = sender.send_request(request.body(Empty::<Bytes>::new()).unwrap()).await.unwrap();
        assert_eq!(response.status(), 200, "request {}", plan.id);
        let seen_user = response.headers()["x-seen-user"].to_str().unwrap().to_owned();
        let body =
            String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
        answers.push((plan, Answer { body, seen_user }));
    }
    drop(sender);
    connection.await.unwrap().unwrap();
    answers
}

fn size() -> (u64, u64) {
    if std::env::var_os("CONTEXTVARS_LONG").is_some() { (256, 200) } else { (64, 32) }
}

#[test]
fn every_request_logs_its_own_user_every_time() {
    let log = install_log();
    let (connections, per_connection) = size();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let answers = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            axum::serve(listener, app()).with_graceful_shutdown(async move { drop(stopped.await) }).await
        });
        let mut clients = tokio::task::JoinSet::new();
        for connection in 0..connections {
            let requests = (0..per_connection).map(|n| plan(connection, n, per_connection)).collect();
            clients.spawn(client(addr, requests));
        }
        // A bound that fails the test instead of letting a stuck request hang it.
        let answers = tokio::time::timeout(Duration::from_secs(600), clients.join_all())
            .await
            .expect("the soak finished in time");
        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
        answers.into_iter().flatten().collect::<Vec<_>>()
    });
    drop(runtime);

    // Every answer: the handler and the middleware saw this request's user, or nobody.
    let total = connections * per_connection;
    assert_eq!(answers.len() as u64, total);
    let mut expected = HashMap::new();
    for (plan, answer) in &answers {
        let user = plan.user.clone().unwrap_or_else(|| "anonymous".to_owned());
        assert_eq!(answer.body, user, "request {} via {}", plan.id, plan.route);
        assert_eq!(answer.seen_user, user, "middleware of request {} via {}", plan.id, plan.route);
        expected.insert(plan.id, plan.user.clone());
    }

    // Every log line: its request's own user, or none; two lines per request (the handler's
    // or worker's, then the access line), and no line outside a request.
    let text = log.text();
    let mut lines_per_request: HashMap<u64, usize> = HashMap::new();
    let mut lines = 0;
    for line in text.lines() {
        let (user, id) = fields(line);
        let id = id.unwrap_or_else(|| panic!("a log line outside any request: {line}"));
        let want = expected.get(&id).unwrap_or_else(|| panic!("a log line of no request: {line}"));
        assert_eq!(&user, want, "{line}");
        *lines_per_request.entry(id).or_default() += 1;
        lines += 1;
    }
    assert!(lines_per_request.values().all(|&n| n == 2), "two lines for every request");
    assert_eq!(lines_per_request.len() as u64, total);
    let anonymous = expected.values().filter(|user| user.is_none()).count();
    println!(
        "{total} requests ({anonymous} without credentials) over {connections} kept-alive \
         connections, {lines} log lines: every one showed its own request's user"
    );
}
