//! Feature `reqwest`: `OutgoingMiddleware` on a `reqwest-middleware` client, through real
//! HTTP on loopback against an axum server with `IncomingLayer`.

#[path = "support/remote.rs"]
mod remote;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use contextvars::opentelemetry::{
    BACK_HEADER, Baggage, FORWARDED, IncomingLayer, OutgoingMiddleware, TRACE_CONTEXT,
};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware, reqwest};

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
