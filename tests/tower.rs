//! `ContextLayer` under axum, over real HTTP on loopback: one context per request, also on a
//! kept-alive connection and on a reused blocking-pool thread, and a middleware that sees
//! what the handler set.

#[path = "../examples/support/client.rs"]
mod client;

use std::net::SocketAddr;
use std::sync::Arc;

use std::convert::Infallible;

use axum::Router;
use axum::body::Body;
use axum::extract::{Extension, Request};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::IntoResponse;
use axum::response::Response;
use axum::response::sse::{Event, Sse};
use axum::routing::get;
use client::Connection;
use contextvars::tower::ContextLayer;
use contextvars::{Context, context_var, propagate, sync_endpoint};
use futures::StreamExt;
use tokio::sync::Barrier;
use tower::Layer;
use tower_http::catch_panic::CatchPanicLayer;

#[context_var]
static USER: Option<String>;

#[context_var]
static REGION: &'static str = "none";

fn header_user(headers: &HeaderMap) -> Option<String> {
    headers.get("x-user").and_then(|value| value.to_str().ok()).map(str::to_owned)
}

fn shown(user: Option<String>) -> String {
    user.unwrap_or_else(|| "nobody".to_owned())
}

async fn login(headers: HeaderMap) -> String {
    USER.set(header_user(&headers));
    shown(USER.get())
}

async fn whoami() -> String {
    shown(USER.get())
}

/// Runs on the blocking pool; reports the thread it ran on.
#[sync_endpoint]
fn sync_login(headers: HeaderMap) -> String {
    USER.set(header_user(&headers));
    format!("{}@{:?}", shown(USER.get()), std::thread::current().id())
}

#[sync_endpoint]
fn sync_whoami() -> String {
    format!("{}@{:?}", shown(USER.get()), std::thread::current().id())
}

/// Sets the user in a task of its own; `#[propagate(back)]` brings it back through the plain
/// `.await` on the join handle.
#[propagate(back)]
async fn authenticate(user: Option<String>) {
    USER.set(user);
}

async fn spawn_login(headers: HeaderMap) -> String {
    contextvars::spawn(authenticate(header_user(&headers))).await.unwrap();
    shown(USER.get())
}

async fn spawn_merge_login(headers: HeaderMap) -> String {
    let user = header_user(&headers);
    contextvars::spawn(async move { USER.set(user) }).merge_back().await.unwrap();
    shown(USER.get())
}

async fn crash(headers: HeaderMap) -> String {
    USER.set(header_user(&headers));
    panic!("the handler failed after authenticating");
}

/// Sets the user, then waits until every concurrent request has set its own.
async fn login_together(Extension(barrier): Extension<Arc<Barrier>>, headers: HeaderMap) -> String {
    USER.set(header_user(&headers));
    barrier.wait().await;
    tokio::task::yield_now().await;
    shown(USER.get())
}

async fn region() -> &'static str {
    REGION.get()
}

#[context_var]
static CHUNKS: u32;

/// Three chunks, produced one at a time after the handler returned: each reads the
/// request's user and counts itself in the request's context.
fn chunks() -> impl futures::Stream<Item = String> + Send + 'static {
    futures::stream::unfold(0u32, |n| async move {
        if n == 3 {
            return None;
        }
        tokio::task::yield_now().await;
        CHUNKS.set(CHUNKS.get() + 1);
        Some((format!("{}#{};", shown(USER.get()), CHUNKS.get()), n + 1))
    })
}

async fn stream(headers: HeaderMap) -> Body {
    USER.set(header_user(&headers));
    Body::from_stream(chunks().map(Ok::<_, Infallible>))
}

async fn events(headers: HeaderMap) -> Sse<impl futures::Stream<Item = Result<Event, Infallible>>> {
    USER.set(header_user(&headers));
    Sse::new(chunks().map(|chunk| Ok(Event::default().data(chunk))))
}

/// A middleware inside the `ContextLayer`: reports, after the handler, the user it sees.
async fn report_user(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    if let Some(user) = USER.get() {
        response.headers_mut().insert("x-seen-user", HeaderValue::from_str(&user).unwrap());
    }
    response
}

fn app(layer: ContextLayer, concurrent: usize) -> Router {
    routes(concurrent).layer(layer)
}

/// The routes and middleware, without the `ContextLayer`.
fn routes(concurrent: usize) -> Router {
    Router::new()
        .route("/login", get(login))
        .route("/whoami", get(whoami))
        .route("/sync/login", get(sync_login))
        .route("/sync/whoami", get(sync_whoami))
        .route("/spawn/login", get(spawn_login))
        .route("/spawn/merge", get(spawn_merge_login))
        .route("/crash", get(crash))
        .route("/together", get(login_together))
        .route("/region", get(region))
        .route("/stream", get(stream))
        .route("/events", get(events))
        .layer(Extension(Arc::new(Barrier::new(concurrent))))
        .layer(CatchPanicLayer::new())
        .layer(middleware::from_fn(report_user))
}

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_requests_on_one_kept_alive_connection_do_not_share_a_context() {
    let addr = serve(app(ContextLayer::new(), 1)).await;
    let mut connection = Connection::open(addr).await.unwrap();

    let first = connection.get("/login", Some("ada")).await.unwrap();
    assert_eq!((first.body.as_str(), first.seen_user.as_deref()), ("ada", Some("ada")));

    let second = connection.get("/whoami", None).await.unwrap();
    assert_eq!((second.body.as_str(), second.seen_user), ("nobody", None));

    let third = connection.get("/sync/login", Some("bob")).await.unwrap();
    assert_eq!(third.seen_user.as_deref(), Some("bob"));
    let fourth = connection.get("/whoami", None).await.unwrap();
    assert_eq!((fourth.body.as_str(), fourth.seen_user), ("nobody", None));
}

#[test]
fn requests_served_by_the_same_blocking_thread_do_not_share_a_context() {
    // One blocking thread: every sync handler runs on it, one after the other.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let addr = serve(app(ContextLayer::new(), 1)).await;
        let login = client::get(addr, "/sync/login", Some("ada")).await.unwrap();
        let whoami = client::get(addr, "/sync/whoami", None).await.unwrap();

        let (login_user, login_thread) = login.body.split_once('@').unwrap();
        let (whoami_user, whoami_thread) = whoami.body.split_once('@').unwrap();
        assert_eq!(login_thread, whoami_thread, "both ran on the one blocking thread");
        assert_eq!((login_user, login.seen_user.as_deref()), ("ada", Some("ada")));
        assert_eq!((whoami_user, whoami.seen_user), ("nobody", None));
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_middleware_after_the_handler_sees_what_the_handler_set() {
    let addr = serve(app(ContextLayer::new(), 1)).await;
    for (path, user) in
        [("/login", "ada"), ("/sync/login", "bob"), ("/spawn/login", "cy"), ("/spawn/merge", "dee")]
    {
        let reply = client::get(addr, path, Some(user)).await.unwrap();
        assert_eq!(reply.status, 200, "{path}");
        assert_eq!(reply.seen_user.as_deref(), Some(user), "{path}");
        assert!(reply.body.starts_with(user), "{path}: {}", reply.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_each_see_their_own_user() {
    const REQUESTS: usize = 8;
    let addr = serve(app(ContextLayer::new(), REQUESTS)).await;
    let mut requests = tokio::task::JoinSet::new();
    for n in 0..REQUESTS {
        requests.spawn(async move {
            let user = format!("user{n}");
            let reply = client::get(addr, "/together", Some(&user)).await.unwrap();
            (user, reply)
        });
    }
    let replies = requests.join_all().await;
    assert_eq!(replies.len(), REQUESTS);
    for (user, reply) in replies {
        assert_eq!(reply.body, user);
        assert_eq!(reply.seen_user.as_deref(), Some(user.as_str()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_gets_a_500_and_the_connection_serves_on() {
    let addr = serve(app(ContextLayer::new(), 1)).await;
    let mut connection = Connection::open(addr).await.unwrap();

    let crashed = connection.get("/crash", Some("eve")).await.unwrap();
    assert_eq!(crashed.status, 500);
    // What the handler set before it panicked is still the request's: the log can name it.
    assert_eq!(crashed.seen_user.as_deref(), Some("eve"));

    let next = connection.get("/whoami", None).await.unwrap();
    assert_eq!((next.status.as_u16(), next.body.as_str(), next.seen_user), (200, "nobody", None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_starts_from_the_configured_base() {
    let mut base = Context::new();
    base.run(|| REGION.set("eu-west"));
    let addr = serve(app(ContextLayer::with_base(base), 1)).await;
    let mut connection = Connection::open(addr).await.unwrap();
    for _ in 0..2 {
        let reply = connection.get("/region", None).await.unwrap();
        assert_eq!(reply.body, "eu-west");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_layer_also_wraps_a_whole_router_routing_included() {
    // `axum::serve` wants axum's own response type back: map it outside the layer.
    let service = tower::ServiceBuilder::new()
        .map_response(IntoResponse::into_response)
        .layer(ContextLayer::new())
        .service(routes(1));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let make_service = axum::ServiceExt::<Request>::into_make_service(service);
    tokio::spawn(async move { axum::serve(listener, make_service).await.unwrap() });

    let mut connection = Connection::open(addr).await.unwrap();
    let first = connection.get("/sync/login", Some("ada")).await.unwrap();
    assert_eq!(first.seen_user.as_deref(), Some("ada"));
    let second = connection.get("/whoami", None).await.unwrap();
    assert_eq!((second.body.as_str(), second.seen_user), ("nobody", None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_body_is_polled_in_its_requests_context() {
    let addr = serve(app(ContextLayer::new(), 1)).await;
    let mut connection = Connection::open(addr).await.unwrap();
    for user in ["ada", "bob"] {
        let reply = connection.get("/stream", Some(user)).await.unwrap();
        assert_eq!(reply.status, 200);
        // Each chunk saw the request's user and the request's own count, from 1.
        assert_eq!(reply.body, format!("{user}#1;{user}#2;{user}#3;"));
    }
    let anonymous = connection.get("/stream", None).await.unwrap();
    assert_eq!(anonymous.body, "nobody#1;nobody#2;nobody#3;");
    let next = connection.get("/whoami", None).await.unwrap();
    assert_eq!((next.body.as_str(), next.seen_user), ("nobody", None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_sent_events_are_produced_in_their_requests_context() {
    let addr = serve(app(ContextLayer::new(), 1)).await;
    let mut connection = Connection::open(addr).await.unwrap();
    for user in ["ada", "bob"] {
        let reply = connection.get("/events", Some(user)).await.unwrap();
        let data: Vec<&str> = reply.body.lines().filter_map(|line| line.strip_prefix("data: ")).collect();
        assert_eq!(data, [format!("{user}#1;"), format!("{user}#2;"), format!("{user}#3;")]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_layer_for_any_response_keeps_serving_other_services() {
    use tower::{Service, ServiceExt, service_fn};
    let counter = service_fn(|user: &'static str| async move {
        USER.set(Some(user.to_owned()));
        CHUNKS.set(CHUNKS.get() + 1);
        Ok::<_, Infallible>((USER.get(), CHUNKS.get()))
    });
    let mut service = ContextLayer::new().for_any_response().layer(counter);
    for user in ["ada", "bob"] {
        let reply = service.ready().await.unwrap().call(user).await.unwrap();
        assert_eq!(reply, (Some(user.to_owned()), 1));
    }
}

/// Sends, when dropped, the user it sees, after setting `CHUNKS` (a `Drop` that sets).
struct ReportsOnDrop(std::sync::mpsc::Sender<Option<String>>);

impl Drop for ReportsOnDrop {
    fn drop(&mut self) {
        CHUNKS.set(99);
        let _ = self.0.send(USER.get());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_dropped_mid_stream_by_a_plain_task_drops_its_values_in_the_requests_context() {
    use http_body_util::{BodyExt, StreamBody};
    use hyper::body::{Bytes, Frame};
    use tower::{Service, ServiceExt, service_fn};

    let (sender, dropped) = std::sync::mpsc::channel();
    let service = service_fn(move |user: &'static str| {
        let guard = ReportsOnDrop(sender.clone());
        async move {
            USER.set(Some(user.to_owned()));
            // Endless: the client goes away after the first frame.
            let frames = futures::stream::repeat_with(move || {
                let _kept = &guard;
                Ok::<_, Infallible>(Frame::data(Bytes::from(shown(USER.get()))))
            });
            Ok::<_, Infallible>(http::Response::new(StreamBody::new(frames)))
        }
    });
    let mut service = ContextLayer::new().layer(service);
    let response = service.ready().await.unwrap().call("ada").await.unwrap();
    // A plain task, as a server's connection task: reads one frame, then is dropped.
    let first = tokio::spawn(async move {
        let mut body = response.into_body();
        let frame = body.frame().await.unwrap().unwrap();
        frame.into_data().unwrap()
    })
    .await
    .unwrap();
    assert_eq!(first, "ada");
    assert_eq!(dropped.recv().unwrap(), Some("ada".to_owned()));
}
