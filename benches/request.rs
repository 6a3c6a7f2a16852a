//! The end-to-end servers of `benches/http.rs` without the network: one request through the
//! whole axum stack (`oneshot`) and its body read, so that what contextvars adds to a
//! request can be measured and profiled alone, and split into its parts:
//!
//! * `plain`: the server without contextvars;
//! * `plain_identity`: the same with one more tower layer that does nothing, which is what
//!   any layer costs inside an axum `Router` (boxing, `Oneshot`, moves of the request);
//! * `contextvars_any_response`: `ContextLayer::for_any_response`, the response body not
//!   wrapped;
//! * `contextvars`: the server of `benches/http.rs`, `ContextLayer::new()`.
//!
//! `cargo bench -p contextvars-benches --bench request`
//!
//! The machine's hardware counters may not be readable (virtual machines); to count
//! instructions, run a fixed number of requests of one server under callgrind:
//! `REQUEST_COUNT=contextvars:2000 valgrind --tool=callgrind target/release/deps/request-*`
//! and subtract a run of 200 to leave set-up out.

use std::hint::black_box;

use axum::Router;
use axum::body::Body;
use criterion::{Criterion, criterion_group};
use http_body_util::BodyExt;
use tower::ServiceExt;

mod servers;

const SERVERS: [&str; 4] = ["plain", "plain_identity", "contextvars_any_response", "contextvars"];

fn server(name: &str) -> Router {
    match name {
        "plain" => servers::plain(),
        "plain_identity" => servers::plain().layer(tower::layer::layer_fn(|service| service)),
        "contextvars_any_response" => servers::with_contextvars_any_response(),
        "contextvars" => servers::with_contextvars(),
        other => panic!("no server named {other:?}; the servers are {SERVERS:?}"),
    }
}

/// One request to `router` and its whole body.
async fn one_request(router: &Router) -> hyper::body::Bytes {
    let request =
        axum::http::Request::get("/").header("x-user", "ada").body(Body::empty()).expect("a request");
    let response = router.clone().oneshot(request).await.expect("infallible");
    response.into_body().collect().await.expect("the body").to_bytes()
}

fn request(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("a runtime");
    let mut group = c.benchmark_group("request");
    for name in SERVERS {
        let router = server(name);
        group.bench_function(name, |b| b.iter(|| black_box(runtime.block_on(one_request(&router)))));
    }
    group.finish();
}

criterion_group!(benches, request);

fn main() {
    // `REQUEST_COUNT=server:n`: exactly n requests to one server, for instruction counts.
    if let Ok(spec) = std::env::var("REQUEST_COUNT") {
        let (name, n) = spec.split_once(':').expect("REQUEST_COUNT=server:n");
        let n: usize = n.parse().expect("a number of requests");
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("a runtime");
        let router = server(name);
        for _ in 0..n {
            black_box(runtime.block_on(one_request(&router)));
        }
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
