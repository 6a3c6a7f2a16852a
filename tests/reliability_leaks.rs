//! Leaks: memory stays flat over many spawn/merge cycles, and no value outlives the last
//! context that holds it.
//!
//! A counting global allocator (live bytes and blocks, all threads), so this file holds only
//! these tests, and they take turns: a test measuring memory must not see another's.
//!
//! 50,000 cycles by default; `CONTEXTVARS_LONG=1` runs 1,000,000.

use std::sync::{Arc, Mutex, MutexGuard};

use contextvars::{Context, ContextVar, propagate_back};

mod support;
use support::{Counted, Counting, Live, fault, live_blocks, live_bytes, poll_once, quiet_injected_panics};

#[global_allocator]
static GLOBAL: Counting = Counting;

/// One test at a time: the allocator counts every thread.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

static HELD: ContextVar<Option<Counted>> = ContextVar::new("HELD", || None);
static KEPT: ContextVar<Option<Counted>> = ContextVar::new("KEPT", || None).inherit(false).back(false);
static NAME: ContextVar<String> = ContextVar::new("NAME", String::new);
static SUM: ContextVar<u64> = ContextVar::new("SUM", || 0).merge(|base, parent, child| parent + child - base);
/// Enough variables that the maps are three levels deep.
static WIDE: [ContextVar<u64>; 300] = [const { ContextVar::new("wide", || 0) }; 300];

fn cycles() -> u64 {
    if std::env::var_os("CONTEXTVARS_LONG").is_some() { 1_000_000 } else { 50_000 }
}

/// One spawn/merge cycle; which kind depends on `n`. Every child sets a counted value, a
/// string, a summed counter and one of the wide variables; the parent merges all or some of
/// it back, or nothing.
async fn cycle(n: u64, live: &Arc<Live>) {
    let value = Some(Counted::new(live));
    let child = move || {
        HELD.set(value.clone());
        KEPT.set(value);
        NAME.set(format!("child {n}"));
        SUM.set(SUM.get() + 1);
        WIDE[(n % 300) as usize].set(n);
    };
    match n % 6 {
        0 => contextvars::spawn(async move { child() }).merge_back().await.unwrap(),
        1 => contextvars::spawn_blocking(child).merge_back().await.unwrap(),
        // `#[propagate(back)]` by hand: a plain `.await` brings the recorded changes.
        2 => contextvars::spawn(async move { propagate_back(None, child) }).await.unwrap(),
        3 => contextvars::spawn(async move { child() }).await.unwrap(),
        4 => {
            let handle = contextvars::spawn(async move {
                child();
                std::future::pending::<()>().await
            });
            tokio::task::yield_now().await;
            handle.abort();
            assert!(handle.merge_back().await.unwrap_err().is_cancelled());
        }
        _ => {
            let _ = contextvars::spawn(async move {
                child();
                fault();
            })
            .merge_back()
            .await;
        }
    }
}

#[test]
fn memory_stays_flat_over_many_spawn_and_merge_cycles() {
    let _turn = one_at_a_time();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let live = Live::new();
    let total = cycles();
    quiet_injected_panics();
    let (after_warm_up, samples) = runtime.block_on(Context::new().scope(async {
        let warm_up = total / 10;
        for n in 0..warm_up {
            cycle(n, &live).await;
        }
        let after_warm_up = live_bytes();
        let mut samples = Vec::new();
        for chunk in 0..10 {
            for n in 0..total / 10 {
                cycle(warm_up + chunk * (total / 10) + n, &live).await;
            }
            samples.push((live_bytes(), live_blocks()));
            // The only counted values alive are the one the root's `HELD` holds and the one its
            // record of `#[propagate(back)]` deliveries holds (see the last test here): two
            // at most, whatever the number of cycles.
            assert!(live.get() <= 2, "{} counted values alive", live.get());
        }
        (after_warm_up, samples)
    }));
    drop(runtime);
    let growth = samples.iter().map(|(bytes, _)| bytes - after_warm_up).max().unwrap();
    println!(
        "{total} spawn/merge cycles: live bytes after warm-up {after_warm_up}, then per tenth \
         (bytes, blocks) {samples:?}; largest growth {growth} bytes"
    );
    // A leak of even one small allocation per cycle would grow by more than a byte a cycle.
    assert!(growth < total as isize, "memory grew by {growth} bytes over {total} cycles");
    assert_eq!(live.get(), 0, "no counted value outlived the runtime");
}

// ---------------------------------------------------------------------------------------
// No value outlives the last context that holds it: checked at the moment that context goes.

#[test]
fn a_value_lives_exactly_as_long_as_the_snapshots_and_tokens_that_hold_it() {
    let _turn = one_at_a_time();
    let live = Live::new();
    Context::new().run(|| {
        let first = HELD.set(Some(Counted::new(&live)));
        let snapshot = Context::current();
        HELD.set(Some(Counted::new(&live)));
        assert_eq!(live.get(), 2, "the snapshot keeps the first value");
        drop(snapshot);
        // The second value, written while the snapshot shared the context's map, waits in
        // the map's list of recent writes and shadows the first there: the one bound on
        // lifetimes (BENCHMARKS.md, "The map"). The first goes at the next write of `HELD`.
        assert_eq!(live.get(), 2, "the shadowed first value waits for the next write");
        HELD.reset(first).unwrap();
        assert_eq!(live.get(), 0, "the first went at that write, the second with the reset");

        // A value overwritten in place goes to the token; dropping the token frees it.
        HELD.set(Some(Counted::new(&live)));
        let token = HELD.set(Some(Counted::new(&live)));
        assert_eq!(live.get(), 2);
        drop(token);
        assert_eq!(live.get(), 1);
        HELD.set(None);
        assert_eq!(live.get(), 0);
    });
}

#[test]
fn a_value_lives_exactly_as_long_as_the_contexts_and_changes_that_hold_it() {
    let _turn = one_at_a_time();
    let live = Live::new();
    let mut context = Context::new();
    context.run(|| HELD.set(Some(Counted::new(&live))));
    let copy = context.clone();
    drop(context);
    assert_eq!(live.get(), 1, "the copy holds it");
    let changes = contextvars::Changes::between(&Context::new(), &copy);
    drop(copy);
    assert_eq!(live.get(), 1, "the changes hold it");
    Context::new().run(|| {
        changes.apply();
        assert_eq!(live.get(), 1);
        HELD.set(None);
    });
    assert_eq!(live.get(), 0);

    // The thread's own context, at thread exit.
    let thread_live = live.clone();
    std::thread::spawn(move || drop(HELD.set(Some(Counted::new(&thread_live))))).join().unwrap();
    assert_eq!(live.get(), 0, "freed with the thread");

    // A scope dropped before it finished.
    let mut scope = Box::pin(Context::new().scope(std::future::pending::<()>()));
    let live_in_scope = live.clone();
    let mut scope_setting = Box::pin(Context::new().scope(async move {
        HELD.set(Some(Counted::new(&live_in_scope)));
        std::future::pending::<()>().await
    }));
    assert!(poll_once(scope.as_mut()).is_pending() && poll_once(scope_setting.as_mut()).is_pending());
    assert_eq!(live.get(), 1);
    drop(scope_setting);
    assert_eq!(live.get(), 0, "freed with the scope");
}

#[test]
fn a_childs_values_are_freed_by_the_time_its_join_returns() {
    let _turn = one_at_a_time();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(Context::new().scope(async {
        let live = Live::new();
        let set = |live: &Arc<Live>| {
            let (a, b) = (Some(Counted::new(live)), Some(Counted::new(live)));
            move || {
                HELD.set(a);
                // Overwritten in the child, and not inherited nor merged.
                KEPT.set(b);
                KEPT.set(None);
            }
        };
        let child = set(&live);
        contextvars::spawn(async move { child() }).await.unwrap();
        assert_eq!(live.get(), 0, "plain await: nothing kept");
        let child = set(&live);
        contextvars::spawn_blocking(child).await.unwrap();
        assert_eq!(live.get(), 0, "blocking, plain join: nothing kept");
        let child = set(&live);
        contextvars::spawn(async move { child() }).merge_back().await.unwrap();
        assert_eq!(live.get(), 1, "merged: the parent holds the child's value, nothing else");
        let child = set(&live);
        contextvars::spawn_blocking(child).merge_back().await.unwrap();
        assert_eq!(live.get(), 1, "merged again: the parent's previous value is gone");
        HELD.set(None);
        assert_eq!(live.get(), 0);
    }));
}

/// A value the joining context held in its own map (set there before any snapshot) and a
/// `merge_back` replaced is freed at the join, whatever the child was, also when the join
/// takes the child's map whole (the values the child's writes shadow go with it).
#[test]
fn a_value_a_merge_back_replaces_is_freed_at_the_join() {
    let _turn = one_at_a_time();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(Context::new().scope(async {
        let live = Live::new();
        HELD.set(Some(Counted::new(&live)));
        for round in 0..3 {
            let value = Some(Counted::new(&live));
            contextvars::spawn_blocking(move || HELD.set(value)).merge_back().await.unwrap();
            assert_eq!(live.get(), 1, "spawn_blocking, round {round}");
            let value = Some(Counted::new(&live));
            contextvars::spawn(async move { HELD.set(value) }).merge_back().await.unwrap();
            assert_eq!(live.get(), 1, "spawn, round {round}");
            let value = Some(Counted::new(&live));
            contextvars::thread::spawn(move || HELD.set(value)).merge_back().unwrap();
            assert_eq!(live.get(), 1, "thread, round {round}");
            let mut set = contextvars::JoinSet::new();
            let value = Some(Counted::new(&live));
            set.spawn_blocking(move || drop(HELD.set(value)));
            set.merge_back_next().await.unwrap().unwrap();
            assert_eq!(live.get(), 1, "JoinSet, round {round}");
        }
        HELD.set(None);
        assert_eq!(live.get(), 0);
    }));
}

/// The same for a `#[propagate(back)]` function's exit, sync and async: a value the caller
/// held in its own map and the function replaced is freed as the function returns, also when
/// the exit takes the copy's map whole (the values the copy's writes shadow go with it).
#[test]
fn a_value_a_propagate_back_exit_replaces_is_freed_at_the_exit() {
    let _turn = one_at_a_time();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    runtime.block_on(Context::new().scope(async {
        let live = Live::new();
        HELD.set(Some(Counted::new(&live)));
        for round in 0..3 {
            let value = Some(Counted::new(&live));
            propagate_back(None, || HELD.set(value));
            assert_eq!(live.get(), 1, "sync, round {round}");
            let value = Some(Counted::new(&live));
            contextvars::propagate_back_async(None, async move {
                tokio::task::yield_now().await;
                HELD.set(value);
            })
            .await;
            assert_eq!(live.get(), 1, "async, round {round}");
        }
        HELD.set(None);
        assert_eq!(live.get(), 0);
    }));
}

/// A plain `.await` delivers the child's final values and keeps no record of its own: a
/// delivered value lives exactly as long as a context holds it, and a value the child
/// replaced after it arrived is gone (it used to wait in a record, and flow up stale).
#[test]
fn a_value_delivered_by_a_plain_await_lives_while_a_context_holds_it() {
    let _turn = one_at_a_time();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let live = Live::new();
    let scope_live = live.clone();
    runtime.block_on(Context::new().scope(async move {
        let live = scope_live;
        let task_live = live.clone();
        contextvars::spawn(async move {
            let value = Some(Counted::new(&task_live));
            contextvars::spawn(async move { propagate_back(None, || HELD.set(value)) }).await.unwrap();
            assert_eq!(task_live.get(), 1, "delivered to this task");
            HELD.set(None);
            assert_eq!(task_live.get(), 0, "replaced: nothing else holds it");
        })
        .await
        .unwrap();
        // The task's final value (none) is what arrived here.
        assert!(HELD.with(Option::is_none));
        assert_eq!(live.get(), 0);
        let value = Some(Counted::new(&live));
        contextvars::spawn(async move { propagate_back(None, || HELD.set(value)) }).await.unwrap();
        assert_eq!(live.get(), 1, "delivered up here");
    }));
    assert_eq!(live.get(), 0, "freed with the scope that held it");
}
