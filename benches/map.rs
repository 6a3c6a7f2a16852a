//! The persistent map under a context, next to the crates it could have been built on:
//! `rpds::HashTrieMapSync` and `imbl::HashMap` holding the same kind of values
//! (`Arc<dyn Any + Send + Sync>` under small integer keys), at 16 and 1,024 entries.
//!
//! Ours is measured through the public API (`ContextVar::get`/`set` inside `Context::run`),
//! so its figures include the thread-local lookup the crates' figures do not: the comparison
//! is conservative.
//!
//! `cargo bench -p contextvars-benches --bench map`

use std::any::Any;
use std::hint::black_box;
use std::sync::Arc;

use contextvars::{Context, ContextVar};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

static VARS: [ContextVar<u64>; 1_024] = [const { ContextVar::new("v", || 0) }; 1_024];

type Erased = Arc<dyn Any + Send + Sync>;

fn erased(n: u64) -> Erased {
    Arc::new(n)
}

fn maps(c: &mut Criterion) {
    for n in [16usize, 1_024] {
        let mut ctx = Context::new();
        ctx.run(|| {
            for (i, var) in VARS.iter().take(n).enumerate() {
                var.set(i as u64);
            }
        });
        let rpds: rpds::HashTrieMapSync<u32, Erased> = (0..n as u32).map(|k| (k, erased(k as u64))).collect();
        let imbl: imbl::HashMap<u32, Erased> = (0..n as u32).map(|k| (k, erased(k as u64))).collect();
        let key = (n / 2) as u32;

        let mut group = c.benchmark_group("map_get");
        ctx.run(|| {
            group.bench_function(BenchmarkId::new("contextvars", n), |b| {
                b.iter(|| black_box(&VARS[n / 2]).get())
            })
        });
        group.bench_function(BenchmarkId::new("rpds", n), |b| {
            b.iter(|| *rpds.get(black_box(&key)).unwrap().downcast_ref::<u64>().unwrap())
        });
        group.bench_function(BenchmarkId::new("imbl", n), |b| {
            b.iter(|| *imbl.get(black_box(&key)).unwrap().downcast_ref::<u64>().unwrap())
        });
        group.finish();

        // A write to a map nobody else holds: in place where the structure allows it.
        let mut group = c.benchmark_group("map_set_unshared");
        ctx.run(|| {
            group.bench_function(BenchmarkId::new("contextvars", n), |b| {
                let mut i = 0;
                b.iter(|| {
                    i += 1;
                    black_box(VARS[n / 2].set(i))
                })
            })
        });
        let mut rpds_mut = rpds.clone();
        let mut imbl_mut = imbl.clone();
        drop((rpds_mut.clone(), imbl_mut.clone()));
        group.bench_function(BenchmarkId::new("rpds_insert_mut", n), |b| {
            b.iter(|| rpds_mut.insert_mut(black_box(key), erased(1)))
        });
        group.bench_function(BenchmarkId::new("imbl_insert", n), |b| {
            b.iter(|| black_box(imbl_mut.insert(black_box(key), erased(1))))
        });
        group.finish();

        // A write right after a snapshot: the path copy.
        let mut group = c.benchmark_group("map_set_after_snapshot");
        ctx.run(|| {
            group.bench_function(BenchmarkId::new("contextvars", n), |b| {
                let mut i = 0;
                b.iter(|| {
                    i += 1;
                    let snapshot = Context::current();
                    black_box(VARS[n / 2].set(i));
                    snapshot
                })
            })
        });
        group.bench_function(BenchmarkId::new("rpds_insert", n), |b| {
            b.iter(|| rpds.insert(black_box(key), erased(1)))
        });
        group.bench_function(BenchmarkId::new("imbl_clone_insert", n), |b| {
            b.iter(|| {
                let mut copy = imbl.clone();
                copy.insert(black_box(key), erased(1));
                copy
            })
        });
        group.finish();
    }
}

criterion_group!(benches, maps);
criterion_main!(benches);
