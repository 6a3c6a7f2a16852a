//! Crossing tasks and threads: spawn and join next to tokio's own, the merge on its own, and
//! a `#[sync_endpoint]` call next to the same thing written by hand.
//!
//! `cargo bench -p contextvars-benches --bench tasks`

use std::hint::black_box;

use contextvars::{Changes, Context, ContextVar};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use tokio::runtime::Runtime;

static VARS: [ContextVar<u64>; 1_024] = [const { ContextVar::new("v", || 0) }; 1_024];

/// Sets the first `n` variables in the current context.
fn fill(n: usize) {
    for (i, var) in VARS.iter().take(n).enumerate() {
        var.set(i as u64);
    }
}

/// Joins per measured iteration: one `block_on` is shared by this many spawns and joins, so
/// that its own cost and jitter weigh little next to what is compared.
const JOINS: usize = 50;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap()
}

/// One spawn and join per `block_on`, as a request handler would: each includes waking a
/// worker thread and being woken back, as in the tokio figures of ANCHORS.md.
fn spawn_join(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("spawn_join");
    rt.block_on(async { fill(16) });
    group.bench_function("tokio_spawn", |b| {
        b.iter(|| rt.block_on(async { tokio::spawn(async { black_box(1) }).await.unwrap() }))
    });
    group.bench_function("contextvars_spawn", |b| {
        b.iter(|| rt.block_on(async { contextvars::spawn(async { black_box(1) }).await.unwrap() }))
    });
    group.bench_function("contextvars_spawn_merge_back_1_change", |b| {
        b.iter(|| {
            rt.block_on(async { contextvars::spawn(async { VARS[3].set(7) }).merge_back().await.unwrap() })
        })
    });
    group.finish();
}

/// `JOINS` spawns and joins in a row on a current-thread runtime: the child runs when the
/// parent awaits it, no thread is woken, and what remains is the cost of the spawn and the
/// join themselves.
fn spawn_join_one_thread(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let mut group = c.benchmark_group("spawn_join_one_thread_x50");
    rt.block_on(async { fill(16) });
    group.bench_function("tokio_spawn", |b| {
        b.iter(|| {
            rt.block_on(async {
                for _ in 0..JOINS {
                    tokio::spawn(async { black_box(1) }).await.unwrap();
                }
            })
        })
    });
    group.bench_function("contextvars_spawn", |b| {
        b.iter(|| {
            rt.block_on(async {
                for _ in 0..JOINS {
                    contextvars::spawn(async { black_box(1) }).await.unwrap();
                }
            })
        })
    });
    group.bench_function("contextvars_spawn_merge_back_1_change", |b| {
        b.iter(|| {
            rt.block_on(async {
                for _ in 0..JOINS {
                    contextvars::spawn(async { VARS[3].set(7) }).merge_back().await.unwrap();
                }
            })
        })
    });
    group.finish();
}

/// One `spawn_blocking` and join per `block_on`, as ANCHORS.md measured tokio's.
fn spawn_blocking_join(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("spawn_blocking_join");
    rt.block_on(async { fill(1_024) });
    group.bench_function("tokio_spawn_blocking", |b| {
        b.iter(|| rt.block_on(async { tokio::task::spawn_blocking(|| black_box(1)).await.unwrap() }))
    });
    group.bench_function("contextvars_spawn_blocking", |b| {
        b.iter(|| rt.block_on(async { contextvars::spawn_blocking(|| black_box(1)).await.unwrap() }))
    });
    group.bench_function("contextvars_merge_back_1_of_1024", |b| {
        b.iter(|| {
            rt.block_on(async {
                contextvars::spawn_blocking(|| VARS[512].set(7)).merge_back().await.unwrap()
            })
        })
    });
    group.finish();
}

fn merge(c: &mut Criterion) {
    let mut group = c.benchmark_group("merge_of_1024");
    for changes in [1, 100] {
        let mut parent = Context::new();
        parent.run(|| fill(1_024));
        let fork = parent.clone();
        let mut child = fork.clone();
        child.run(|| {
            for var in VARS.iter().skip(300).take(changes) {
                var.set(99);
            }
        });
        group.bench_function(BenchmarkId::new("between_and_apply", changes), |b| {
            parent.run(|| b.iter(|| Changes::between(&fork, &child).apply()))
        });
        group.bench_function(BenchmarkId::new("between", changes), |b| {
            b.iter(|| black_box(Changes::between(&fork, &child)))
        });
    }
    group.finish();
}

#[contextvars::sync_endpoint]
fn endpoint(n: u64) -> u64 {
    VARS[1].set(n);
    n + 1
}

async fn by_hand(n: u64) -> u64 {
    let handle = contextvars::spawn_blocking(move || {
        VARS[1].set(n);
        n + 1
    });
    handle.merge_back().await.unwrap()
}

fn sync_endpoint(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("sync_endpoint");
    rt.block_on(async { fill(16) });
    group.bench_function("macro", |b| b.iter(|| rt.block_on(endpoint(black_box(1)))));
    group.bench_function("by_hand", |b| b.iter(|| rt.block_on(by_hand(black_box(1)))));
    group.finish();
}

criterion_group!(benches, spawn_join, spawn_join_one_thread, spawn_blocking_join, merge, sync_endpoint);
criterion_main!(benches);
