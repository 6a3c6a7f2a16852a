//! Faults, and what is left after them: panics inside `Context::run`, inside a `Scope`'s
//! poll, inside a `merge` function, inside a default initializer and inside the `Drop` of a
//! stored value; aborts at every await point of a child; a runtime shut down with tasks in
//! flight.
//!
//! After each fault the thread's context must be what it was: the same values, the same
//! identity (a token taken before the fault still resets after it), no scope left counted as
//! entered (`block_on` still works), and the threads of the runtime hold no context of their
//! own when they park or stop (checked by the runtime's thread hooks, on every park).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::task::Poll;

use contextvars::{Changes, Context, ContextVar, Token};
use futures::FutureExt;
use tokio::sync::oneshot;

mod support;
use support::{Counted, Live, fault, is_fault, poll_once, quiet_injected_panics};

static USER: ContextVar<Option<String>> = ContextVar::new("USER", || None);
static N: ContextVar<u64> = ContextVar::new("N", || 0);
static SECRET: ContextVar<u64> = ContextVar::new("SECRET", || 0).inherit(false).back(false);

/// A fault in a place that must return `()`.
fn inject() {
    fault()
}

// ---------------------------------------------------------------------------------------
// The thread's state before a fault, and the check that it is unchanged after.

/// What the thread had before the fault: values, and a token of its context.
struct Before {
    token: Token<u64>,
}

fn before() -> Before {
    USER.set(Some("owner".into()));
    SECRET.set(99);
    Before { token: N.set(41) }
}

/// The thread's context is what `before` left, with the same identity; nothing is counted as
/// entered. Consumes the token (so call it once per `before`).
fn check_unchanged(before: Before, handle: &tokio::runtime::Handle) {
    assert_eq!((USER.get().as_deref(), N.get(), SECRET.get()), (Some("owner"), 41, 99));
    N.reset(before.token).expect("the context kept its identity");
    assert!(!N.is_set());
    // A scope left counted as entered would make this refuse ("called from async code").
    let _entered = handle.enter();
    assert_eq!(contextvars::block_on(async { USER.get() }).as_deref(), Some("owner"));
    USER.set(None);
    SECRET.set(0);
}

static PARKS: AtomicUsize = AtomicUsize::new(0);
static RESIDUE: AtomicUsize = AtomicUsize::new(0);

/// Counts a runtime thread that parks or stops with a context of its own.
fn check_thread_is_clean() {
    if !Context::current().is_empty() {
        RESIDUE.fetch_add(1, Ordering::SeqCst);
    }
}

/// A runtime whose threads check, on every park and at their stop, that they hold no
/// context of their own.
fn runtime() -> tokio::runtime::Runtime {
    quiet_injected_panics();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .on_thread_park(|| {
            PARKS.fetch_add(1, Ordering::SeqCst);
            check_thread_is_clean();
        })
        .on_thread_stop(check_thread_is_clean)
        .build()
        .unwrap()
}

/// Shuts `runtime` down (every thread runs its stop hook) and checks that no thread of any
/// runtime here was ever left with a context of its own.
fn shut_down(runtime: tokio::runtime::Runtime) {
    drop(runtime);
    assert_eq!(RESIDUE.load(Ordering::SeqCst), 0, "a runtime thread kept a context of its own");
}

// ---------------------------------------------------------------------------------------
// Panics in `Context::run` and in a `Scope`'s poll.

#[test]
fn a_panic_inside_run_leaves_the_thread_as_it_was() {
    let runtime = runtime();
    for depth in 0..4 {
        let before = before();
        let mut context = Context::new();
        let result = catch_unwind(AssertUnwindSafe(|| {
            context.run(|| {
                N.set(1);
                // Panic `depth` runs further in, each in a context of its own.
                fn nest(depth: u32) {
                    if depth == 0 {
                        USER.set(Some("inner".into()));
                        fault();
                    }
                    Context::new().run(|| nest(depth - 1));
                }
                nest(depth);
            })
        }));
        assert!(is_fault(result));
        // What `run` set before the panic landed in its own context, and only there.
        let inner = (depth == 0).then(|| "inner".to_owned());
        assert_eq!((context.get(&N), context.get(&USER)), (1, inner));
        check_unchanged(before, runtime.handle());
    }
    shut_down(runtime);
}

#[test]
fn a_panic_inside_a_scope_poll_leaves_the_thread_as_it_was() {
    let runtime = runtime();
    for panic_at in 0..4 {
        let before = before();
        // Scopes nested three deep; the innermost panics at its `panic_at`-th poll.
        let mut scope = Box::pin(Context::new().scope(async move {
            USER.set(Some("outer scope".into()));
            Context::new()
                .scope(async move {
                    Context::new()
                        .scope(async move {
                            for poll in 0..4 {
                                N.set(poll);
                                if poll == panic_at {
                                    fault();
                                }
                                tokio::task::yield_now().await;
                            }
                        })
                        .await
                })
                .await
        }));
        let mut outcome = Poll::Pending;
        while outcome.is_pending() {
            outcome = match catch_unwind(AssertUnwindSafe(|| poll_once(scope.as_mut()))) {
                Ok(poll) => poll.map(Ok),
                Err(payload) => Poll::Ready(Err(payload)),
            };
        }
        let Poll::Ready(result) = outcome else { unreachable!() };
        assert!(is_fault(result));
        assert_eq!(scope.context().get(&USER).as_deref(), Some("outer scope"));
        // Dropping the half-run future runs inside its scope and leaves nothing either.
        drop(scope);
        check_unchanged(before, runtime.handle());
    }
    shut_down(runtime);
}

#[test]
fn a_task_that_panics_while_polled_leaves_its_worker_clean() {
    let runtime = runtime();
    runtime.block_on(Context::new().scope(async {
        USER.set(Some("parent".into()));
        for n in 0..200u64 {
            let error = contextvars::spawn(async move {
                USER.set(Some(format!("child{n}")));
                SECRET.set(n);
                if n % 2 == 0 {
                    tokio::task::yield_now().await;
                }
                inject()
            })
            .merge_back()
            .await
            .unwrap_err();
            assert!(error.is_panic());
            assert_eq!((USER.get().as_deref(), SECRET.get()), (Some("parent"), 0));
        }
    }));
    assert!(PARKS.load(Ordering::SeqCst) > 0, "the workers parked, so the hook ran");
    shut_down(runtime);
}

// ---------------------------------------------------------------------------------------
// Panics in merge functions and default initializers: all or nothing, then a retry.

static ARMED_MERGE: AtomicBool = AtomicBool::new(false);

fn merge_or_fail(base: &u64, parent: &u64, child: &u64) -> u64 {
    if ARMED_MERGE.swap(false, Ordering::SeqCst) {
        fault();
    }
    parent + child - base
}

static PLAIN: [ContextVar<u64>; 8] = [const { ContextVar::new("plain", || 0) }; 8];
static FRAGILE: ContextVar<u64> = ContextVar::new("FRAGILE", || 0).merge(merge_or_fail);

fn plain_values() -> Vec<u64> {
    PLAIN.iter().map(ContextVar::get).collect()
}

#[test]
fn a_panicking_merge_function_at_merge_back_changes_nothing() {
    let runtime = runtime();
    runtime.block_on(Context::new().scope(async {
        FRAGILE.set(10);
        for (n, var) in PLAIN.iter().enumerate() {
            var.set(n as u64);
        }
        let before = Context::current();
        for attempt in 0..2 {
            let (changed, changed_rx) = oneshot::channel();
            let (go, go_rx) = oneshot::channel::<()>();
            let join = contextvars::spawn(async move {
                // Both sides of the panicking merge, and many more changes around it.
                for var in &PLAIN {
                    var.set(var.get() + 100);
                }
                FRAGILE.set(15);
                changed.send(()).unwrap();
                go_rx.await.unwrap();
            })
            .merge_back();
            changed_rx.await.unwrap();
            FRAGILE.set(12);
            go.send(()).unwrap();
            if attempt == 0 {
                ARMED_MERGE.store(true, Ordering::SeqCst);
                let result = AssertUnwindSafe(join).catch_unwind().await;
                assert!(is_fault(result));
                // Nothing landed: not the variables merged before the panic, nor after.
                assert_eq!(plain_values(), (0..8).collect::<Vec<_>>());
                assert_eq!(FRAGILE.get(), 12);
                FRAGILE.set(10);
                assert_eq!(Changes::between(&before, &Context::current()).len(), 1, "FRAGILE only");
            } else {
                join.await.unwrap();
                assert_eq!(plain_values(), (100..108).collect::<Vec<_>>());
                assert_eq!(FRAGILE.get(), 10 + 2 + 5);
            }
        }
    }));
    shut_down(runtime);
}

static DEFAULT_FAILURES: AtomicUsize = AtomicUsize::new(3);

fn default_or_fail() -> u64 {
    if DEFAULT_FAILURES.load(Ordering::SeqCst) > 0 {
        DEFAULT_FAILURES.fetch_sub(1, Ordering::SeqCst);
        fault();
    }
    5
}

static FLAKY_DEFAULT: ContextVar<u64> =
    ContextVar::new("FLAKY_DEFAULT", default_or_fail).merge(|b, p, c| p + c - b);

#[test]
fn a_panicking_default_is_computed_again_on_the_next_read() {
    let runtime = runtime();
    let before = before();
    // The merge reads the default for the side that is unset: the parent here.
    let fork = Context::current();
    let mut child = fork.clone();
    child.run(|| FLAKY_DEFAULT.set(9));
    let token = FLAKY_DEFAULT.set(1);
    FLAKY_DEFAULT.reset(token).unwrap();
    // Three reads fail, each through another path; nothing is cached from them.
    assert!(is_fault(catch_unwind(|| FLAKY_DEFAULT.get())));
    assert!(is_fault(catch_unwind(|| Context::new().get(&FLAKY_DEFAULT))));
    assert!(is_fault(catch_unwind(|| FLAKY_DEFAULT.with(|v| *v))));
    assert_eq!(DEFAULT_FAILURES.load(Ordering::SeqCst), 0);
    assert_eq!(FLAKY_DEFAULT.get(), 5);
    assert_eq!(*FLAKY_DEFAULT.default_value(), 5);
    assert!(!FLAKY_DEFAULT.is_set());
    // Unset in the parent after a set and a reset: by identity unchanged, so the child wins.
    Changes::between(&fork, &child).apply();
    assert_eq!(FLAKY_DEFAULT.get(), 9);
    FLAKY_DEFAULT.set(0);
    check_unchanged(before, runtime.handle());
    shut_down(runtime);
}

static MERGE_DEFAULT_FAILURES: AtomicUsize = AtomicUsize::new(1);

fn merge_default_or_fail() -> u64 {
    if MERGE_DEFAULT_FAILURES.swap(0, Ordering::SeqCst) > 0 {
        fault();
    }
    5
}

static MERGED_FLAKY: ContextVar<u64> =
    ContextVar::new("MERGED_FLAKY", merge_default_or_fail).merge(|b, p, c| p + c - b);

#[test]
fn a_default_that_panics_inside_a_merge_changes_nothing_and_is_retried() {
    let runtime = runtime();
    let before = before();
    // Unset at the fork; both sides set it, so the merge reads the default as the base.
    let fork = Context::current();
    let mut child = fork.clone();
    child.run(|| {
        MERGED_FLAKY.set(8);
        PLAIN[0].set(1);
    });
    MERGED_FLAKY.set(6);
    let changes = Changes::between(&fork, &child);
    assert!(is_fault(catch_unwind(AssertUnwindSafe(|| changes.clone().apply()))));
    assert_eq!((MERGED_FLAKY.get(), PLAIN[0].get()), (6, 0), "nothing landed");
    changes.apply();
    assert_eq!((MERGED_FLAKY.get(), PLAIN[0].get()), (6 + 8 - 5, 1));
    PLAIN[0].set(0);
    check_unchanged(before, runtime.handle());
    shut_down(runtime);
}

// ---------------------------------------------------------------------------------------
// Drop of stored values: panicking, and reading variables.

/// Panics when dropped while armed; every clone shares the flag.
#[derive(Clone)]
struct Bomb(Arc<AtomicBool>);

impl Drop for Bomb {
    fn drop(&mut self) {
        if Arc::strong_count(&self.0) == 1 && self.0.swap(false, Ordering::SeqCst) {
            fault();
        }
    }
}

static BOMB: ContextVar<Option<Bomb>> = ContextVar::new("BOMB", || None);
static BOMB_NOT_BACK: ContextVar<Option<Bomb>> = ContextVar::new("BOMB_NOT_BACK", || None).back(false);

fn armed() -> Bomb {
    Bomb(Arc::new(AtomicBool::new(true)))
}

#[test]
fn a_panicking_drop_of_a_stored_value_leaves_a_consistent_context() {
    let runtime = runtime();
    let before = before();

    // A reset that drops the value it replaces: the reset has landed when the drop panics.
    let token = BOMB.set(Some(armed()));
    assert!(is_fault(catch_unwind(AssertUnwindSafe(|| BOMB.reset(token)))));
    assert!(!BOMB.is_set());

    // The last snapshot that holds the value is dropped.
    let snapshot = Context::new().run(|| {
        BOMB.set(Some(armed()));
        Context::current()
    });
    assert!(is_fault(catch_unwind(AssertUnwindSafe(|| drop(snapshot)))));

    // A merge that replaces the value in the current context.
    BOMB.set(Some(armed()));
    let fork = Context::current();
    let mut child = fork.clone();
    child.run(|| BOMB.set(None));
    drop(fork);
    let changes = Changes::between(&Context::current(), &child);
    drop(child);
    assert!(is_fault(catch_unwind(AssertUnwindSafe(|| changes.apply()))));
    assert_eq!(BOMB.get().map(|_| ()), None, "the merge landed before the drop");

    check_unchanged(before, runtime.handle());
    shut_down(runtime);
}

#[test]
fn a_panicking_drop_at_a_join_is_all_or_nothing() {
    let runtime = runtime();
    runtime.block_on(Context::new().scope(async {
        N.set(1);
        // The child's last copy of the bomb is dropped somewhere in the join.
        let result = AssertUnwindSafe(
            contextvars::spawn(async {
                N.set(2);
                BOMB_NOT_BACK.set(Some(armed()));
            })
            .merge_back(),
        )
        .catch_unwind()
        .await;
        match result {
            Err(payload) => {
                assert!(is_fault(Err::<(), _>(payload)));
                assert_eq!(N.get(), 1, "a join that panicked delivered nothing");
            }
            Ok(joined) => {
                joined.unwrap();
                assert_eq!(N.get(), 2, "a join that returned delivered everything");
            }
        }
        assert!(!BOMB_NOT_BACK.is_set());
    }));
    shut_down(runtime);
}

/// A join that lands its changes and then panics dropping the value it replaced still
/// marks them: a plain `.await` further up delivers them, as it would without the panic.
#[test]
fn a_panicking_drop_after_a_join_landed_keeps_the_changes_flowing_up() {
    let runtime = runtime();
    runtime.block_on(Context::new().scope(async {
        let task = contextvars::spawn(async {
            let (go, wait) = oneshot::channel::<()>();
            let child = contextvars::spawn(contextvars::propagate_back_async(None, async {
                wait.await.unwrap();
                BOMB.set(None);
                N.set(5);
            }));
            // Set after the fork, so that this context holds the only copy; the child wins.
            BOMB.set(Some(armed()));
            go.send(()).unwrap();
            // The join replaces the armed bomb, whose drop panics: the changes have landed.
            assert!(is_fault(AssertUnwindSafe(child).catch_unwind().await));
            assert_eq!((BOMB.get().is_none(), N.get()), (true, 5));
        });
        // A plain `.await` of the task delivers what its joins marked.
        task.await.unwrap();
        assert_eq!((BOMB.get().is_none(), N.get()), (true, 5));
    }));
    shut_down(runtime);
}

/// Reads `USER` when dropped: a drop inside the runtime's own bookkeeping would fail.
#[derive(Clone)]
struct ReadsOnDrop(Arc<Mutex<Vec<Option<String>>>>);

impl Drop for ReadsOnDrop {
    fn drop(&mut self) {
        let seen = USER.get();
        N.with(|_| ());
        self.0.lock().unwrap().push(seen);
    }
}

static READER: ContextVar<Option<ReadsOnDrop>> = ContextVar::new("READER", || None);

#[test]
fn a_drop_that_reads_variables_works_wherever_a_value_is_dropped() {
    let runtime = runtime();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let reader = || Some(ReadsOnDrop(seen.clone()));
    let before = before();
    let drops = || seen.lock().unwrap().len();

    // set overwriting a value nobody shares, reset, snapshot drop, merge.
    READER.set(reader());
    drop(READER.set(reader()));
    let token = READER.set(reader());
    let snapshot = Context::current();
    READER.reset(token).unwrap();
    drop(snapshot);
    let mut child = Context::current();
    child.run(|| READER.set(reader()));
    Changes::between(&Context::current(), &child).apply();
    drop(child);
    READER.set(None);
    assert_eq!(drops(), 4);

    // A task's context, after a join and after an abort; a blocking child's.
    let seen_for_tasks = seen.clone();
    runtime.block_on(Context::new().scope(async move {
        USER.set(Some("task".into()));
        let reader = || Some(ReadsOnDrop(seen_for_tasks.clone()));
        let value = reader();
        contextvars::spawn(async move { READER.set(value) }).await.unwrap();
        let value = reader();
        let pending = contextvars::spawn(async move {
            READER.set(value);
            std::future::pending::<()>().await
        });
        tokio::task::yield_now().await;
        pending.abort();
        assert!(pending.await.unwrap_err().is_cancelled());
        let value = reader();
        contextvars::spawn_blocking(move || READER.set(value)).await.unwrap();
    }));
    assert_eq!(drops(), 7);
    check_unchanged(before, runtime.handle());
    shut_down(runtime);
}

// ---------------------------------------------------------------------------------------
// Aborts at every await point.

static HELD: ContextVar<Option<Counted>> = ContextVar::new("HELD", || None);

const AWAIT_POINTS: usize = 6;

/// A child that sets values, then stops at `AWAIT_POINTS` await points, telling the parent
/// each time and waiting for its go. The points are: the join of a grandchild (which itself
/// waits for the go), a yield followed by the go, and the go alone.
async fn child_with_await_points(
    live: Arc<Live>,
    reached: tokio::sync::mpsc::UnboundedSender<(usize, oneshot::Sender<()>)>,
) {
    for point in 0..AWAIT_POINTS {
        USER.set(Some(format!("child at {point}")));
        HELD.set(Some(Counted::new(&live)));
        let (go, wait) = oneshot::channel::<()>();
        reached.send((point, go)).unwrap();
        match point % 3 {
            0 => {
                let grandchild = contextvars::spawn(async move {
                    let _ = wait.await;
                    N.set(N.get() + 1);
                });
                let _ = grandchild.merge_back().await;
            }
            1 => {
                tokio::task::yield_now().await;
                let _ = wait.await;
            }
            _ => drop(wait.await),
        }
    }
}

#[test]
fn a_child_aborted_at_any_await_point_delivers_nothing_and_frees_everything() {
    let runtime = runtime();
    runtime.block_on(Context::new().scope(async {
        USER.set(Some("parent".into()));
        let live = Live::new();
        for abort_at in 0..=AWAIT_POINTS {
            for merge_back in [true, false] {
                let before = Context::current();
                let (reached, mut reached_rx) = tokio::sync::mpsc::unbounded_channel();
                let handle = contextvars::spawn(child_with_await_points(live.clone(), reached));
                // Hold the child at point `abort_at`; past the last point it has finished (its
                // channel closed when its future was dropped).
                let mut held_at = None;
                while let Some((point, go)) = reached_rx.recv().await {
                    if point == abort_at {
                        held_at = Some(go);
                        break;
                    }
                    go.send(()).unwrap();
                }
                handle.abort();
                let result = if merge_back { handle.merge_back().await } else { handle.await };
                match result {
                    Err(error) => {
                        assert!(error.is_cancelled() && abort_at < AWAIT_POINTS);
                        assert!(Changes::between(&before, &Context::current()).is_empty(), "nothing arrived");
                    }
                    Ok(()) => {
                        assert_eq!(abort_at, AWAIT_POINTS, "only a finished child is joined");
                        if merge_back {
                            assert_eq!((USER.get().as_deref(), N.get()), (Some("child at 5"), 2));
                            USER.set(Some("parent".into()));
                            HELD.set(None);
                            N.set(0);
                        }
                    }
                }
                assert_eq!(USER.get().as_deref(), Some("parent"));
                if abort_at % 3 == 0 && abort_at < AWAIT_POINTS {
                    // Aborted while joining a grandchild: the grandchild was detached and its
                    // context holds the value until it finishes, which the go lets it do.
                    assert!(live.get() > 0);
                    drop(held_at);
                    live.until_zero().await;
                } else {
                    // Everything the child held was freed by the time the join returned.
                    assert_eq!(live.get(), 0, "aborted at {abort_at}, merge_back: {merge_back}");
                }
                assert_eq!(N.get(), 0, "a detached grandchild delivers nothing");
            }
        }
    }));
    shut_down(runtime);
}

// ---------------------------------------------------------------------------------------
// A runtime shut down with tasks in flight.

/// Reports, when dropped, which task's context its drop ran in.
struct Probe {
    task: u64,
    report: mpsc::Sender<(u64, u64)>,
}

impl Drop for Probe {
    fn drop(&mut self) {
        let _ = self.report.send((self.task, N.get()));
    }
}

#[test]
fn shutting_down_a_runtime_with_tasks_in_flight_frees_them_in_their_own_contexts() {
    const TASKS: u64 = 200;
    const QUEUED_BLOCKING: u64 = 20;
    let runtime = {
        quiet_injected_panics();
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .max_blocking_threads(1)
            .enable_all()
            .on_thread_park(check_thread_is_clean)
            .on_thread_stop(check_thread_is_clean)
            .build()
            .unwrap()
    };
    let before = before();
    let live = Live::new();
    let (report, reports) = mpsc::channel();
    // The one running blocking task waits until the async tasks are dropped.
    let (release, released) = mpsc::channel::<()>();
    let started = runtime.block_on(Context::new().scope({
        let live = live.clone();
        async move {
            let (running, mut running_rx) = tokio::sync::mpsc::unbounded_channel();
            for task in 1..=TASKS {
                let (live, report, running, release) =
                    (live.clone(), report.clone(), running.clone(), release.clone());
                drop(contextvars::spawn(async move {
                    N.set(task);
                    HELD.set(Some(Counted::new(&live)));
                    // The future's own locals are dropped at shutdown, inside its scope.
                    let _probe = Probe { task, report };
                    let _release = release;
                    running.send(()).unwrap();
                    std::future::pending::<()>().await
                }));
            }
            for _ in 0..TASKS {
                running_rx.recv().await.unwrap();
            }
            drop(release);
            // One blocking thread: one blocking task runs until every async task is gone, the
            // others wait in the queue.
            let (blocking_started, blocking_started_rx) = oneshot::channel();
            let live_blocking = live.clone();
            drop(contextvars::spawn_blocking(move || {
                N.set(1000);
                HELD.set(Some(Counted::new(&live_blocking)));
                blocking_started.send(()).unwrap();
                let _ = released.recv();
            }));
            blocking_started_rx.await.unwrap();
            for task in 0..QUEUED_BLOCKING {
                N.set(2000 + task);
                HELD.set(Some(Counted::new(&live)));
                drop(contextvars::spawn_blocking(move || N.set(N.get() + 1)));
            }
            HELD.set(None);
            live.get()
        }
    }));
    assert_eq!(started as u64, TASKS + 1 + QUEUED_BLOCKING);
    shut_down(runtime);

    // Every async task's future was dropped inside its own context.
    let mut seen: Vec<(u64, u64)> = reports.try_iter().collect();
    seen.sort();
    assert_eq!(seen, (1..=TASKS).map(|task| (task, task)).collect::<Vec<_>>());
    assert_eq!(live.get(), 0, "no value outlived the runtime");
    check_unchanged(before, tokio::runtime::Builder::new_current_thread().build().unwrap().handle());
}

// ---------------------------------------------------------------------------------------
// Teardown: a stored value whose `Drop` sets a variable, wherever a context ends.

static NOTE: ContextVar<Option<&'static str>> = ContextVar::new("NOTE", || None);

/// Sets `NOTE` when dropped (allowed by the re-entrancy rules) and reports that it ran.
struct SetsOnDrop(mpsc::Sender<&'static str>);

impl Drop for SetsOnDrop {
    fn drop(&mut self) {
        NOTE.set(Some("dropped"));
        let _ = self.0.send("dropped");
    }
}

static SETTER: ContextVar<Option<Arc<SetsOnDrop>>> = ContextVar::new("SETTER", || None);

fn setter() -> (Option<Arc<SetsOnDrop>>, mpsc::Receiver<&'static str>) {
    let (tx, rx) = mpsc::channel();
    (Some(Arc::new(SetsOnDrop(tx))), rx)
}

#[test]
fn a_panicking_child_whose_values_set_on_drop_is_a_panic_not_an_abort() {
    quiet_injected_panics();
    let runtime = runtime();
    runtime.block_on(async {
        let (value, dropped) = setter();
        let error = contextvars::spawn_blocking(move || {
            SETTER.set(value);
            inject();
        })
        .await
        .unwrap_err();
        assert!(error.is_panic());
        assert_eq!(dropped.try_recv(), Ok("dropped"));

        let (value, dropped) = setter();
        let error = contextvars::spawn(async move {
            SETTER.set(value);
            tokio::task::yield_now().await;
            inject();
        })
        .await
        .unwrap_err();
        assert!(error.is_panic());
        assert_eq!(dropped.try_recv(), Ok("dropped"));
        assert_eq!(NOTE.get(), None, "the drops' sets stayed out of the joining context");
    });
    shut_down(runtime);
}

#[test]
fn an_aborted_child_whose_values_set_on_drop_is_cancelled() {
    let runtime = runtime();
    runtime.block_on(async {
        let (value, dropped) = setter();
        let (started, started_rx) = oneshot::channel();
        let child = contextvars::spawn(async move {
            SETTER.set(value);
            started.send(()).unwrap();
            std::future::pending::<()>().await
        });
        started_rx.await.unwrap();
        child.abort();
        assert!(child.await.unwrap_err().is_cancelled());
        assert_eq!(dropped.try_recv(), Ok("dropped"));
    });
    shut_down(runtime);
}

#[test]
fn a_plain_task_joining_a_child_whose_values_set_on_drop_gets_the_output() {
    let runtime = runtime();
    runtime.block_on(async {
        // The joining task has no context: the child's final context, dropped at the join,
        // is dropped outside it, where the drop's `set` has somewhere to go.
        let (value, dropped) = setter();
        let joined = tokio::spawn(async move {
            let child = contextvars::spawn(async move {
                SETTER.set(value);
                tokio::task::yield_now().await;
                7
            });
            child.await.unwrap()
        })
        .await;
        assert_eq!(joined.unwrap(), 7);
        assert_eq!(dropped.try_recv(), Ok("dropped"));

        // The same with a thread joined there.
        let (value, dropped) = setter();
        let joined = tokio::spawn(async move {
            contextvars::thread::spawn(move || {
                SETTER.set(value);
                8
            })
            .join()
            .unwrap()
        })
        .await;
        assert_eq!(joined.unwrap(), 8);
        assert_eq!(dropped.try_recv(), Ok("dropped"));
    });
    shut_down(runtime);
}

#[test]
fn a_wrapped_plain_task_whose_values_set_on_drop_finishes_ok() {
    let runtime = runtime();
    runtime.block_on(async {
        // The documented wrapping of a plain `tokio::spawn`.
        let (value, dropped) = setter();
        let output = tokio::spawn(Context::current().scope(async move {
            SETTER.set(value);
            tokio::task::yield_now().await;
            5
        }))
        .await
        .unwrap();
        assert_eq!(output, 5);
        assert_eq!(dropped.try_recv(), Ok("dropped"));

        // A detached child: its final context is dropped by the runtime, not by a join.
        let (value, dropped) = setter();
        let (done, done_rx) = oneshot::channel();
        drop(contextvars::spawn(async move {
            SETTER.set(value);
            done.send(()).unwrap();
        }));
        done_rx.await.unwrap();
        tokio::task::spawn_blocking(move || dropped.recv()).await.unwrap().unwrap();
        assert_eq!(NOTE.get(), None);
    });
    shut_down(runtime);
}

/// Sets a new one of itself when dropped, `left` more times.
struct Chain {
    left: u32,
    dropped: Arc<AtomicUsize>,
}

impl Clone for Chain {
    fn clone(&self) -> Chain {
        Chain { left: self.left, dropped: self.dropped.clone() }
    }
}

impl Drop for Chain {
    fn drop(&mut self) {
        self.dropped.fetch_add(1, Ordering::SeqCst);
        if self.left > 0 {
            CHAIN.set(Some(Chain { left: self.left - 1, dropped: self.dropped.clone() }));
        }
    }
}

static CHAIN: ContextVar<Option<Chain>> = ContextVar::new("CHAIN", || None);

#[test]
fn drops_that_set_values_whose_drops_set_values_are_bounded() {
    let runtime = runtime();
    runtime.block_on(async {
        // A short chain is dropped to its end.
        let dropped = Arc::new(AtomicUsize::new(0));
        let chain = Chain { left: 3, dropped: dropped.clone() };
        contextvars::spawn(async move { CHAIN.set(Some(chain)) }).await.unwrap();
        assert_eq!(dropped.load(Ordering::SeqCst), 4);
        assert!(CHAIN.get().is_none());

        // An endless one stops (the rest is leaked) instead of recursing forever.
        let dropped = Arc::new(AtomicUsize::new(0));
        let chain = Chain { left: u32::MAX, dropped: dropped.clone() };
        contextvars::spawn(async move { CHAIN.set(Some(chain)) }).await.unwrap();
        let rounds = dropped.load(Ordering::SeqCst);
        assert!((2..=64).contains(&rounds), "{rounds} rounds");
        assert!(CHAIN.get().is_none());
    });
    shut_down(runtime);
}

// ---------------------------------------------------------------------------------------
// A default that reads its own variable.

static SELF_READ: ContextVar<u64> = ContextVar::new("SELF_READ", || SELF_READ.get() + 1);
static PING: ContextVar<u64> = ContextVar::new("PING", || PONG.get());
static PONG: ContextVar<u64> = ContextVar::new("PONG", || PING.get());

/// Runs `read` on a thread of its own and returns its panic message; fails the test instead
/// of hanging if the read never returns.
fn cycle_message(read: fn() -> u64) -> String {
    let (done, result) = mpsc::channel();
    std::thread::spawn(move || {
        let outcome = catch_unwind(read)
            .map_err(|payload| payload.downcast::<String>().map(|m| *m).unwrap_or_default());
        let _ = done.send(outcome);
    });
    match result.recv_timeout(std::time::Duration::from_secs(30)) {
        Ok(outcome) => outcome.expect_err("a default that reads itself cannot succeed"),
        Err(_) => panic!("the read of a self-referential default never returned (deadlock)"),
    }
}

#[test]
fn a_default_that_reads_its_own_variable_panics_naming_the_cycle() {
    quiet_injected_panics();
    let message = cycle_message(|| SELF_READ.get());
    assert!(message.contains("`SELF_READ`") && message.contains("SELF_READ -> SELF_READ"), "{message}");
    let message = cycle_message(|| PING.get());
    assert!(message.contains("PING -> PONG -> PING"), "{message}");
    // Nothing is left half-computed: a context that sets the variable reads it.
    let mut ctx = Context::new();
    ctx.run(|| SELF_READ.set(3));
    assert_eq!(ctx.get(&SELF_READ), 3);
}
