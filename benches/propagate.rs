//! What one `#[propagate(back)]` call costs at its exit: one change made, then landed in the
//! caller's context and marked there. The cost must follow the changes the call made, not
//! how many variables earlier calls marked: measured in a fresh context and after 1,024 and
//! 8,192 variables were marked, next to the plain `set` it wraps and (in the fresh context) a
//! `set` while a snapshot is held, the copy-on-write every call pays. Also what a spawn pays
//! for marks: its child starts with none, whatever the parent marked (`spawn_after_marked`,
//! a spawn and a plain join on a current-thread runtime, and `fork_after_marked`, the copy
//! alone: `Fork::current()`, dropped).
//!
//! `cargo bench -p contextvars-benches --bench propagate`

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context as TaskContext, Poll, Waker};

use contextvars::{Context, ContextVar, Fork, propagate_back, propagate_back_async};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

mod vars;
use vars::{VARS, marked};

const MARKED: [usize; 2] = [1_024, 8_192];

static ONE: ContextVar<u64> = ContextVar::new("ONE", || 0);

fn one_change(c: &mut Criterion) {
    let mut group = c.benchmark_group("propagate_back_one_change");
    // A fresh context: the variable is the only one, marked after the first call.
    Context::new().run(|| {
        group.bench_function("fresh_context", |b| {
            let mut i = 0u64;
            b.iter(|| {
                i += 1;
                propagate_back(None, || ONE.set(black_box(i)))
            })
        });
        group.bench_function("fresh_context_plain_set", |b| {
            let mut i = 0u64;
            b.iter(|| {
                i += 1;
                ONE.set(black_box(i))
            })
        });
        // The copy-on-write a call cannot avoid: a `set` while a snapshot is held (the
        // same figure as `core`'s "set after a snapshot"), to compare with on a busy machine.
        group.bench_function("fresh_context_set_after_snapshot", |b| {
            let mut i = 0u64;
            b.iter(|| {
                i += 1;
                let snapshot = Context::current();
                let token = ONE.set(black_box(i));
                drop(snapshot);
                token
            })
        });
        group.bench_function("fresh_context_async", |b| {
            let mut cx = TaskContext::from_waker(Waker::noop());
            let mut i = 0u64;
            b.iter(|| {
                i += 1;
                let call = pin!(propagate_back_async(None, async move { ONE.set(black_box(i)) }));
                match call.poll(&mut cx) {
                    Poll::Ready(token) => token,
                    Poll::Pending => unreachable!("the body never waits"),
                }
            })
        });
    });
    for n in MARKED {
        let mut ctx = marked(n);
        // One of the marked variables, changed again.
        let var = &VARS[n / 2];
        ctx.run(|| {
            group.bench_function(BenchmarkId::new("after_marked", n), |b| {
                let mut i = 0u64;
                b.iter(|| {
                    i += 1;
                    propagate_back(None, || var.set(black_box(i)))
                })
            });
            group.bench_function(BenchmarkId::new("after_marked_plain_set", n), |b| {
                let mut i = 0u64;
                b.iter(|| {
                    i += 1;
                    var.set(black_box(i))
                })
            });
        });
    }
    group.finish();
}

fn spawn_with_marks(c: &mut Criterion) {
    let mut group = c.benchmark_group("spawn_with_marks");
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("a runtime");
    for n in [0, MARKED[0], MARKED[1]] {
        let mut ctx = marked(n);
        ctx.run(|| {
            group.bench_function(BenchmarkId::new("fork_after_marked", n), |b| {
                b.iter(|| black_box(Fork::current()))
            });
            group.bench_function(BenchmarkId::new("spawn_after_marked", n), |b| {
                b.iter(|| {
                    rt.block_on(async { contextvars::spawn(async { black_box(1) }).await.expect("no panic") })
                })
            });
        });
    }
    group.finish();
}

criterion_group!(benches, one_change, spawn_with_marks);
criterion_main!(benches);
