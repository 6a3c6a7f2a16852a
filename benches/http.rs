//! The figure users feel: requests per second of an axum hello-world over loopback, with
//! contextvars (a `ContextLayer`, three variables set per request and an access log that
//! reads them) and without (the same access log fed from local variables).
//!
//! `cargo bench -p contextvars-benches --bench http`
//!
//! Method: both servers run in this process on one tokio runtime (two worker threads) and
//! listen on 127.0.0.1. A load client on a runtime of its own (one thread) keeps
//! `CONNECTIONS` kept-alive HTTP/1.1 connections busy, each sending its next request when
//! the previous answer arrived. A round sends `REQUESTS` requests to one server, or stops
//! after `ROUND_LIMIT`, whichever comes first. Rounds alternate between the two servers, so
//! that whatever else the machine does weighs on both alike; the figures are the medians
//! over the rounds, and the ratio is the median of the per-pair ratios. The last line is the
//! same as JSON, for `benches/report.py`. `HTTP_SERVER=name` puts another server of
//! `benches/servers.rs` in the place of the contextvars one (`plain` against itself shows the
//! bench's own noise).

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

mod servers;

use servers::plain;

use axum::Router;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

const CONNECTIONS: usize = 16;
const REQUESTS: usize = 10_000;
const ROUND_LIMIT: Duration = Duration::from_secs(10);
const PAIRS: usize = 30;

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
    let addr = listener.local_addr().expect("the bound address");
    tokio::spawn(async move { axum::serve(listener, router).await.expect("serve") });
    addr
}

/// One round against `addr`: requests answered and the seconds they took.
async fn round(addr: SocketAddr) -> (usize, f64) {
    let sent = std::sync::Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + ROUND_LIMIT;
    let mut connections = Vec::new();
    for _ in 0..CONNECTIONS {
        let sent = std::sync::Arc::clone(&sent);
        connections.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
            stream.set_nodelay(true).expect("nodelay");
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
            tokio::spawn(connection);
            let mut done = 0usize;
            while sent.fetch_add(1, Ordering::Relaxed) < REQUESTS as u64 && Instant::now() < deadline {
                let request = hyper::Request::get("/")
                    .header("host", "localhost")
                    .header("x-user", "ada")
                    .body(Empty::<Bytes>::new())
                    .expect("a request");
                sender.ready().await.expect("connection ready");
                let response = sender.send_request(request).await.expect("an answer");
                assert!(response.status().is_success());
                black_box(response.into_body().collect().await.expect("the body").to_bytes());
                done += 1;
            }
            done
        }));
    }
    let mut answered = 0;
    for connection in connections {
        answered += connection.await.expect("a client connection");
    }
    (answered, start.elapsed().as_secs_f64())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    let n = values.len();
    if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 }
}

fn main() {
    // `cargo bench --no-run` never starts us, and `cargo test --benches` passes `--list`-like
    // flags we have nothing to say to: measure only under `cargo bench` (which passes `--bench`).
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    // `HTTP_SERVER=name` measures another of the servers of `benches/servers.rs` against the
    // plain one, to split the ratio into its parts (`plain` against itself: the bench's noise).
    let ours = std::env::var("HTTP_SERVER").unwrap_or_else(|_| "contextvars".to_owned());
    println!("http/server {ours} (\"contextvars\" below) against plain");
    let servers = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (ours, theirs) =
        servers.block_on(async { (serve(servers::server(&ours)).await, serve(plain()).await) });
    let client = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();

    // Warm both up (connections, allocator, caches) before anything counts.
    client.block_on(async {
        round(ours).await;
        round(theirs).await;
    });
    let (mut plain_rps, mut ours_rps, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for pair in 0..PAIRS {
        // Alternate which server goes first, so that neither always follows the other.
        let order = if pair % 2 == 0 { [theirs, ours] } else { [ours, theirs] };
        let mut rps = [0.0; 2];
        for (slot, addr) in order.into_iter().enumerate() {
            let (answered, seconds) = client.block_on(round(addr));
            rps[slot] = answered as f64 / seconds;
        }
        let (p, o) = if pair % 2 == 0 { (rps[0], rps[1]) } else { (rps[1], rps[0]) };
        println!("http/pair {pair}: plain {p:>9.0} req/s, contextvars {o:>9.0} req/s, ratio {:.3}", o / p);
        plain_rps.push(p);
        ours_rps.push(o);
        ratios.push(o / p);
    }
    let (p, o, r) = (median(&mut plain_rps), median(&mut ours_rps), median(&mut ratios));
    println!("http/plain        median {p:>9.0} req/s");
    println!("http/contextvars  median {o:>9.0} req/s");
    println!("http/ratio        median {r:.3} (contextvars / plain, per pair)");
    println!(
        "{{\"http/plain_rps\": {p:.0}, \"http/contextvars_rps\": {o:.0}, \"http/ratio\": {r:.4}, \"pairs\": {PAIRS}, \"connections\": {CONNECTIONS}}}"
    );
}
