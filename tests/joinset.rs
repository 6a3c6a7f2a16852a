//! `contextvars::JoinSet`: every child starts from the context at its own spawn and is
//! merged against that fork; `join_next` delivers what a plain await does, `merge_back_next`
//! every change; a panicked or aborted child delivers nothing.

mod support;

use std::rc::Rc;

use contextvars::{Context, ContextVar, JoinSet, propagate};
use futures::FutureExt;
use support::{fault, quiet_injected_panics};
use tokio::sync::oneshot;

fn sum(base: &u32, parent: &u32, child: &u32) -> u32 {
    parent + child - base
}

static ROWS: ContextVar<u32> = ContextVar::new("ROWS", || 0).merge(sum);
static N: ContextVar<u32> = ContextVar::new("N", || 0);
static USER: ContextVar<&'static str> = ContextVar::new("USER", || "nobody");
static TXN: ContextVar<Option<u32>> = ContextVar::new("TXN", || None).inherit(false);

#[propagate(back)]
fn log_in(user: &'static str) {
    USER.set(user);
}

#[propagate(back)]
async fn log_in_later(user: &'static str) {
    tokio::task::yield_now().await;
    USER.set(user);
}

/// 34 children, each counting one row from its own copy of the context.
async fn count_rows(set: &mut JoinSet<u32>) {
    for _ in 0..34 {
        set.spawn(async {
            let seen = ROWS.get();
            tokio::task::yield_now().await;
            ROWS.set(ROWS.get() + 1);
            seen
        });
    }
}

#[tokio::test]
async fn each_child_starts_from_the_context_at_its_own_spawn() {
    let mut set = JoinSet::new();
    USER.set("ada");
    TXN.set(Some(1));
    set.spawn(async { (USER.get(), TXN.get()) });
    USER.set("bob");
    set.spawn_blocking(|| (USER.get(), TXN.get()));
    let mut seen = Vec::new();
    while let Some(joined) = set.join_next().await {
        seen.push(joined.unwrap());
    }
    seen.sort();
    assert_eq!(seen, [("ada", None), ("bob", None)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_back_next_sums_every_sibling_exactly() {
    let mut set = JoinSet::new();
    count_rows(&mut set).await;
    while let Some(seen) = set.merge_back_next().await {
        // Siblings are isolated: each saw the fork, none saw another's row.
        assert_eq!(seen.unwrap(), 0);
    }
    assert_eq!(ROWS.get(), 34);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_next_without_propagate_delivers_nothing() {
    let mut set = JoinSet::new();
    count_rows(&mut set).await;
    let mut joined = 0;
    while let Some(seen) = set.join_next().await {
        seen.unwrap();
        joined += 1;
    }
    assert_eq!((joined, ROWS.get()), (34, 0));
}

#[tokio::test]
async fn join_next_delivers_what_propagate_back_recorded() {
    let mut set = JoinSet::new();
    set.spawn(async {
        N.set(1);
        log_in("ada");
    });
    set.spawn_blocking(|| {
        N.set(2);
        log_in("bob");
    });
    let mut users = Vec::new();
    while let Some(joined) = set.join_next().await {
        joined.unwrap();
        users.push(USER.get());
    }
    users.sort();
    assert_eq!(users.len(), 2);
    assert!(users.contains(&"ada") && users.contains(&"bob"));
    assert_eq!(N.get(), 0, "not recorded: stays in the children");
}

#[tokio::test]
async fn recorded_changes_keep_flowing_up_through_nested_sets() {
    let mut outer = JoinSet::new();
    outer.spawn(async {
        let mut inner = JoinSet::new();
        inner.spawn(log_in_later("ada"));
        inner.join_next().await.unwrap().unwrap();
        assert_eq!(USER.get(), "ada");
    });
    outer.join_next().await.unwrap().unwrap();
    assert_eq!(USER.get(), "ada");
}

#[tokio::test]
async fn each_child_is_merged_against_its_own_fork() {
    let mut set = JoinSet::new();
    N.set(1);
    set.spawn(async {
        USER.set("ada");
    }); // forked at N = 1, leaves N alone
    N.set(2);
    set.spawn(async {}); // forked at N = 2
    while let Some(joined) = set.merge_back_next().await {
        joined.unwrap();
    }
    // Had the first child been merged against a later fork, its N = 1 would look like a change.
    assert_eq!((N.get(), USER.get()), (2, "ada"));
}

#[tokio::test]
async fn a_panicked_child_delivers_nothing() {
    quiet_injected_panics();
    let mut set = JoinSet::new();
    set.spawn(async {
        N.set(1);
        log_in("mallory");
        fault();
    });
    let error = set.merge_back_next().await.unwrap().unwrap_err();
    assert!(support::is_fault(Err::<(), _>(error.into_panic())));
    assert_eq!((N.get(), USER.get()), (0, "nobody"));

    set.spawn_blocking(|| {
        log_in("mallory");
        fault();
    });
    assert!(set.join_next().await.unwrap().unwrap_err().is_panic());
    assert_eq!(USER.get(), "nobody");
}

#[tokio::test]
async fn an_aborted_child_delivers_nothing() {
    let mut set = JoinSet::new();
    let (started, wait_started) = oneshot::channel();
    let abort = set.spawn(async {
        log_in("mallory");
        N.set(1);
        started.send(()).unwrap();
        std::future::pending::<()>().await;
    });
    wait_started.await.unwrap();
    abort.abort();
    let error = set.merge_back_next().await.unwrap().unwrap_err();
    assert!(error.is_cancelled());
    assert_eq!((N.get(), USER.get()), (0, "nobody"));

    set.spawn(async { log_in("mallory") });
    set.spawn(std::future::pending());
    set.abort_all();
    // The first may have finished before the abort; the other is cancelled.
    let mut cancelled = 0;
    while let Some(joined) = set.join_next().await {
        cancelled += usize::from(joined.is_err_and(|error| error.is_cancelled()));
    }
    assert!(cancelled >= 1);

    set.spawn(async {
        N.set(5);
    });
    set.spawn(std::future::pending());
    set.shutdown().await;
    assert!(set.is_empty());
    assert_eq!(N.get(), 0, "shutdown delivers nothing");
}

#[tokio::test]
async fn a_dropped_join_takes_nothing_and_delivers_nothing() {
    let mut set = JoinSet::new();
    let (go, wait) = oneshot::channel::<()>();
    set.spawn(async {
        wait.await.unwrap();
        N.set(1);
    });
    assert!(set.merge_back_next().now_or_never().is_none());
    assert_eq!(set.len(), 1);
    go.send(()).unwrap();
    set.merge_back_next().await.unwrap().unwrap();
    assert_eq!(N.get(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usable_from_a_task_whose_only_context_is_a_scope() {
    let rows = tokio::spawn(Context::current().scope(async {
        let mut set = JoinSet::new();
        count_rows(&mut set).await;
        while let Some(joined) = set.merge_back_next().await {
            joined.unwrap();
        }
        ROWS.get()
    }))
    .await
    .unwrap();
    assert_eq!(rows, 34);
}

#[tokio::test]
async fn a_task_without_a_context_joins_children_that_bring_nothing_back() {
    let outcome = tokio::spawn(async {
        let mut set = JoinSet::new();
        set.spawn(async { USER.get() });
        let seen = set.merge_back_next().await.unwrap().unwrap();
        // A change to land there panics with the fix, like `set`.
        set.spawn(async {
            USER.set("ada");
            "ada"
        });
        let landed = std::panic::AssertUnwindSafe(set.merge_back_next()).catch_unwind().await;
        let message = *landed.unwrap_err().downcast::<String>().unwrap();
        (seen, message)
    })
    .await
    .unwrap();
    assert_eq!(outcome.0, "nobody");
    assert!(outcome.1.contains("contextvars::spawn(fut)"), "{}", outcome.1);
}

#[tokio::test]
async fn spawn_local_children_start_with_a_copy_and_merge_back() {
    tokio::task::LocalSet::new()
        .run_until(async {
            let mut set = JoinSet::new();
            USER.set("ada");
            let not_send = Rc::new(5);
            set.spawn_local(async move {
                N.set(*not_send);
                USER.get()
            });
            assert_eq!(set.merge_back_next().await.unwrap().unwrap(), "ada");
            assert_eq!(N.get(), 5);
        })
        .await;
}

#[tokio::test]
async fn spawn_local_handles_copy_down_merge_back_and_abort() {
    tokio::task::LocalSet::new()
        .run_until(async {
            USER.set("ada");
            let seen = contextvars::spawn_local(async { USER.get() }).await.unwrap();
            assert_eq!(seen, "ada");
            contextvars::spawn_local(async { N.set(1) }).await.unwrap();
            assert_eq!(N.get(), 0, "a plain await brings back only recorded changes");
            contextvars::spawn_local(log_in_later("bob")).await.unwrap();
            assert_eq!(USER.get(), "bob");
            contextvars::spawn_local(async { N.set(2) }).merge_back().await.unwrap();
            assert_eq!(N.get(), 2);
            let handle = contextvars::spawn_local(async {
                N.set(3);
                std::future::pending::<()>().await;
            });
            handle.abort_handle().abort();
            assert!(handle.merge_back().await.unwrap_err().is_cancelled());
            assert_eq!(N.get(), 2);
        })
        .await;
}

#[tokio::test]
async fn join_handles_expose_their_task_id() {
    let handle = contextvars::spawn(async { tokio::task::id() });
    let id = handle.id();
    assert_eq!(handle.await.unwrap(), id);
}

fn refuse(_: &u32, _: &u32, _: &u32) -> u32 {
    fault()
}
static REFUSED: ContextVar<u32> = ContextVar::new("REFUSED", || 0).merge(refuse);

/// A merge function that panics at `merge_back_next`: the panic reaches the joining code,
/// nothing of that child lands, and the child (with its output) has left the set; the other
/// children join as before.
#[tokio::test]
async fn a_panicking_merge_function_lands_nothing_and_takes_the_child_out() {
    quiet_injected_panics();
    let mut set = JoinSet::new();
    set.spawn(async {
        REFUSED.set(5);
        ROWS.set(ROWS.get() + 1);
    });
    REFUSED.set(2);
    let joined = std::panic::AssertUnwindSafe(set.merge_back_next()).catch_unwind().await;
    assert!(joined.is_err());
    assert_eq!((REFUSED.get(), ROWS.get(), set.len()), (2, 0, 0));
    set.spawn(async {
        ROWS.set(ROWS.get() + 1);
    });
    set.merge_back_next().await.unwrap().unwrap();
    assert_eq!(ROWS.get(), 1);
}

/// Joins cancelled at every turn by `select!` neither lose nor double a delivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_cancelled_by_select_lose_and_double_nothing() {
    let mut set = JoinSet::new();
    for child in 0..200u32 {
        set.spawn(async move {
            if child % 3 == 0 {
                tokio::task::yield_now().await;
            }
            ROWS.set(ROWS.get() + 1);
        });
    }
    let mut joined = 0;
    loop {
        tokio::select! {
            biased;
            next = set.merge_back_next() => match next {
                Some(next) => { next.unwrap(); joined += 1; }
                None => break,
            },
            () = tokio::task::yield_now() => {}
        }
    }
    assert_eq!((joined, ROWS.get()), (200, 200));
}

/// `abort_all` cancels only what still runs: a child that had finished is joined with its
/// output and delivers, as the boundaries page says.
#[tokio::test]
async fn a_child_finished_before_abort_all_still_delivers() {
    let mut set = JoinSet::new();
    let finished = set.spawn(async {
        N.set(3);
    });
    while !finished.is_finished() {
        tokio::task::yield_now().await;
    }
    set.abort_all();
    set.merge_back_next().await.unwrap().unwrap();
    assert_eq!(N.get(), 3);
}

/// Sets `USER` when dropped and reports what it saw there.
struct SetOnDrop(Option<oneshot::Sender<(&'static str, &'static str)>>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        let before = USER.get();
        USER.set("dropped");
        let _ = self.0.take().unwrap().send((before, USER.get()));
    }
}

/// Dropping the set aborts its children; a child's future is dropped in its own context, so
/// what its `Drop` sets stays there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_set_drops_its_running_children_in_their_own_contexts() {
    USER.set("ada");
    let (started, wait_started) = oneshot::channel();
    let (dropped, wait_dropped) = oneshot::channel();
    let mut set = JoinSet::new();
    set.spawn(async move {
        let _guard = SetOnDrop(Some(dropped));
        started.send(()).unwrap();
        std::future::pending::<()>().await;
    });
    wait_started.await.unwrap();
    drop(set);
    assert_eq!(wait_dropped.await.unwrap(), ("ada", "dropped"));
    assert_eq!(USER.get(), "ada");
}
