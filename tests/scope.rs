//! `Scope<F>`: the context of one future, swapped in for every poll and for its drop.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};

use contextvars::{Context, ContextVar};
use tokio::sync::oneshot;

mod support;
use support::poll_once;

static N: ContextVar<u32> = ContextVar::new("N", || 0);
static NAME: ContextVar<&'static str> = ContextVar::new("NAME", || "none");

/// Pending on its first poll, ready on the second: a suspension point without a runtime.
#[derive(Default)]
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, _: &mut TaskContext<'_>) -> Poll<()> {
        if std::mem::replace(&mut self.0, true) { Poll::Ready(()) } else { Poll::Pending }
    }
}

#[test]
fn scope_is_swapped_in_for_each_poll_and_out_after() {
    N.set(100);
    let mut scope = pin!(Context::new().scope(async {
        let first = N.get();
        N.set(1);
        YieldOnce::default().await;
        let second = N.get();
        N.set(2);
        (first, second)
    }));
    assert!(poll_once(scope.as_mut()).is_pending());
    // Between polls the thread is back in its own context.
    assert_eq!(N.get(), 100);
    assert_eq!(scope.context().get(&N), 1);
    // Changes the thread makes in between are not seen by the scope.
    N.set(101);
    assert_eq!(poll_once(scope.as_mut()), Poll::Ready((0, 1)));
    assert_eq!(N.get(), 101);
}

#[test]
fn a_panicking_poll_restores_the_threads_context() {
    N.set(7);
    let mut scope = Box::pin(Context::new().scope(async {
        N.set(8);
        panic!("boom");
    }));
    let result = catch_unwind(AssertUnwindSafe(|| poll_once(scope.as_mut())));
    assert!(result.is_err());
    assert_eq!(N.get(), 7);
}

/// Records the value of `NAME` seen by its `Drop`.
struct ReadsOnDrop(Arc<Mutex<Option<&'static str>>>);

impl Drop for ReadsOnDrop {
    fn drop(&mut self) {
        *self.0.lock().unwrap() = Some(NAME.get());
    }
}

#[test]
fn a_future_dropped_before_completion_is_dropped_inside_its_scope() {
    NAME.set("thread");
    let seen = Arc::new(Mutex::new(None));
    let guard = ReadsOnDrop(seen.clone());
    let mut scope = Box::pin(Context::new().scope(async move {
        let _guard = guard;
        NAME.set("scope");
        YieldOnce::default().await;
    }));
    assert!(poll_once(scope.as_mut()).is_pending());
    drop(scope);
    assert_eq!(*seen.lock().unwrap(), Some("scope"));
    assert_eq!(NAME.get(), "thread");
}

#[test]
fn a_finished_future_is_dropped_inside_its_scope() {
    NAME.set("thread");
    let seen = Arc::new(Mutex::new(None));
    let guard = ReadsOnDrop(seen.clone());
    // The guard is a capture of the future: it is dropped with the future, after the
    // body returns.
    let scope = pin!(Context::new().scope(async move {
        let _keep = &guard;
        NAME.set("scope");
    }));
    assert_eq!(poll_once(scope), Poll::Ready(()));
    assert_eq!(*seen.lock().unwrap(), Some("scope"));
    assert_eq!(NAME.get(), "thread");
}

#[test]
fn a_future_never_polled_is_dropped_inside_its_scope() {
    let seen = Arc::new(Mutex::new(None));
    let guard = ReadsOnDrop(seen.clone());
    let mut ctx = Context::new();
    ctx.run(|| NAME.set("given"));
    drop(ctx.scope(async move { drop(guard) }));
    assert_eq!(*seen.lock().unwrap(), Some("given"));
}

#[test]
fn nested_scopes_restore_each_outer_context() {
    N.set(100);
    let mut inner_ctx = Context::new();
    inner_ctx.run(|| N.set(2));
    let mut outer = pin!(Context::new().scope(async move {
        N.set(1);
        let inner = inner_ctx.scope(async {
            let start = N.get();
            N.set(3);
            YieldOnce::default().await;
            (start, N.get())
        });
        let inner_saw = inner.await;
        // Back in the outer scope, with its own value.
        let outer_saw = N.get();
        YieldOnce::default().await;
        (inner_saw, outer_saw, N.get())
    }));
    assert!(poll_once(outer.as_mut()).is_pending());
    assert_eq!(N.get(), 100);
    assert!(poll_once(outer.as_mut()).is_pending());
    assert_eq!(N.get(), 100);
    assert_eq!(poll_once(outer.as_mut()), Poll::Ready(((2, 3), 1, 1)));
    assert_eq!(N.get(), 100);
}

#[tokio::test]
async fn copies_of_one_context_never_see_each_others_changes() {
    let mut base = Context::new();
    base.run(|| NAME.set("base"));
    let (a_set, a_set_rx) = oneshot::channel();
    let (b_set, b_set_rx) = oneshot::channel();
    // Each future sets, then waits until the other one has set too, then reads: the
    // interleaving is fixed by the channels.
    let a = base.clone().scope(async move {
        NAME.set("a");
        a_set.send(()).unwrap();
        b_set_rx.await.unwrap();
        NAME.get()
    });
    let b = base.clone().scope(async move {
        a_set_rx.await.unwrap();
        let before = NAME.get();
        NAME.set("b");
        b_set.send(()).unwrap();
        (before, NAME.get())
    });
    assert_eq!(tokio::join!(a, b), ("a", ("base", "b")));
    assert_eq!(base.get(&NAME), "base");
    assert_eq!(NAME.get(), "none");
}

#[tokio::test]
async fn the_awaiting_code_does_not_see_the_scopes_changes() {
    NAME.set("caller");
    let inside = Context::current().scope(async {
        NAME.set("inside");
        tokio::task::yield_now().await;
        NAME.get()
    });
    assert_eq!(inside.await, "inside");
    assert_eq!(NAME.get(), "caller");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scope_keeps_its_context_across_threads() {
    // Raw `tokio::spawn` of a scope: the task may move between workers at each await.
    let seen = tokio::spawn(Context::new().scope(async {
        let mut seen = Vec::new();
        for n in 0..50 {
            N.set(n);
            tokio::task::yield_now().await;
            seen.push(N.get());
        }
        seen
    }))
    .await
    .unwrap();
    assert_eq!(seen, (0..50).collect::<Vec<_>>());
}

#[test]
fn scope_context_shows_what_the_future_set_so_far() {
    let mut scope = pin!(Context::new().scope(async {
        N.set(5);
        YieldOnce::default().await;
        N.set(6);
    }));
    assert_eq!(scope.context().get(&N), 0);
    assert!(poll_once(scope.as_mut()).is_pending());
    assert_eq!(scope.context().get(&N), 5);
    assert!(format!("{scope:?}").contains("finished: false"));
}
