//! Feature `reqwest`: `OutgoingMiddleware` on a `reqwest-middleware` client, through real
//! HTTP on loopback against an axum server with `IncomingLayer`.

#[path = "support/remote.rs"]
mod remote;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::routing::get;
use contextvars::opentelemetry::{
    BACK_HEADER, Baggage, FORWARDED, IncomingLayer, OutgoingMiddleware, TRACE_CONTEXT,
};
use reqwest_middleware::reqwest::{Request, Response};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware, Next, reqwest};

use remote::{CACHE_HIT, Gate, ROWS, TENANT, TRACE_ID, USER};

async fn whoami() -> String {
    format!("{}|{}", remote::seen_by_handler(), FORWARDED.get().get("other").unwrap_or("-"))
}

/// Counts rows; waits at the gate in between, so the test can act while it is in flight.
async fn count(gate: Gate) -> &'static str {
    remote::count_rows();
    gate.pass().await;
    "counted"
}

/// A server that tries to set variables the caller never opened to it.
async fn hostile() -> ([(&'static str, &'static str); 1], &'static str) {
    ([(BACK_HEADER, "user.id=mallory,tenant=evil,unknown=1,db.rows=5")], "hostile")
}

/// Serves on loopback: `/whoami`, `/count` (held by the gate), `/hostile`.
async fn serve(gate: Gate) -> SocketAddr {
    let app = Router::new()
        .route("/whoami", get(whoami))
        .route("/count", get(move || count(gate.clone())))
        .route("/hostile", get(hostile))
        .layer(IncomingLayer::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// reqwest as `reqwest-middleware` brings it: no TLS, no HTTP/2; no proxy for loopback.
fn client() -> ClientWithMiddleware {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    ClientBuilder::new(client).with(OutgoingMiddleware::new()).build()
}

async fn get_text(client: &ClientWithMiddleware, addr: SocketAddr, path: &str) -> String {
    let response = client.get(format!("http://{addr}{path}")).send().await.unwrap();
    assert!(response.status().is_success());
    response.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baggage_forwarded_entries_and_the_trace_context_reach_the_server() {
    let addr = serve(Gate::default()).await;
    let client = client();
    assert_eq!(get_text(&client, addr, "/whoami").await, "|public|-|-");

    USER.set(Some("ada lovelace".into()));
    TENANT.set("acme".into());
    let mut forwarded = Baggage::new();
    forwarded.insert("other", "x;y").unwrap();
    FORWARDED.set(Arc::new(forwarded));
    TRACE_CONTEXT.set(remote::remote_trace());
    assert_eq!(get_text(&client, addr, "/whoami").await, format!("ada lovelace|acme|{TRACE_ID}|x;y"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_server_changes_comes_back_and_merges_like_a_join() {
    let gate = Gate::default();
    let addr = serve(gate.clone()).await;
    let client = client();
    ROWS.set(10);

    // The request leaves with rows=10; the backend adds 3 (13) while the caller, in flight,
    // counts 10 more (20): the merge of `ROWS` keeps both, 20 + 13 - 10.
    let (response, ()) = tokio::join!(client.get(format!("http://{addr}/count")).send(), async {
        gate.arrived().await;
        ROWS.set(20);
        gate.release();
    });
    let response = response.unwrap();
    assert_eq!(response.headers()[BACK_HEADER], "cache.hit=true,db.rows=13");
    assert_eq!((ROWS.get(), CACHE_HIT.get()), (23, true));
    assert_eq!(response.text().await.unwrap(), "counted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_service_cannot_set_variables_not_opened_to_it() {
    let addr = serve(Gate::default()).await;
    USER.set(Some("ada".into()));
    assert_eq!(get_text(&client(), addr, "/hostile").await, "hostile");
    assert_eq!(USER.get().as_deref(), Some("ada"));
    assert_eq!(TENANT.get(), "public");
    assert_eq!(ROWS.get(), 5, "db.rows is declared back_from_remote");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_without_a_context_sends_nothing_and_cannot_take_a_value_back() {
    let gate = Gate::default();
    let addr = serve(gate.clone()).await;
    let client = client();
    USER.set(Some("ada".into()));

    // A plain tokio task reads defaults: the caller's user does not leak into its request.
    let plain = client.clone();
    let reply = tokio::spawn(async move { get_text(&plain, addr, "/whoami").await }).await.unwrap();
    assert_eq!(reply, "|public|-|-");

    // A value sent back has no context to land in: a panic that names the fix.
    let plain = client.clone();
    let failed = tokio::spawn(async move { plain.get(format!("http://{addr}/count")).send().await });
    gate.arrived().await;
    gate.release();
    let panic = failed.await.unwrap_err().into_panic();
    let message = panic.downcast_ref::<String>().unwrap();
    assert!(message.contains("contextvars::spawn(fut)"), "{message}");

    // The same from a task with a context: it sends the user, and the value comes back to it
    // and, through its join, to here.
    let rows = contextvars::spawn(async move {
        assert_eq!(get_text(&client, addr, "/whoami").await, "ada|public|-|-");
        let (text, ()) = tokio::join!(get_text(&client, addr, "/count"), async {
            gate.arrived().await;
            gate.release();
        });
        assert_eq!(text, "counted");
        ROWS.get()
    })
    .merge_back()
    .await
    .unwrap();
    assert_eq!((rows, ROWS.get()), (3, 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_dropped_before_its_response_lands_nothing() {
    let gate = Gate::default();
    let addr = serve(gate.clone()).await;
    let client = client();
    ROWS.set(10);

    tokio::select! {
        _ = client.get(format!("http://{addr}/count")).send() => panic!("the gate holds the response"),
        () = gate.arrived() => {} // the handler has counted: drop the request
    }
    gate.release();
    // The next request on the same client completes; the dropped one left nothing behind.
    assert_eq!(get_text(&client, addr, "/whoami").await, "|public|-|-");
    assert_eq!((ROWS.get(), CACHE_HIT.get()), (10, false));
}

/// Answers like `/count` (no gate), after noting the `baggage` headers it received.
async fn add(seen: Arc<Mutex<Vec<String>>>, headers: http::HeaderMap) -> &'static str {
    let baggage: Vec<&str> = headers.get_all("baggage").iter().map(|value| value.to_str().unwrap()).collect();
    seen.lock().unwrap().push(baggage.join(" | "));
    remote::count_rows();
    "counted"
}

/// Serves `/add` on loopback; returns its address and what it saw.
async fn serve_add() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let noted = seen.clone();
    let app = Router::new()
        .route("/add", get(move |headers| add(noted.clone(), headers)))
        .layer(IncomingLayer::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, seen)
}

type Sent<'a> = Pin<Box<dyn Future<Output = reqwest_middleware::Result<Response>> + Send + 'a>>;

/// A retry middleware as `reqwest-retry` is one: sends the request, then a copy of it again
/// (`next.clone().run(request.try_clone())`), and returns the last response.
fn send_twice<'a>(request: Request, extensions: &'a mut http::Extensions, next: Next<'a>) -> Sent<'a> {
    Box::pin(async move {
        let again = request.try_clone().unwrap();
        let first = next.clone().run(request, extensions).await?;
        drop(first);
        next.run(again, extensions).await
    })
}

fn client_with(ours_inside_the_retry: bool) -> ClientWithMiddleware {
    let client = ClientBuilder::new(reqwest::Client::builder().no_proxy().build().unwrap());
    if ours_inside_the_retry {
        client.with(send_twice).with(OutgoingMiddleware::new()).build()
    } else {
        client.with(OutgoingMiddleware::new()).with(send_twice).build()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inside_a_retry_every_attempt_sends_one_baggage_header_and_merges_its_own_response() {
    let (addr, seen) = serve_add().await;
    ROWS.set(10);
    get_text(&client_with(true), addr, "/add").await;
    // Each attempt is a call of its own: it leaves with the values of its moment (the
    // second with the first's rows merged) and its response merges in turn.
    assert_eq!(*seen.lock().unwrap(), ["db.rows=10", "cache.hit=true,db.rows=13"]);
    assert_eq!(ROWS.get(), 16);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_a_retry_every_attempt_sends_the_same_headers_and_only_the_last_response_merges() {
    let (addr, seen) = serve_add().await;
    ROWS.set(10);
    get_text(&client_with(false), addr, "/add").await;
    assert_eq!(*seen.lock().unwrap(), ["db.rows=10", "db.rows=10"]);
    assert_eq!(ROWS.get(), 13);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_baggage_header_set_on_the_request_is_kept_next_to_the_contexts() {
    let (addr, seen) = serve_add().await;
    USER.set(Some("ada".into()));
    let request = client().get(format!("http://{addr}/add")).header("baggage", "kind=batch,user.id=bob");
    assert!(request.send().await.unwrap().status().is_success());
    assert_eq!(*seen.lock().unwrap(), ["user.id=ada,kind=batch"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_in_flight_together_from_one_task_each_merge_their_change() {
    let (addr, _) = serve_add().await;
    let client = client();
    ROWS.set(10);
    // Both leave with 10 and come back with 13: the merge of `ROWS` counts both 3s.
    let calls = (0..2).map(|_| get_text(&client, addr, "/add"));
    assert_eq!(futures::future::join_all(calls).await, ["counted", "counted"]);
    assert_eq!((ROWS.get(), CACHE_HIT.get()), (16, true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_with_separators_controls_and_non_ascii_arrive_intact() {
    let addr = serve(Gate::default()).await;
    let awkward = "ada, \"lovelace\"; x=1\r\nset-cookie: a=b %41 Zürich";
    USER.set(Some(awkward.into()));
    assert_eq!(get_text(&client(), addr, "/whoami").await, format!("{awkward}|public|-|-"));
}

/// Answers with the `contextvars-back` header `raw` holds, byte for byte.
async fn raw_back(raw: &'static [u8]) -> ([(&'static str, http::HeaderValue); 1], &'static str) {
    ([(BACK_HEADER, http::HeaderValue::from_bytes(raw).unwrap())], "raw")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_back_header_sets_nothing_it_was_not_opened_to_and_never_panics() {
    let huge: &'static [u8] = format!("{}db.rows=99", "junk=x,".repeat(3000)).leak().as_bytes();
    // (header, rows after, cache hit after); the caller starts at 10 rows, no hit.
    let cases: [(&'static [u8], u64, bool); 9] = [
        (b"db.rows=%zz,cache.hit=true", 10, true), // a bad escape: that entry only
        (b"db.rows=1,db.rows=7", 7, false),        // a key twice: the last value
        (b"db.rows=seven,cache.hit=maybe", 10, false), // not values of the types
        (b"user.id=mallory,tenant=evil,FORWARDED=x", 10, false), // not opened
        (b"db.rows=\xff\xfe,cache.hit=true", 10, true), // not visible ASCII: dropped
        (b"db.rows=%FF%FE", 10, false),            // decodes to non-UTF-8
        (b"db.rows=4;ttl=1", 4, false),            // properties: ignored
        (b"db.rows=4%0D%0Aset-cookie:%20a", 10, false), // CR/LF decoded: not a u64
        (huge, 10, false),                         // past the limits: dropped
    ];
    let mut app = Router::new();
    for (i, (raw, ..)) in cases.iter().enumerate() {
        let raw = *raw;
        app = app.route(&format!("/raw/{i}"), get(move || raw_back(raw)));
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = client();

    for (i, (raw, rows, hit)) in cases.into_iter().enumerate() {
        let shown = raw.escape_ascii().to_string();
        let client = client.clone();
        // Each case from the same start, in a task of its own.
        let (after, user) = contextvars::spawn(async move {
            USER.set(Some("ada".into()));
            ROWS.set(10);
            assert_eq!(get_text(&client, addr, &format!("/raw/{i}")).await, "raw");
            ((ROWS.get(), CACHE_HIT.get()), USER.get())
        })
        .await
        .unwrap();
        assert_eq!(after, (rows, hit), "{}", &shown[..shown.len().min(80)]);
        assert_eq!(user.as_deref(), Some("ada"));
        assert_eq!(remote::TENANT.get(), "public");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_a_join_set_and_from_blocking_code_the_calls_send_and_merge_back_like_any_child() {
    let (addr, seen) = serve_add().await;
    let client = client();
    USER.set(Some("ada".into()));
    ROWS.set(10);

    // Two calls from a JoinSet: each task sends the context it was spawned with, and its
    // rows come back to it, then here through the join.
    let mut set = contextvars::JoinSet::new();
    for _ in 0..2 {
        let client = client.clone();
        set.spawn(async move { get_text(&client, addr, "/add").await });
    }
    while let Some(reply) = set.merge_back_next().await {
        assert_eq!(reply.unwrap(), "counted");
    }
    assert_eq!(ROWS.get(), 16);

    // reqwest's blocking client takes no middleware: blocking code runs the async client
    // with `contextvars::block_on` on the blocking pool, in that thread's context.
    let reply = contextvars::spawn_blocking(move || {
        contextvars::block_on(async move { get_text(&client, addr, "/add").await })
    })
    .merge_back()
    .await
    .unwrap();
    assert_eq!((reply.as_str(), ROWS.get()), ("counted", 19));
    let seen = seen.lock().unwrap();
    assert_eq!(seen[..2], ["db.rows=10,user.id=ada", "db.rows=10,user.id=ada"]);
    assert_eq!(seen[2], "cache.hit=true,db.rows=16,user.id=ada");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_middlewares_around_one_call_merge_its_response_once() {
    let (addr, seen) = serve_add().await;
    // As when a library's client already has the middleware and the application adds it too.
    let client = ClientBuilder::new(reqwest::Client::builder().no_proxy().build().unwrap())
        .with(OutgoingMiddleware::new())
        .with(OutgoingMiddleware::new())
        .build();
    ROWS.set(10);
    get_text(&client, addr, "/add").await;
    assert_eq!(*seen.lock().unwrap(), ["db.rows=10"]);
    assert_eq!(ROWS.get(), 13);
}
