//! A child that panics, is aborted, or whose handle is dropped delivers nothing, and its
//! context is freed.

use contextvars::{Changes, Context, ContextVar, propagate_back};
use tokio::sync::oneshot;

mod support;
use support::{Counted, Live};

static HELD: ContextVar<Option<Counted>> = ContextVar::new("HELD", || None);
static N: ContextVar<u32> = ContextVar::new("N", || 0);

#[tokio::test]
async fn a_panicking_child_delivers_nothing() {
    N.set(1);
    let before = Context::current();
    let error = contextvars::spawn(async {
        N.set(2);
        // Even a finished propagate_back function's changes are lost with the task.
        propagate_back(None, || N.set(3));
        panic!("child failed");
    })
    .merge_back()
    .await
    .unwrap_err();
    assert!(error.is_panic());
    assert_eq!(N.get(), 1);
    assert!(Changes::between(&before, &Context::current()).is_empty());
}

#[tokio::test]
async fn a_panicking_child_delivers_nothing_through_a_plain_await() {
    let error = contextvars::spawn(async {
        propagate_back(None, || N.set(3));
        panic!("child failed");
    })
    .await
    .unwrap_err();
    assert!(error.is_panic());
    assert!(!N.is_set());
}

#[tokio::test]
async fn a_panicking_blocking_child_delivers_nothing() {
    N.set(1);
    let error = contextvars::spawn_blocking(|| {
        propagate_back(None, || N.set(3));
        panic!("child failed");
    })
    .merge_back()
    .await
    .unwrap_err();
    assert!(error.is_panic());
    assert_eq!(N.get(), 1);
}

#[tokio::test]
async fn a_panicking_child_frees_its_context() {
    let live = Live::new();
    let held = Counted::new(&live);
    let error = contextvars::spawn(async move {
        HELD.set(Some(held));
        panic!("child failed");
    })
    .merge_back()
    .await
    .unwrap_err();
    assert!(error.is_panic());
    assert_eq!(live.get(), 0);
}

#[tokio::test]
async fn an_aborted_child_delivers_nothing_and_frees_its_context() {
    let live = Live::new();
    let held = Counted::new(&live);
    let (set, set_rx) = oneshot::channel();
    N.set(1);
    let handle = contextvars::spawn(async move {
        HELD.set(Some(held));
        N.set(2);
        set.send(()).unwrap();
        std::future::pending::<()>().await;
    });
    set_rx.await.unwrap();
    assert_eq!(live.get(), 1);
    let join = handle.merge_back();
    join.abort();
    let error = join.await.unwrap_err();
    assert!(error.is_cancelled());
    // The cancelled task's future, and the context in it, are gone by the time the join
    // reports the cancellation.
    assert_eq!(live.get(), 0);
    assert_eq!(N.get(), 1);
    assert!(!HELD.is_set());
}

#[tokio::test]
async fn a_child_whose_handle_was_dropped_delivers_nothing_and_frees_its_context() {
    let live = Live::new();
    let held = Counted::new(&live);
    let (go, go_rx) = oneshot::channel::<()>();
    let (ended, ended_rx) = oneshot::channel();
    drop(contextvars::spawn(async move {
        go_rx.await.unwrap();
        HELD.set(Some(held));
        N.set(2);
        ended.send(()).unwrap();
    }));
    go.send(()).unwrap();
    ended_rx.await.unwrap();
    // On this current_thread runtime the child's last poll, and the drop of its output
    // (its context with it, nobody will join it), finished before this task ran again.
    assert_eq!(live.get(), 0);
    assert!(!N.is_set() && !HELD.is_set());
}

#[tokio::test]
async fn a_dropped_merge_back_future_delivers_nothing() {
    let (go, go_rx) = oneshot::channel::<()>();
    let (ended, ended_rx) = oneshot::channel();
    let join = contextvars::spawn(async move {
        go_rx.await.unwrap();
        N.set(2);
        ended.send(()).unwrap();
    })
    .merge_back();
    drop(join);
    go.send(()).unwrap();
    ended_rx.await.unwrap();
    assert!(!N.is_set());
}

#[test]
fn a_blocking_child_whose_handle_was_dropped_frees_its_context() {
    let live = Live::new();
    let held = Counted::new(&live);
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    runtime.block_on(async {
        drop(contextvars::spawn_blocking(move || drop(HELD.set(Some(held)))));
    });
    // Dropping the runtime waits for its blocking pool, so the child has ended.
    drop(runtime);
    assert_eq!(live.get(), 0);
}

#[tokio::test]
async fn a_parent_that_merges_no_child_keeps_running_normally() {
    // After every kind of failed join, the parent's context still works as before.
    N.set(1);
    let _ = contextvars::spawn(async { panic!("boom") }).await;
    let aborted = contextvars::spawn(std::future::pending::<()>());
    aborted.abort();
    let _ = aborted.await;
    N.set(N.get() + 1);
    contextvars::spawn(async { N.set(N.get() * 10) }).merge_back().await.unwrap();
    assert_eq!(N.get(), 20);
}
