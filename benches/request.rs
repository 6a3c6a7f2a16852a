//! The end-to-end servers of `benches/http.rs` without the network: one request through the
//! whole axum stack (`oneshot`) and its body read, so that what contextvars adds to a
//! request can be measured and profiled alone, and split into its parts: every server named
//! in `benches/servers.rs` (`SERVERS`), from the plain one to the one of `benches/http.rs`.
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
    for name in servers::SERVERS {
        let router = servers::server(name);
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
        let router = servers::server(name);
        for _ in 0..n {
            black_box(runtime.block_on(one_request(&router)));
        }
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
