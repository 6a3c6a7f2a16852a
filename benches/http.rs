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
//!
//! For profiles, `HTTP_COUNT=name:n` serves only the server `name`, sends it exactly `n`
//! requests (no warm-up, no time limit) and exits, so that a profiler sees one server and a
//! known number of requests: e.g. `HTTP_COUNT=contextvars:20000 valgrind --tool=callgrind
//! --separate-threads=yes target/release/deps/http-* --bench` (subtract a run of 2,000 to
//! leave set-up out), or `perf stat` of the same with `plain:n` against `contextvars:n`.

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
    round_of(addr, REQUESTS, Some(ROUND_LIMIT)).await
}

/// `requests` requests to `addr`, stopping at `limit` if there is one.
async fn round_of(addr: SocketAddr, requests: usize, limit: Option<Duration>) -> (usize, f64) {
    let sent = std::sync::Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = limit.map(|limit| start + limit);
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
            while sent.fetch_add(1, Ordering::Relaxed) < requests as u64
                && deadline.is_none_or(|deadline| Instant::now() < deadline)
            {
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
    if let Ok(spec) = std::env::var("HTTP_COUNT") {
        let (name, n) = spec.split_once(':').expect("HTTP_COUNT=server:n");
        let n: usize = n.parse().expect("a number of requests");
        return count(name, n);
    }
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

/// `HTTP_COUNT=name:n`: exactly `n` requests to the server `name` alone, for profiles. Where
/// the kernel shows them (`/proc/self/task/*/schedstat`, Linux), it also prints per thread and
/// per request the time run on a core (of it in the kernel, sampled at the clock tick), the
/// time waited for one, and the times scheduled in.
fn count(name: &str, n: usize) {
    let servers = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let addr = servers.block_on(serve(servers::server(name)));
    let client = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let before = thread_times();
    let (answered, seconds) = client.block_on(round_of(addr, n, None));
    let after = thread_times();
    println!(
        "http/count {name}: {answered} requests in {seconds:.3} s, {:.0} req/s",
        answered as f64 / seconds
    );
    for (thread, now) in after {
        let then = before.get(&thread).copied().unwrap_or_default();
        let per = |field: fn(&ThreadTimes) -> u64| (field(&now) - field(&then)) as f64 / answered as f64;
        println!(
            "http/count   thread {thread:<24} ran {:>6.0} ns ({:>6.0} ns in the kernel), waited {:>6.0} ns, \
             scheduled in {:.3} times per request",
            per(|t| t.ran),
            per(|t| t.kernel),
            per(|t| t.waited),
            per(|t| t.slices)
        );
    }
}

/// What the kernel says of one thread, in nanoseconds and counts since it started.
#[derive(Clone, Copy, Default)]
struct ThreadTimes {
    ran: u64,
    kernel: u64,
    waited: u64,
    slices: u64,
}

/// Each thread of this process (id and name) with its times; empty where `/proc` does not
/// tell.
fn thread_times() -> std::collections::BTreeMap<String, ThreadTimes> {
    // The clock tick of `/proc/*/stat` is 100 Hz on every Linux this runs on.
    const NS_PER_TICK: u64 = 10_000_000;
    let mut times = std::collections::BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return times };
    for task in tasks.flatten() {
        let path = task.path();
        let (Ok(name), Ok(sched), Ok(stat)) = (
            std::fs::read_to_string(path.join("comm")),
            std::fs::read_to_string(path.join("schedstat")),
            std::fs::read_to_string(path.join("stat")),
        ) else {
            continue;
        };
        let sched: Vec<u64> = sched.split_whitespace().filter_map(|f| f.parse().ok()).collect();
        // After the name in parentheses: state is field 3, stime field 15 of `proc(5)`.
        let stime =
            stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(12)?.parse::<u64>().ok());
        if let (&[ran, waited, slices], Some(stime)) = (sched.as_slice(), stime) {
            let thread = format!("{} {}", task.file_name().to_string_lossy(), name.trim());
            times.insert(thread, ThreadTimes { ran, kernel: stime * NS_PER_TICK, waited, slices });
        }
    }
    times
}
