//! `contextvars::rayon`: `join`, `scope` and `.with_context()` run rayon closures in copies
//! of the caller's context and bring their changes back; nothing reaches a pool thread's
//! own context, so no job's value is seen by the next job.

mod support;

use std::panic::{AssertUnwindSafe, catch_unwind};

use contextvars::rayon::WithContextExt;
use contextvars::{Context, ContextVar, propagate};
use rayon::prelude::*;
use support::{fault, is_fault, library_panics, quiet_injected_panics, record_library_panics};

fn sum(base: &u64, parent: &u64, child: &u64) -> u64 {
    parent + child - base
}

/// Appends what the child added since the fork: shows the order in which siblings merge.
#[allow(clippy::ptr_arg)]
fn append(
    base: &Vec<&'static str>,
    parent: &Vec<&'static str>,
    child: &Vec<&'static str>,
) -> Vec<&'static str> {
    parent.iter().chain(&child[base.len()..]).copied().collect()
}

static ROWS: ContextVar<u64> = ContextVar::new("ROWS", || 0).merge(sum);
static ORDER: ContextVar<Vec<&'static str>> = ContextVar::new("ORDER", Vec::new).merge(append);
static N: ContextVar<u64> = ContextVar::new("N", || 0);
static USER: ContextVar<&'static str> = ContextVar::new("USER", || "nobody");
static TXN: ContextVar<Option<u32>> = ContextVar::new("TXN", || None).inherit(false);

const LOG_IN_AT: u32 = line!() + 1;
#[propagate(back)]
fn log_in(user: &'static str) {
    USER.set(user);
}

fn push(entry: &'static str) {
    let mut order = ORDER.get();
    order.push(entry);
    ORDER.set(order);
}

/// What every thread of the global pool sees of `USER`, each in its own context.
fn seen_on_every_worker() -> Vec<&'static str> {
    rayon::broadcast(|_| USER.get())
}

#[test]
fn join_copies_down_and_merges_a_then_b() {
    USER.set("ada");
    TXN.set(Some(1));
    let (a, b) = contextvars::rayon::join(
        || {
            push("a");
            ROWS.set(ROWS.get() + 1);
            (USER.get(), TXN.get())
        },
        || {
            push("b");
            ROWS.set(ROWS.get() + 2);
            (USER.get(), TXN.get())
        },
    );
    assert_eq!((a, b), (("ada", None), ("ada", None)));
    assert_eq!((ORDER.get(), ROWS.get()), (vec!["a", "b"], 3));
}

#[test]
fn join_brings_back_recorded_and_unrecorded_changes() {
    contextvars::rayon::join(|| log_in("ada"), || N.set(2));
    assert_eq!((USER.get(), N.get()), ("ada", 2));
}

#[test]
fn a_panicking_join_delivers_nothing() {
    quiet_injected_panics();
    let joined = catch_unwind(|| {
        contextvars::rayon::join(
            || {
                log_in("mallory");
                fault()
            },
            || N.set(2),
        )
    });
    assert!(is_fault(joined));
    assert_eq!((USER.get(), N.get()), ("nobody", 0));
}

#[test]
fn scope_merges_the_body_then_the_spawns_in_spawn_order() {
    USER.set("ada");
    let (mut first, mut second) = (None, None);
    contextvars::rayon::scope(|s| {
        push("body");
        s.spawn(|s| {
            push("first");
            ROWS.set(ROWS.get() + 1);
            first = Some(USER.get());
            // Forked from this spawn's context: sees "first", not "second".
            s.spawn(|_| {
                ROWS.set(ROWS.get() + 10);
                assert_eq!(ORDER.get(), ["body", "first"]);
            });
        });
        s.spawn(|_| {
            push("second");
            ROWS.set(ROWS.get() + 100);
            second = Some(USER.get());
        });
    });
    assert_eq!((first, second), (Some("ada"), Some("ada")));
    assert_eq!(ROWS.get(), 111);
    assert_eq!(ORDER.get(), ["body", "first", "second"]);
}

#[test]
fn a_panicking_scope_delivers_nothing() {
    quiet_injected_panics();
    let scoped = catch_unwind(|| {
        contextvars::rayon::scope(|s| {
            N.set(1);
            s.spawn(|_| log_in("mallory"));
            s.spawn(|_| fault());
        })
    });
    assert!(is_fault(scoped));
    assert_eq!((USER.get(), N.get()), ("nobody", 0));
}

#[test]
fn iterator_closures_see_the_callers_context_and_not_each_other() {
    USER.set("ada");
    ROWS.set(5);
    let seen: Vec<_> = (0..1000u64)
        .into_par_iter()
        .with_context()
        .map(|n| {
            let seen = (USER.get(), ROWS.get());
            ROWS.set(n);
            seen
        })
        .collect();
    assert!(seen.iter().all(|seen| *seen == ("ada", 5)));
    assert_eq!(ROWS.get(), 5, "without merge_back, only recorded changes come back");
}

#[test]
fn iterator_without_merge_back_brings_recorded_changes() {
    (0..100u64).into_par_iter().with_context().for_each(|n| {
        N.set(n);
        if n == 42 {
            log_in("ada");
        }
    });
    assert_eq!((USER.get(), N.get()), ("ada", 0));
}

#[test]
fn iterator_merge_back_sums_exactly_and_keeps_the_iterators_order() {
    (1..=1000u64).into_par_iter().with_context().merge_back().for_each(|n| {
        ROWS.set(ROWS.get() + n);
        N.set(n);
    });
    assert_eq!(ROWS.get(), 500_500);
    assert_eq!(N.get(), 1000, "without a merge function, the last item in order wins");
}

#[test]
fn iterator_reduce_and_fold_closures_run_in_the_context() {
    USER.set("ada");
    let total = (0..100u64)
        .into_par_iter()
        .with_context()
        .fold(|| if USER.get() == "ada" { 0 } else { 1_000_000 }, |acc, n| acc + n)
        .reduce(|| 0, |a, b| if USER.get() == "ada" { a + b } else { 1_000_000 });
    assert_eq!(total, 4950);
}

#[test]
fn a_panicking_iterator_delivers_nothing() {
    quiet_injected_panics();
    let ran = catch_unwind(AssertUnwindSafe(|| {
        (0..100u64).into_par_iter().with_context().merge_back().for_each(|n| {
            ROWS.set(ROWS.get() + 1);
            log_in("mallory");
            if n == 50 {
                fault();
            }
        })
    }));
    assert!(is_fault(ran));
    assert_eq!((USER.get(), ROWS.get()), ("nobody", 0));
}

#[test]
fn nothing_reaches_the_pool_threads_own_context() {
    USER.set("ada");
    contextvars::rayon::join(|| USER.set("bob"), || USER.set("cy"));
    contextvars::rayon::scope(|s| {
        s.spawn(|_| {
            USER.set("dee");
        })
    });
    (0..1000).into_par_iter().with_context().for_each(|_| {
        USER.set("eve");
    });
    assert!(seen_on_every_worker().iter().all(|seen| *seen == "nobody"));
}

#[test]
fn usable_from_a_context_entered_on_a_pool_thread() {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    let mut context = Context::new();
    context.run(|| USER.set("ada"));
    let rows = pool.install(move || {
        context.run(|| {
            (0..34).into_par_iter().with_context().merge_back().for_each(|_| {
                assert_eq!(USER.get(), "ada");
                ROWS.set(ROWS.get() + 1);
            });
            ROWS.get()
        })
    });
    assert_eq!(rows, 34);
    assert!(pool.broadcast(|_| USER.get()).iter().all(|seen| *seen == "nobody"));
}

#[test]
fn iterator_copy_is_taken_at_with_context_not_at_consumption() {
    USER.set("ada");
    let items = (0..100u64).into_par_iter().with_context().map(|_| USER.get());
    USER.set("bob");
    let seen: Vec<_> = items.collect();
    assert!(seen.iter().all(|seen| *seen == "ada"), "saw {:?}", &seen[..4]);
    assert_eq!(USER.get(), "bob");
}

/// `flat_map` drives a nested parallel iterator with plain rayon jobs: the closures after it
/// see the context only under a `.with_context()` of their own, after the `flat_map`.
/// (A pool of its own: its plain jobs may run while a closure waits, in that closure's context.)
#[test]
fn closures_after_a_flat_map_need_a_with_context_of_their_own() {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(4).build().unwrap();
    let mut context = Context::new();
    context.run(|| USER.set("ada"));
    let (seen, rows) = pool.install(move || {
        context.run(|| {
            let seen: Vec<_> = (0..64u64)
                .into_par_iter()
                .with_context()
                .merge_back()
                .flat_map(|x| {
                    ROWS.set(ROWS.get() + 1000);
                    (0..1000u64).into_par_iter().map(move |y| x + y)
                })
                .with_context()
                .merge_back()
                .map(|_| {
                    ROWS.set(ROWS.get() + 1);
                    USER.get()
                })
                .collect();
            (seen, ROWS.get())
        })
    });
    assert_eq!(seen.len(), 64_000);
    assert!(seen.iter().all(|seen| *seen == "ada"));
    assert_eq!(rows, 64 * 1000 + 64_000);
    assert!(pool.broadcast(|_| (USER.get(), ROWS.get())).iter().all(|seen| *seen == ("nobody", 0)));
}

#[test]
fn a_rayon_job_outside_a_context_reads_defaults_and_set_panics_with_the_fix() {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    USER.set("ada");
    assert_eq!(pool.install(|| USER.get()), "nobody");
    let message = pool.install(|| {
        let set = catch_unwind(|| {
            USER.set("mallory");
        });
        *set.unwrap_err().downcast::<String>().unwrap()
    });
    assert!(message.contains("contextvars::rayon::join"), "{message}");
    // The fix: the same work through this crate's adapters sees the caller's context.
    let seen = contextvars::rayon::join(|| USER.get(), || USER.get());
    assert_eq!(seen, ("ada", "ada"));
    assert_eq!(pool.broadcast(|_| USER.get()), ["nobody"]);
}

#[test]
fn a_propagate_back_function_in_a_rayon_job_outside_a_context_panics_at_its_attribute_with_the_fix() {
    record_library_panics();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    let (panics, landed) = pool.install(|| {
        let landed = catch_unwind(|| log_in("mallory")).is_ok();
        (library_panics(), landed)
    });
    assert!(!landed);
    let [panic] = panics.as_slice() else { panic!("one panic expected: {panics:?}") };
    assert_eq!((panic.file.as_str(), panic.line), (file!(), LOG_IN_AT), "{panic:?}");
    let message = &panic.message;
    assert!(message.contains("rayon job that has no context of its own"), "{message}");
    assert!(message.contains("the change to `USER`"), "{message}");
    assert!(message.contains("contextvars::rayon::join"), "{message}");
    assert_eq!(pool.broadcast(|_| USER.get()), ["nobody"]);
}

#[test]
fn a_plain_tokio_task_polled_on_a_pool_thread_is_named_as_a_tokio_task() {
    // A runtime driven inside a rayon job polls its tasks on the pool's thread: a plain
    // `tokio::spawn` task there has no context of its own because it is a plain task, and
    // the fix is the tokio one (`contextvars::spawn`), not the rayon adapters.
    record_library_panics();
    let (panics, landed) = one_thread().install(|| {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let landed = runtime.block_on(async { tokio::spawn(async { log_in("mallory") }).await }).is_ok();
        (library_panics(), landed)
    });
    assert!(!landed);
    let [panic] = panics.as_slice() else { panic!("one panic expected: {panics:?}") };
    assert_eq!((panic.file.as_str(), panic.line), (file!(), LOG_IN_AT), "{panic:?}");
    let message = &panic.message;
    assert!(message.contains("a tokio task that has no context of its own"), "{message}");
    assert!(message.contains("`contextvars::spawn(fut)`"), "{message}");
    let (panics, set) = one_thread().install(|| {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let set = runtime.block_on(async { tokio::spawn(async { drop(USER.set("mallory")) }).await }).is_ok();
        (library_panics(), set)
    });
    assert!(!set);
    let [panic] = panics.as_slice() else { panic!("one panic expected: {panics:?}") };
    assert!(panic.message.contains("in a tokio task that has no context of its own"), "{panic:?}");
}

#[test]
fn the_adapters_in_a_rayon_job_outside_a_context_panic_at_the_users_line() {
    // The children's changes have nowhere to land: the panic points at the adapter's call.
    record_library_panics();
    let (join_at, scope_at) = (line!() + 3, line!() + 5);
    let panics = one_thread().install(|| {
        let _ = catch_unwind(|| {
            contextvars::rayon::join(|| N.set(1), || ());
        });
        let _ = catch_unwind(|| contextvars::rayon::scope(|s| s.spawn(|_| drop(N.set(2)))));
        library_panics()
    });
    let [join, scope] = panics.as_slice() else { panic!("two panics expected: {panics:?}") };
    assert_eq!((join.file.as_str(), join.line), (file!(), join_at), "{join:?}");
    assert_eq!((scope.file.as_str(), scope.line), (file!(), scope_at), "{scope:?}");
    for panic in [join, scope] {
        assert!(panic.message.contains("a rayon job that has no context of its own"), "{panic:?}");
        assert!(panic.message.contains("the child's change to `N`"), "{panic:?}");
    }
}

#[test]
fn an_iterators_merge_back_in_a_rayon_job_outside_a_context_names_the_users_line() {
    // The merge runs in the consuming call (`for_each`), not at `merge_back`: the panic's
    // message names the line that asked for it.
    record_library_panics();
    let line = line!() + 3;
    let panics = one_thread().install(|| {
        let _ = catch_unwind(|| {
            (0..4u64).into_par_iter().with_context().merge_back().for_each(|n| drop(N.set(n)));
        });
        library_panics()
    });
    let [panic] = panics.as_slice() else { panic!("one panic expected: {panics:?}") };
    let message = &panic.message;
    assert!(message.contains(&format!("(called at {}:{line}:", file!())), "{message}");
    assert!(message.contains("a rayon job that has no context of its own"), "{message}");
    assert!(message.contains("the child's change to `N`"), "{message}");
}

/// A plain rayon job (no context of its own) that reports what it reads and whether its
/// `set` was refused.
fn foreign_job(sender: std::sync::mpsc::Sender<(&'static str, bool)>) -> impl FnOnce() + Send {
    move || {
        let refused = catch_unwind(|| USER.set("foreign")).is_err();
        sender.send((USER.get(), refused)).unwrap();
    }
}

/// A one-thread pool: the job the adapter waits on and the foreign job share the thread.
fn one_thread() -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap()
}

#[test]
fn a_plain_job_run_while_a_join_waits_does_not_see_the_callers_context() {
    let (sender, seen) = std::sync::mpsc::channel();
    let left = one_thread().install(move || {
        let mut ctx = Context::new();
        ctx.run(|| {
            USER.set("caller");
            // `a` queues a plain job after `b`: the join runs it on this thread while it
            // waits for `b`.
            contextvars::rayon::join(move || rayon::spawn(foreign_job(sender)), || ());
        });
        ctx.get(&USER)
    });
    assert_eq!(seen.recv().unwrap(), ("nobody", true));
    assert_eq!(left, "caller");
}

#[test]
fn a_plain_job_run_while_a_scope_waits_does_not_see_the_callers_context() {
    let (sender, seen) = std::sync::mpsc::channel();
    let left = one_thread().install(move || {
        let mut ctx = Context::new();
        ctx.run(|| {
            USER.set("caller");
            contextvars::rayon::scope(move |s| {
                s.spawn(|_| ());
                // Queued last: the scope runs it first, while it waits for its spawn.
                rayon::spawn(foreign_job(sender));
            });
        });
        ctx.get(&USER)
    });
    assert_eq!(seen.recv().unwrap(), ("nobody", true));
    assert_eq!(left, "caller");
}

#[test]
fn a_plain_job_run_while_a_parallel_iterator_waits_does_not_see_the_callers_context() {
    let (sender, seen) = std::sync::mpsc::channel();
    let left = one_thread().install(move || {
        let mut ctx = Context::new();
        ctx.run(|| {
            USER.set("caller");
            // Two items, split in two halves: the first queues a plain job, which the
            // iterator runs on this thread while it waits for the second half.
            (0..2u32).into_par_iter().with_context().for_each(|item| {
                if item == 0 {
                    rayon::spawn(foreign_job(sender.clone()));
                }
            });
        });
        ctx.get(&USER)
    });
    assert_eq!(seen.recv().unwrap(), ("nobody", true));
    assert_eq!(left, "caller");
}
