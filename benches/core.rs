//! The hot paths of one context, side by side with what users would use instead:
//! `get`, `with`, `set`, `reset`, `Context::current`, `Context::run` and a `Scope` poll, next to
//! `tokio::task_local!`, `std::thread_local!` and an `Arc` clone, at 1, 16, 1,024 and 10,000
//! variables set.
//!
//! `cargo bench -p contextvars-benches --bench core`

use std::cell::Cell;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, Waker};

use contextvars::{Context, ContextVar};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

mod vars;
use vars::{VARS, context_with};

const SIZES: [usize; 4] = [1, 16, 1_024, 10_000];

static NAME: ContextVar<String> = ContextVar::new("NAME", String::new);

tokio::task_local! {
    static TASK_LOCAL: u64;
}

/// What an OpenTelemetry `Context` holds here: one value, keyed by its type.
#[derive(Debug)]
struct OtelValue(u64);

thread_local! {
    static THREAD_LOCAL: Cell<u64> = const { Cell::new(0) };
}

fn get(c: &mut Criterion) {
    let mut group = c.benchmark_group("get_u64");
    for n in SIZES {
        let mut ctx = context_with(n);
        let var = &VARS[n / 2];
        ctx.run(|| {
            group.bench_function(BenchmarkId::new("contextvars", n), |b| b.iter(|| black_box(var).get()))
        });
    }
    TASK_LOCAL.sync_scope(7, || {
        group.bench_function("task_local_with", |b| b.iter(|| TASK_LOCAL.with(|v| black_box(*v))));
    });
    group.bench_function("thread_local_get", |b| b.iter(|| THREAD_LOCAL.with(|v| black_box(v.get()))));
    {
        let _attached = opentelemetry::Context::current_with_value(OtelValue(7)).attach();
        group.bench_function("opentelemetry_current_get", |b| {
            b.iter(|| opentelemetry::Context::current().get::<OtelValue>().map(|v| black_box(v.0)))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("with_string");
    let mut ctx = context_with(16);
    ctx.run(|| {
        let _ = NAME.set("a user name".to_string());
        group.bench_function("contextvars", |b| b.iter(|| NAME.with(|s| black_box(s.len()))));
        group.bench_function("contextvars_get_clone", |b| b.iter(|| black_box(NAME.get())));
    });
    group.finish();
}

fn set(c: &mut Criterion) {
    let mut group = c.benchmark_group("set_u64");
    for n in SIZES {
        let mut ctx = context_with(n);
        let var = &VARS[n / 2];
        ctx.run(|| {
            // The token dropped at once, as in the usual `VAR.set(value);` statement.
            group.bench_function(BenchmarkId::new("in_place", n), |b| {
                let mut i = 0u64;
                b.iter(|| {
                    i += 1;
                    var.set(black_box(i));
                })
            });
            group.bench_function(BenchmarkId::new("in_place_keep_token", n), |b| {
                let mut i = 0u64;
                b.iter(|| {
                    i += 1;
                    black_box(var.set(i))
                })
            });
            // A write after a snapshot, everything the user's code pays for: the snapshot,
            // the path copy, and the drops of the token and the snapshot (which free the old
            // path and the replaced value), as CPython's `copy_context(); var.set(x)` does.
            group.bench_function(BenchmarkId::new("after_snapshot", n), |b| {
                let mut i = 0u64;
                b.iter(|| {
                    i += 1;
                    let snapshot = Context::current();
                    let token = var.set(black_box(i));
                    drop(token);
                    drop(snapshot);
                })
            });
            // Breakdown only: the same with both drops left out of the timing.
            group.bench_function(BenchmarkId::new("after_snapshot_drops_untimed", n), |b| {
                let mut i = 0u64;
                b.iter_with_large_drop(|| {
                    i += 1;
                    let snapshot = Context::current();
                    let token = var.set(black_box(i));
                    (snapshot, token)
                })
            });
            if n == 1 {
                group.bench_function("opentelemetry_with_value_attach", |b| {
                    let mut i = 0u64;
                    b.iter(|| {
                        i += 1;
                        black_box(opentelemetry::Context::current_with_value(OtelValue(i)).attach())
                    })
                });
            }
            group.bench_function(BenchmarkId::new("set_reset", n), |b| {
                b.iter(|| {
                    let token = var.set(1);
                    var.reset(token).unwrap();
                })
            });
        });
    }
    group.finish();
}

fn snapshot(c: &mut Criterion) {
    let mut group = c.benchmark_group("snapshot");
    for n in SIZES {
        let mut ctx = context_with(n);
        ctx.run(|| {
            group.bench_function(BenchmarkId::new("context_current", n), |b| b.iter(Context::current));
        });
    }
    let arc = Arc::new(5u64);
    group.bench_function("arc_clone_drop", |b| b.iter(|| black_box(Arc::clone(&arc))));
    group.finish();

    let mut group = c.benchmark_group("run");
    for n in SIZES {
        let mut ctx = context_with(n);
        group.bench_function(BenchmarkId::new("context_run", n), |b| b.iter(|| ctx.run(|| black_box(1))));
    }
    group.bench_function("task_local_sync_scope", |b| b.iter(|| TASK_LOCAL.sync_scope(1, || black_box(1))));
    group.finish();
}

/// A future that is pending `n` times, then ready: polls it in a loop, no runtime.
struct Yield(u32);

impl Future for Yield {
    type Output = ();
    fn poll(mut self: std::pin::Pin<&mut Self>, _: &mut TaskContext<'_>) -> Poll<()> {
        if black_box(self.0) == 0 {
            return Poll::Ready(());
        }
        self.0 -= 1;
        Poll::Pending
    }
}

fn poll_to_end<F: Future>(fut: F) {
    let mut fut = pin!(fut);
    let mut cx = TaskContext::from_waker(Waker::noop());
    while fut.as_mut().poll(&mut cx).is_pending() {}
}

fn scope_poll(c: &mut Criterion) {
    const POLLS: u32 = 100;
    let mut group = c.benchmark_group("poll_100");
    let ctx = context_with(16);
    group.bench_function("unscoped", |b| b.iter(|| poll_to_end(Yield(POLLS))));
    group.bench_function("contextvars_scope", |b| b.iter(|| poll_to_end(ctx.clone().scope(Yield(POLLS)))));
    group.bench_function("task_local_scope", |b| b.iter(|| poll_to_end(TASK_LOCAL.scope(1, Yield(POLLS)))));
    group.finish();
}

criterion_group!(benches, get, set, snapshot, scope_poll);
criterion_main!(benches);
