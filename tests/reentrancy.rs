//! User code the runtime calls (a value's `Drop` and `Clone`, a default, a merge function)
//! may itself read and set context variables.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::mpsc;

use contextvars::{Changes, Context, ContextVar};

mod support;
use support::poll_once;

static LOG: ContextVar<Vec<&'static str>> = ContextVar::new("LOG", Vec::new);
static LEVEL: ContextVar<u32> = ContextVar::new("LEVEL", || 3);

/// A value whose `Drop` reads one variable and sets another.
#[derive(Clone, Debug)]
struct Noisy(&'static str);

/// Every `Noisy` dropped, wherever its `Drop` ran (its `LOG` write lands in the context that
/// was current there, which may be a scratch one).
static DROPPED: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());

impl Drop for Noisy {
    fn drop(&mut self) {
        DROPPED.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(self.0);
        let _ = LEVEL.get();
        let mut log = LOG.get();
        log.push(self.0);
        LOG.set(log);
    }
}

static NOISY: ContextVar<Option<Noisy>> = ContextVar::new("NOISY", || None);

#[test]
fn a_value_replaced_by_set_may_set_variables_in_its_drop() {
    NOISY.set(Some(Noisy("first")));
    // The token of the second `set` holds the first value; dropping it runs its `Drop`.
    drop(NOISY.set(Some(Noisy("second"))));
    assert_eq!(LOG.get(), ["first"]);
}

#[test]
fn a_value_replaced_by_reset_may_set_variables_in_its_drop() {
    let token = NOISY.set(Some(Noisy("only")));
    NOISY.reset(token).unwrap();
    assert_eq!(LOG.get(), ["only"]);
}

#[test]
fn a_value_displaced_by_a_merge_may_set_variables_in_its_drop() {
    let fork = Context::current();
    let mut child = fork.clone();
    child.run(|| NOISY.set(Some(Noisy("child"))));
    NOISY.set(Some(Noisy("parent")));
    Changes::between(&fork, &child).apply();
    assert_eq!(LOG.get(), ["parent"]);
    assert_eq!(NOISY.with(|noisy| noisy.as_ref().map(|n| n.0)), Some("child"));
    drop(child);
}

/// Sets `LOG` when dropped and reports what `LOG` then holds.
#[derive(Clone)]
struct Reporting(mpsc::Sender<Vec<&'static str>>);

impl Drop for Reporting {
    fn drop(&mut self) {
        LOG.set(vec!["dropped"]);
        let _ = self.0.send(LOG.get());
    }
}

static REPORTING: ContextVar<Option<Reporting>> = ContextVar::new("REPORTING", || None);

#[test]
fn a_value_dropped_with_its_context_sets_in_a_scratch_context_not_the_current_one() {
    let (tx, rx) = mpsc::channel();
    let mut ctx = Context::new();
    ctx.run(|| REPORTING.set(Some(Reporting(tx))));
    drop(ctx);
    assert_eq!(rx.recv().unwrap(), ["dropped"], "the drop ran, and its `set` worked");
    assert!(LOG.get().is_empty(), "what the drop set did not land in the current context");
}

#[test]
fn a_value_in_a_dropped_contexts_recent_writes_sets_in_a_scratch_context_and_is_not_kept() {
    let (tx, rx) = mpsc::channel();
    let mut ctx = Context::new();
    ctx.run(|| {
        LEVEL.set(1);
        // Written while a snapshot shares the context: the value waits in the list of recent
        // writes, which outlives the snapshot.
        let snapshot = Context::current();
        REPORTING.set(Some(Reporting(tx)));
        drop(snapshot);
    });
    assert!(rx.try_recv().is_err(), "the context still holds the value");
    drop(ctx);
    assert_eq!(rx.recv().unwrap(), ["dropped"], "the drop ran, and its `set` worked");
    assert!(LOG.get().is_empty(), "what the drop set did not land in the current context");
    // The next list of recent writes made on this thread shows nothing of that one.
    let mut next = Context::new();
    next.run(|| {
        LEVEL.set(2);
        let snapshot = Context::current();
        LOG.set(vec!["next"]);
        assert!(REPORTING.with(Option::is_none));
        assert_eq!((LEVEL.get(), LOG.get()), (2, vec!["next"]));
        drop(snapshot);
    });
    assert!(!next.run(|| REPORTING.is_set()));
}

#[test]
fn a_value_dropped_at_thread_exit_reads_defaults() {
    let (tx, rx) = mpsc::channel();
    struct Report(mpsc::Sender<u32>);
    impl Clone for Report {
        fn clone(&self) -> Report {
            Report(self.0.clone())
        }
    }
    impl Drop for Report {
        fn drop(&mut self) {
            // The thread's context is being torn down: reading gives the default.
            let _ = self.0.send(LEVEL.get());
        }
    }
    static REPORT: ContextVar<Option<Report>> = ContextVar::new("REPORT", || None);
    std::thread::spawn(move || {
        LEVEL.set(9);
        REPORT.set(Some(Report(tx)));
    })
    .join()
    .unwrap();
    assert_eq!(rx.recv().unwrap(), 3);
}

#[test]
fn a_clone_may_read_variables() {
    #[derive(Debug, PartialEq)]
    struct Reads(u32);
    impl Clone for Reads {
        fn clone(&self) -> Reads {
            Reads(self.0 + LEVEL.get())
        }
    }
    static READS: ContextVar<Reads> = ContextVar::new("READS", || Reads(0));
    LEVEL.set(1);
    READS.set(Reads(10));
    assert_eq!(READS.get(), Reads(11));
}

#[test]
fn a_default_may_read_variables() {
    static DERIVED: ContextVar<u32> = ContextVar::new("DERIVED", || LEVEL.get() * 2);
    assert_eq!(DERIVED.get(), 6);
}

#[test]
fn a_merge_function_may_read_and_set_variables() {
    fn merge(_: &u32, parent: &u32, child: &u32) -> u32 {
        let mut log = LOG.get();
        log.push("merged");
        LOG.set(log);
        parent.max(child) + LEVEL.get()
    }
    static MAX: ContextVar<u32> = ContextVar::new("MAX", || 0).merge(merge);
    let fork = Context::current();
    let mut child = fork.clone();
    child.run(|| MAX.set(5));
    MAX.set(7);
    Changes::between(&fork, &child).apply();
    assert_eq!(MAX.get(), 10);
    assert_eq!(LOG.get(), ["merged"]);
}

#[test]
fn a_future_dropped_in_its_scope_sets_variables_there() {
    let mut scope = Box::pin(Context::new().scope(async move {
        let _noisy = Noisy("future");
        std::future::pending::<()>().await;
    }));
    assert!(poll_once(scope.as_mut()).is_pending());
    drop(scope);
    // The log entry landed in the scope's own context, not here.
    assert!(LOG.get().is_empty());
}

/// Sets a variable in its `Drop`, then reports that it got through.
struct SetsOnDrop(mpsc::Sender<()>);

impl Drop for SetsOnDrop {
    fn drop(&mut self) {
        LEVEL.set(LEVEL.get() + 1);
        let _ = self.0.send(());
    }
}

#[test]
fn a_value_dropped_at_thread_exit_may_set_variables() {
    // At thread exit the thread's context is torn down and its values dropped; a `Drop`
    // that sets a variable then has nowhere to write. It must not take the process down.
    static HOLDER: ContextVar<Option<std::sync::Arc<std::sync::Mutex<SetsOnDrop>>>> =
        ContextVar::new("HOLDER", || None);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        HOLDER.set(Some(std::sync::Arc::new(std::sync::Mutex::new(SetsOnDrop(tx)))));
    })
    .join()
    .unwrap();
    rx.recv().unwrap();
}

thread_local! {
    static PARKED: RefCell<Option<Pin<Box<dyn Future<Output = ()>>>>> = const { RefCell::new(None) };
}

#[test]
fn a_scope_dropped_after_the_threads_context_is_gone_does_not_abort() {
    // A scoped future parked in a thread-local of its own (as a per-thread executor would
    // keep it) may be dropped after the thread's context at thread exit: thread-locals are
    // destroyed in reverse order of first use, and this one is used first.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        PARKED.with(|_| ());
        LEVEL.set(1);
        let mut scope = Box::pin(Context::new().scope(async move {
            let _guard = SetsOnDrop(tx);
            std::future::pending::<()>().await;
        }));
        assert!(poll_once(scope.as_mut()).is_pending());
        PARKED.with(|parked| *parked.borrow_mut() = Some(scope));
    })
    .join()
    .unwrap();
    rx.recv().unwrap();
}

/// A value whose `Clone` sets a variable: `get` clones while it reads the context, so that
/// write cannot land; it must fail with a message that says why, not a bare borrow error.
#[derive(Debug)]
struct SetsOnClone;

impl Clone for SetsOnClone {
    fn clone(&self) -> Self {
        LEVEL.set(9);
        SetsOnClone
    }
}

static SETS_ON_CLONE: ContextVar<Option<SetsOnClone>> = ContextVar::new("SETS_ON_CLONE", || None);

#[test]
fn a_clone_that_sets_a_variable_during_get_panics_with_the_reason() {
    SETS_ON_CLONE.set(Some(SetsOnClone));
    let panic = std::panic::catch_unwind(|| SETS_ON_CLONE.get()).unwrap_err();
    let message = panic.downcast_ref::<String>().expect("a formatted message");
    assert!(message.contains("`LEVEL.set()` called from inside the `Clone`"), "{message}");
    // The context is intact and usable afterwards.
    assert_eq!(LEVEL.get(), 3);
    LEVEL.set(4);
    assert_eq!(LEVEL.get(), 4);
    // `with` borrows without cloning, so the same value is fine there.
    assert!(SETS_ON_CLONE.with(Option::is_some));
}

/// Enters a context from its `Clone`, which `get` calls while it holds the thread's context.
struct EntersOnClone;

impl Clone for EntersOnClone {
    fn clone(&self) -> EntersOnClone {
        Context::new().run(|| ());
        EntersOnClone
    }
}

static ENTERS_ON_CLONE: ContextVar<Option<EntersOnClone>> = ContextVar::new("ENTERS_ON_CLONE", || None);

#[test]
fn entering_a_context_from_a_clone_during_get_is_an_explained_panic() {
    ENTERS_ON_CLONE.set(Some(EntersOnClone));
    let payload = std::panic::catch_unwind(|| ENTERS_ON_CLONE.get()).map(drop).unwrap_err();
    let message = match payload.downcast::<String>() {
        Ok(message) => *message,
        Err(payload) => payload.downcast_ref::<&str>().map(|s| s.to_string()).unwrap_or_default(),
    };
    assert!(message.contains("`Clone`"), "{message}");
    assert!(!message.contains("already borrowed"), "{message}");
    // The thread's context is still usable.
    ENTERS_ON_CLONE.set(None);
    assert!(ENTERS_ON_CLONE.get().is_none());
}

static FILLERS: [ContextVar<u32>; 9] = [const { ContextVar::new("FILLER", || 0) }; 9];

#[test]
fn a_value_let_go_of_when_recent_writes_move_into_the_context_may_set_variables_in_its_drop() {
    let mut ctx = Context::new();
    ctx.run(|| {
        NOISY.set(Some(Noisy("shadowed")));
        // Written after a snapshot, the new value shadows the old one, which the context
        // still holds; the token's copy of the old value goes at once.
        let snapshot = Context::current();
        drop(NOISY.set(Some(Noisy("current"))));
        drop(snapshot);
        let dropped = || DROPPED.lock().unwrap().iter().filter(|name| **name == "shadowed").count();
        assert_eq!(dropped(), 0, "the context still holds the shadowed value");
        // More writes after snapshots fill the list of recent writes, which then moves into
        // the context's own map: the shadowed value goes within at most that many writes. Its
        // `Drop` sets a variable, which works only with nothing borrowed; the last holder of
        // the old nodes is a snapshot, whose values are dropped in a scratch context, so the
        // write lands there and not in this one.
        for (n, filler) in FILLERS.iter().enumerate() {
            let snapshot = Context::current();
            filler.set(n as u32);
            drop(snapshot);
        }
        assert_eq!(dropped(), 1);
        assert_eq!(NOISY.with(|noisy| noisy.as_ref().map(|n| n.0)), Some("current"));
    });
}

/// Counts the values alive and reports each drop (and the `LEVEL` it read there).
struct Counted(mpsc::Sender<&'static str>, &'static str, std::sync::Arc<()>);

impl Clone for Counted {
    fn clone(&self) -> Counted {
        Counted(self.0.clone(), self.1, self.2.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        let _ = LEVEL.get();
        let _ = self.0.send(self.1);
    }
}

static COUNTED: ContextVar<Option<Counted>> = ContextVar::new("COUNTED", || None);

/// A context whose `COUNTED` value waits in its list of recent writes (written after a
/// snapshot that is gone since).
fn context_with_a_listed_value(
    tx: &mpsc::Sender<&'static str>,
    name: &'static str,
    alive: &std::sync::Arc<()>,
) -> Context {
    let mut ctx = Context::new();
    ctx.run(|| {
        LEVEL.set(1);
        let snapshot = Context::current();
        COUNTED.set(Some(Counted(tx.clone(), name, alive.clone())));
        drop(snapshot);
    });
    ctx
}

/// After a list was released on this thread, a fresh context written after a snapshot sees
/// nothing of it.
fn check_next_context_is_clean() {
    let mut next = Context::new();
    next.run(|| {
        let snapshot = Context::current();
        LEVEL.set(5);
        LOG.set(vec!["next"]);
        assert!(COUNTED.with(Option::is_none));
        assert!(REPORTING.with(Option::is_none));
        assert_eq!((LEVEL.get(), LOG.get()), (5, vec!["next"]));
        drop(snapshot);
    });
    assert_eq!(next.len(), 2);
}

#[test]
fn a_value_whose_drop_writes_after_a_snapshot_in_a_released_list_is_dropped_once() {
    static INNER: ContextVar<Option<Counted>> = ContextVar::new("INNER", || None);
    let (tx, rx) = mpsc::channel();
    let alive = std::sync::Arc::new(());
    #[derive(Clone)]
    struct Nests(mpsc::Sender<&'static str>, std::sync::Arc<()>);
    impl Drop for Nests {
        fn drop(&mut self) {
            // A context of its own, released inside this release.
            drop(context_with_a_listed_value(&self.0, "inner", &self.1));
            // A snapshot and writes in the scratch context.
            let snapshot = Context::current();
            INNER.set(Some(Counted(self.0.clone(), "scratch", self.1.clone())));
            LOG.set(vec!["nested"]);
            drop(snapshot);
            let _ = self.0.send("outer");
        }
    }
    static NESTS: ContextVar<Option<Nests>> = ContextVar::new("NESTS", || None);
    let mut ctx = Context::new();
    ctx.run(|| {
        let snapshot = Context::current();
        NESTS.set(Some(Nests(tx.clone(), alive.clone())));
        COUNTED.set(Some(Counted(tx.clone(), "sibling", alive.clone())));
        drop(snapshot);
    });
    drop(tx);
    drop(ctx);
    let mut dropped: Vec<_> = rx.iter().collect();
    dropped.sort_unstable();
    assert_eq!(dropped, ["inner", "outer", "scratch", "sibling"]);
    assert_eq!(std::sync::Arc::strong_count(&alive), 1, "nothing kept alive");
    assert!(LOG.get().is_empty());
    check_next_context_is_clean();
    check_next_context_is_clean();
}

#[test]
fn a_panicking_drop_in_a_released_list_drops_the_rest_and_leaves_no_spare_behind() {
    struct Panics;
    impl Clone for Panics {
        fn clone(&self) -> Panics {
            Panics
        }
    }
    impl Drop for Panics {
        fn drop(&mut self) {
            LOG.set(vec!["panics"]);
            panic!("a value's drop panics");
        }
    }
    static PANICS: ContextVar<Option<Panics>> = ContextVar::new("PANICS", || None);
    let (tx, rx) = mpsc::channel();
    let alive = std::sync::Arc::new(());
    let mut ctx = Context::new();
    ctx.run(|| {
        let snapshot = Context::current();
        COUNTED.set(Some(Counted(tx.clone(), "before", alive.clone())));
        PANICS.set(Some(Panics));
        COUNTED.set(Some(Counted(tx.clone(), "after", alive.clone())));
        LEVEL.set(2);
        drop(snapshot);
    });
    drop(tx);
    assert!(std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(ctx))).is_err());
    let mut dropped: Vec<_> = rx.iter().collect();
    dropped.sort_unstable();
    assert_eq!(dropped, ["after", "before"]);
    assert_eq!(std::sync::Arc::strong_count(&alive), 1, "nothing kept alive");
    assert!(LOG.get().is_empty());
    check_next_context_is_clean();
}

#[test]
fn a_context_dropped_on_another_thread_frees_its_values_there_and_leaks_nothing_into_it() {
    let (tx, rx) = mpsc::channel();
    let alive = std::sync::Arc::new(());
    let contexts: Vec<_> = (0..4).map(|_| context_with_a_listed_value(&tx, "moved", &alive)).collect();
    drop(tx);
    std::thread::spawn(move || {
        for ctx in contexts {
            drop(ctx);
            check_next_context_is_clean();
        }
    })
    .join()
    .unwrap();
    assert_eq!(rx.iter().count(), 4);
    assert_eq!(std::sync::Arc::strong_count(&alive), 1);
}

#[test]
fn a_context_dropped_by_another_thread_local_after_the_spare_is_gone_frees_its_values() {
    struct Holder(RefCell<Vec<Context>>);
    impl Drop for Holder {
        fn drop(&mut self) {
            self.0.borrow_mut().clear();
        }
    }
    thread_local! {
        static HOLDER: Holder = const { Holder(RefCell::new(Vec::new())) };
    }
    let (tx, rx) = mpsc::channel();
    let alive = std::sync::Arc::new(());
    let thread_alive = alive.clone();
    std::thread::spawn(move || {
        // Registered first, so torn down after the runtime's thread-locals.
        HOLDER.with(|_| ());
        // Fills the thread's spare.
        drop(context_with_a_listed_value(&tx, "released", &thread_alive));
        let kept = context_with_a_listed_value(&tx, "at exit", &thread_alive);
        HOLDER.with(|holder| holder.0.borrow_mut().push(kept));
    })
    .join()
    .unwrap();
    let mut dropped: Vec<_> = rx.iter().collect();
    dropped.sort_unstable();
    assert_eq!(dropped, ["at exit", "released"]);
    assert_eq!(std::sync::Arc::strong_count(&alive), 1);
}

#[test]
fn forks_and_merges_across_writes_that_fill_and_spill_the_list_of_recent_writes() {
    static VARS: [ContextVar<u32>; 20] = [const { ContextVar::new("V", || 0) }; 20];
    for written in 0..20u32 {
        let mut parent = Context::new();
        parent.run(|| {
            for (i, var) in VARS.iter().enumerate() {
                var.set(i as u32);
            }
            let fork = Context::current();
            let mut child = fork.clone();
            child.run(|| {
                let _pin = Context::current();
                for var in &VARS[..written as usize] {
                    var.set(var.get() + 100);
                }
            });
            // The parent writes the others, after the fork (its own list too).
            for var in &VARS[written as usize..] {
                var.set(var.get() + 1000);
            }
            let changes = Changes::between(&fork, &child);
            assert_eq!(changes.len(), written as usize);
            changes.apply();
            for (i, var) in VARS.iter().enumerate() {
                let i = i as u32;
                let expected = if i < written { i + 100 } else { i + 1000 };
                assert_eq!(var.get(), expected, "written {written}, var {i}");
            }
            assert_eq!(Changes::between(&fork, &Context::current()).len(), 20);
        });
    }
}

#[test]
fn two_copies_of_a_context_dropped_at_once_on_two_threads_drop_its_values_in_a_scratch_context() {
    // Each thread's own count of the drops whose `set` landed in its current context.
    static LANDED: ContextVar<u32> = ContextVar::new("LANDED", || 0);
    #[derive(Clone)]
    struct Counts;
    impl Drop for Counts {
        fn drop(&mut self) {
            LANDED.set(LANDED.get() + 1);
        }
    }
    static COUNTS: ContextVar<Option<Counts>> = ContextVar::new("COUNTS", || None);
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
    let (tx, rx) = mpsc::channel::<Context>();
    let other = std::thread::spawn({
        let barrier = barrier.clone();
        move || {
            for copy in rx {
                barrier.wait();
                drop(copy);
            }
            LANDED.get()
        }
    });
    // Each round the two last copies race to their drops: whichever ends up last drops
    // the value, and only in a scratch context (a test of the counts followed by a drop let
    // both skip that and the value's `set` write into the thread's context).
    for _ in 0..20_000 {
        let mut ctx = Context::new();
        ctx.run(|| {
            let snapshot = Context::current();
            COUNTS.set(Some(Counts));
            drop(snapshot);
        });
        tx.send(ctx.clone()).unwrap();
        barrier.wait();
        drop(ctx);
    }
    drop(tx);
    assert_eq!((LANDED.get(), other.join().unwrap()), (0, 0), "a drop's `set` landed in a thread's context");
}

#[test]
fn a_changes_dropped_after_both_contexts_drops_its_values_in_a_scratch_context() {
    let (tx, rx) = mpsc::channel();
    let fork = Context::new();
    let mut child = fork.clone();
    child.run(|| REPORTING.set(Some(Reporting(tx))));
    let changes = Changes::between(&fork, &child);
    drop((child, fork));
    assert!(rx.try_recv().is_err(), "the changes still hold the value");
    drop(changes);
    assert_eq!(rx.recv().unwrap(), ["dropped"], "the drop ran, and its `set` worked");
    assert!(LOG.get().is_empty(), "what the drop set did not land in the current context");
}

#[test]
fn a_released_list_with_one_value_that_has_a_drop_of_its_own_drops_in_a_scratch_context() {
    let (tx, rx) = mpsc::channel();
    let mut ctx = Context::new();
    ctx.run(|| LEVEL.set(1));
    // Its trie stays shared with `base`: only the list of recent writes is released below,
    // holding a `u64` (no drop glue) and a value whose `Drop` sets a variable.
    let base = ctx.clone();
    ctx.run(|| {
        LEVEL.set(2);
        REPORTING.set(Some(Reporting(tx)));
    });
    drop(ctx);
    assert_eq!(rx.recv().unwrap(), ["dropped"], "the drop ran, and its `set` worked");
    assert!(LOG.get().is_empty(), "what the drop set did not land in the current context");
    assert_eq!(base.get(&LEVEL), 1);
}
