//! One operation in a loop, for instruction counts under callgrind (where a criterion run
//! would count criterion too) and for quick A/B timings:
//!
//! ```sh
//! cargo bench -p contextvars-benches --bench ops --no-run   # prints the binary's path
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/deps/ops-* set_after_snapshot 16 20000
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/deps/ops-* set_after_snapshot 16 120000
//! ```
//!
//! The difference of the two totals divided by 100,000 is the count per operation, setup
//! excluded. Operations: `get`, `set` (in place, token dropped), `current`
//! (`Context::current()` and its drop), `set_after_snapshot` (`Context::current()`, `set`,
//! both dropped), at `n` variables set; `propagate_back` (one call changing one variable,
//! token dropped), `propagate_back_async` (the same, polled once) and `fork` (what a spawn
//! copies: `Fork::current()`, dropped), at `n` variables marked by an earlier
//! `propagate_back` call; `tokio_spawn_blocking` (tokio's `spawn_blocking` and its join, in
//! a `block_on` of a current-thread runtime) and `spawn_blocking_merge_back` (ours, the
//! closure setting one of the `n` variables, joined by `merge_back`; `_marked`: from a
//! context whose `n` variables are marked): all threads counted, so the handoff's work is in
//! the count and its wait is not. Under `cargo bench` (no operation named) it does nothing.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::Instant;

use contextvars::{Context, Fork, propagate_back, propagate_back_async};

mod vars;
use vars::{VARS, context_with, marked};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|arg| !arg.starts_with("--")).collect();
    let [op, n, iterations] = args.as_slice() else {
        return;
    };
    let n: usize = n.parse().expect("a number of variables, at most 8,192");
    let iterations: u64 = iterations.parse().expect("a number of iterations");
    let mut ctx = if matches!(
        op.as_str(),
        "propagate_back" | "propagate_back_async" | "fork" | "spawn_blocking_merge_back_marked"
    ) {
        marked(n)
    } else {
        context_with(n)
    };
    let var = &VARS[n / 2];
    // For the two spawn_blocking operations: a current-thread runtime, so that no idle worker
    // adds its own instructions; the blocking pool's thread is counted with the caller's.
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("a runtime");
    let start = Instant::now();
    ctx.run(|| match op.as_str() {
        "get" => (0..iterations).for_each(|_| {
            black_box(black_box(var).get());
        }),
        "set" => (0..iterations).for_each(|i| {
            var.set(black_box(i));
        }),
        "current" => (0..iterations).for_each(|_| {
            drop(black_box(Context::current()));
        }),
        "set_after_snapshot" => (0..iterations).for_each(|i| {
            let snapshot = Context::current();
            let token = var.set(black_box(i));
            drop(token);
            drop(snapshot);
        }),
        "propagate_back" => (0..iterations).for_each(|i| {
            drop(propagate_back(None, || var.set(black_box(i))));
        }),
        "propagate_back_async" => (0..iterations).for_each(|i| {
            let call = pin!(propagate_back_async(None, async move { var.set(black_box(i)) }));
            match call.poll(&mut TaskContext::from_waker(Waker::noop())) {
                Poll::Ready(token) => drop(token),
                Poll::Pending => unreachable!("the body never waits"),
            }
        }),
        "fork" => (0..iterations).for_each(|_| {
            drop(black_box(Fork::current()));
        }),
        "tokio_spawn_blocking" => (0..iterations).for_each(|_| {
            let joined = runtime.block_on(async { tokio::task::spawn_blocking(|| black_box(1)).await });
            black_box(joined.unwrap());
        }),
        "spawn_blocking_merge_back" | "spawn_blocking_merge_back_marked" => (0..iterations).for_each(|i| {
            let joined = runtime.block_on(async move {
                contextvars::spawn_blocking(move || var.set(black_box(i))).merge_back().await
            });
            drop(joined.unwrap());
        }),
        other => panic!(
            "unknown operation {other}: get, set, current, set_after_snapshot, propagate_back, \
             propagate_back_async, fork, tokio_spawn_blocking, spawn_blocking_merge_back or \
             spawn_blocking_merge_back_marked"
        ),
    });
    println!("{op} at {n}: {:.1} ns", start.elapsed().as_nanos() as f64 / iterations as f64);
}
