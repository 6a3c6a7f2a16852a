//! `#[propagate(back)]` is transactional and a plain `.await` delivers final values: one
//! regression test per way the earlier rules surprised users or lost data.

use std::time::Duration;

use contextvars::{ContextVar, Error, context_var, propagate, propagate_back, propagate_back_async};
use futures::future::join_all;
use tokio::sync::oneshot;

fn sum(base: &i64, parent: &i64, child: &i64) -> i64 {
    parent + child - base
}

#[context_var]
static USER: Option<String>;
#[context_var(merge = sum)]
static TOTAL: i64;
#[context_var]
static PLAIN: i64;
#[context_var(inherit = false)]
static TXN: Option<u32>;
#[context_var]
static N: u32;

#[propagate(back)]
async fn authenticate(name: &str) {
    tokio::task::yield_now().await;
    USER.set(Some(name.to_string()));
}

#[tokio::test]
async fn a_plain_await_delivers_the_final_value_not_a_stale_one() {
    contextvars::spawn(async {
        authenticate("bob").await;
        // The child replaces what its function delivered: that is what the parent gets.
        USER.set(None);
    })
    .await
    .unwrap();
    assert_eq!(USER.get(), None);

    contextvars::spawn(async {
        authenticate("bob").await;
        USER.set(Some("carol".into()));
    })
    .await
    .unwrap();
    assert_eq!(USER.get().as_deref(), Some("carol"));
}

/// Sets USER, says so, then waits forever: only a cancellation ends it.
#[propagate(back)]
async fn set_then_wait(started: oneshot::Sender<()>) {
    USER.set(Some("half-done".into()));
    N.set(1);
    started.send(()).unwrap();
    std::future::pending::<()>().await;
}

#[tokio::test]
async fn a_function_cancelled_by_a_timeout_in_the_same_task_lands_nothing() {
    let (started, _started) = oneshot::channel();
    let outcome = tokio::time::timeout(Duration::from_millis(5), set_then_wait(started)).await;
    assert!(outcome.is_err());
    assert_eq!((USER.get(), N.get()), (None, 0));
}

#[tokio::test]
async fn a_function_cancelled_by_select_in_the_same_task_lands_nothing() {
    let (started, started_rx) = oneshot::channel();
    tokio::select! {
        biased;
        () = set_then_wait(started) => unreachable!("it never completes"),
        _ = started_rx => {}
    }
    assert_eq!((USER.get(), N.get()), (None, 0));
}

#[tokio::test]
async fn a_function_cancelled_half_way_delivers_nothing_through_a_join_either() {
    contextvars::spawn(async {
        let (started, started_rx) = oneshot::channel();
        tokio::select! {
            biased;
            () = set_then_wait(started) => unreachable!("it never completes"),
            _ = started_rx => {}
        }
    })
    .await
    .unwrap();
    assert_eq!((USER.get(), N.get()), (None, 0));
}

#[propagate(back)]
async fn add(n: i64) {
    let before = TOTAL.get();
    // Every future reads before any writes: they all overlap.
    tokio::task::yield_now().await;
    TOTAL.set(before + n);
    PLAIN.set(PLAIN.get() + n);
}

#[tokio::test]
async fn futures_joined_in_one_task_each_merge_with_join_all() {
    TOTAL.set(100);
    join_all((1..=8).map(add)).await;
    // Each ran on its own copy; `merge = sum` adds what each added.
    assert_eq!(TOTAL.get(), 100 + 36);
    // Without a merge function the last to finish wins, as the rules say.
    assert_eq!(PLAIN.get(), 8);
}

#[tokio::test]
async fn futures_joined_in_one_task_each_merge_with_join() {
    tokio::join!(add(2), add(3), add(5), add(7), add(17));
    assert_eq!(TOTAL.get(), 34);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sum_is_exact_through_spawned_tasks_and_plain_awaits() {
    let tasks = (0..4).map(|_| contextvars::spawn(async { join_all((1..=8).map(add)).await }));
    for task in join_all(tasks).await {
        task.unwrap();
    }
    assert_eq!(TOTAL.get(), 4 * 36);
}

#[tokio::test]
async fn a_variable_that_is_not_inherited_and_put_back_leaves_the_parent_alone() {
    TXN.set(Some(1));
    contextvars::spawn(async {
        assert_eq!(TXN.get(), None, "not inherited");
        let token = TXN.set(Some(2));
        propagate_back(None, || TXN.set(Some(3)));
        assert_eq!(TXN.get(), Some(3));
        // Put back as the child started: unset. Its final value is its start: nothing flows.
        TXN.reset(token).unwrap();
    })
    .await
    .unwrap();
    assert_eq!(TXN.get(), Some(1));

    // Changed for good, it flows (three ways against the fork).
    contextvars::spawn(async { propagate_back(None, || TXN.set(Some(3))) }).await.unwrap();
    assert_eq!(TXN.get(), Some(3));
}

#[propagate(back)]
fn bump() {
    N.set(N.get() + 1);
}

#[propagate(back)]
fn set_and_reset_inside() -> Result<(), Error> {
    let token = N.set(50);
    N.reset(token)
}

#[propagate(back)]
fn make_token() -> contextvars::Token<u32> {
    N.set(7)
}

#[tokio::test]
async fn a_token_made_before_the_call_still_resets_after_it() {
    let token = N.set(1);
    bump();
    assert_eq!(N.get(), 2);
    N.reset(token).unwrap();
    assert!(!N.is_set());

    let token = N.set(1);
    propagate_back_async(None, async { N.set(9) }).await;
    N.reset(token).unwrap();
    assert!(!N.is_set());
}

#[tokio::test]
async fn a_token_made_inside_the_call_resets_inside_only() {
    N.set(1);
    set_and_reset_inside().unwrap();
    assert_eq!(N.get(), 1);
    let token = make_token();
    assert_eq!(N.get(), 7);
    assert!(matches!(N.reset(token), Err(Error::TokenFromOtherContext { .. })));
    assert_eq!(N.get(), 7);
}

#[tokio::test]
async fn a_caller_change_during_an_async_call_merges_three_ways() {
    TOTAL.set(10);
    let (go, wait) = oneshot::channel::<()>();
    let call = propagate_back_async(None, async {
        TOTAL.set(TOTAL.get() + 1);
        wait.await.unwrap();
    });
    let caller = async {
        tokio::task::yield_now().await;
        TOTAL.set(TOTAL.get() + 5);
        go.send(()).unwrap();
    };
    tokio::join!(call, caller);
    assert_eq!(TOTAL.get(), 16);
}

#[tokio::test]
async fn the_copy_is_taken_at_the_first_poll() {
    N.set(1);
    let call = propagate_back_async(None, async { N.set(N.get() * 10) });
    N.set(2);
    call.await;
    assert_eq!(N.get(), 20);
}

#[tokio::test]
async fn a_panicking_async_function_lands_nothing() {
    use futures::FutureExt;
    let caught = std::panic::AssertUnwindSafe(propagate_back_async(None, async {
        N.set(3);
        tokio::task::yield_now().await;
        panic!("boom");
    }))
    .catch_unwind()
    .await;
    assert!(caught.is_err());
    assert_eq!(N.get(), 0);
}

#[tokio::test]
async fn a_marked_variable_flows_up_through_every_plain_await() {
    let seen = contextvars::spawn(async {
        contextvars::spawn(async {
            contextvars::spawn_blocking(|| propagate_back(None, || N.set(4))).await.unwrap();
            N.set(N.get() + 1); // final value 5: that is what goes up
        })
        .await
        .unwrap();
        N.get()
    })
    .await
    .unwrap();
    assert_eq!((seen, N.get()), (5, 5));
}

#[tokio::test]
async fn merge_back_marks_what_was_marked_in_the_child() {
    contextvars::spawn(async {
        contextvars::spawn(async {
            bump();
            PLAIN.set(1);
        })
        .merge_back()
        .await
        .unwrap();
        assert_eq!((N.get(), PLAIN.get()), (1, 1));
    })
    .await
    .unwrap();
    assert_eq!((N.get(), PLAIN.get()), (1, 0));
}

static NOT_BACK: ContextVar<u32> = ContextVar::new("NOT_BACK", || 0).back(false);

#[tokio::test]
async fn only_listed_variables_that_flow_back_land() {
    static LIST: [&dyn contextvars::AnyVar; 2] = [&N, &NOT_BACK];
    propagate_back(Some(&LIST), || {
        N.set(1);
        NOT_BACK.set(1);
        PLAIN.set(1);
    });
    assert_eq!((N.get(), NOT_BACK.get(), PLAIN.get()), (1, 0, 0));
}

#[tokio::test]
async fn a_variable_changed_and_put_back_inside_a_call_is_not_marked() {
    contextvars::spawn(async {
        propagate_back(None, || {
            let token = N.set(1);
            bump(); // lands in this call's copy, marked there
            N.reset(token).unwrap(); // back to the value at the call's entry: no change
        });
        // Not marked in the task, so this plain set stays in the task.
        N.set(5);
    })
    .await
    .unwrap();
    assert!(!N.is_set());
}

/// The panic message of a task's `JoinError`.
fn panic_message(error: tokio::task::JoinError) -> String {
    let payload = error.into_panic();
    match payload.downcast::<String>() {
        Ok(message) => *message,
        Err(payload) => payload.downcast::<&'static str>().map(|s| s.to_string()).unwrap_or_default(),
    }
}

#[tokio::test]
async fn a_plain_await_in_a_task_without_a_context_delivers_nothing() {
    // The raw task has no context to receive into (it reads defaults): what its child's
    // function marked stops there, as at a dropped handle, instead of panicking in the await.
    let seen = tokio::spawn(async {
        contextvars::spawn(authenticate("bob")).await.unwrap();
        USER.get()
    })
    .await
    .unwrap();
    assert_eq!(seen, None);
}

#[tokio::test]
async fn merge_back_in_a_task_without_a_context_panics_naming_the_join() {
    let error = tokio::spawn(async { contextvars::spawn(async { N.set(1) }).merge_back().await.unwrap() })
        .await
        .unwrap_err();
    let message = panic_message(error);
    assert!(message.contains("`.merge_back()`") && message.contains("contextvars::JoinSet"), "{message}");
    assert!(message.contains("Context::current().scope(..)"), "{message}");
    // Asking to merge where there is no context is the mistake, whatever the child changed.
    let error =
        tokio::spawn(async { contextvars::spawn(async {}).merge_back().await.unwrap() }).await.unwrap_err();
    assert!(panic_message(error).contains("contextvars::JoinSet"));
}

/// Writes what `N` reads when it is dropped.
struct ReadsOnDrop(std::sync::Arc<std::sync::Mutex<Option<u32>>>);

impl Drop for ReadsOnDrop {
    fn drop(&mut self) {
        *self.0.lock().unwrap() = Some(N.get());
        N.set(99); // in a copy: lands nowhere
    }
}

#[tokio::test]
async fn a_function_dropped_before_its_first_poll_drops_in_a_copy_of_the_callers_context() {
    N.set(5);
    let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
    let guard = ReadsOnDrop(seen.clone());
    drop(propagate_back_async(None, async move {
        let _guard = guard;
    }));
    assert_eq!(*seen.lock().unwrap(), Some(5));
    assert_eq!(N.get(), 5);
}

#[tokio::test]
async fn a_function_polled_after_it_completed_panics_naming_itself() {
    use futures::FutureExt;
    let mut call = Box::pin(propagate_back_async(None, async { N.set(1) }));
    call.as_mut().await;
    let panic =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| call.as_mut().now_or_never())).unwrap_err();
    let message = panic.downcast_ref::<&str>().copied().unwrap_or_default();
    assert!(message.contains("`PropagateBack` polled after completion"), "{message}");
    assert_eq!(N.get(), 1);
}

#[propagate(back)]
fn reset_inside(token: contextvars::Token<u32>) -> Result<(), Error> {
    N.reset(token)
}

#[tokio::test]
async fn a_token_made_before_the_call_does_not_reset_inside_it_and_the_error_says_why() {
    N.set(1);
    let token = N.set(2);
    let error = reset_inside(token).unwrap_err();
    assert!(matches!(error, Error::TokenFromOtherContext { var: "N" }));
    assert!(error.to_string().contains("#[propagate]"), "{error}");
    assert_eq!(N.get(), 2);
}

#[propagate(back)]
fn current_user_len() -> usize {
    USER.get().map_or(0, |user| user.len())
}

/// A value whose `Clone` calls a `#[propagate(back)]` function that only reads: `get`
/// clones it while it reads the context.
#[derive(Debug)]
struct CallsOnClone(usize);

impl Clone for CallsOnClone {
    fn clone(&self) -> CallsOnClone {
        CallsOnClone(self.0 + current_user_len())
    }
}

static CALLS_ON_CLONE: ContextVar<Option<CallsOnClone>> = ContextVar::new("CALLS_ON_CLONE", || None);

#[test]
fn a_function_called_from_the_clone_of_a_value_being_read_works_as_without_the_attribute() {
    USER.set(Some("ada".into()));
    CALLS_ON_CLONE.set(Some(CallsOnClone(10)));
    assert_eq!(CALLS_ON_CLONE.get().map(|value| value.0), Some(13));
}

#[test]
fn entering_a_context_from_the_clone_of_a_value_being_read_panics_naming_the_cause() {
    #[derive(Debug)]
    struct RunsOnClone;
    impl Clone for RunsOnClone {
        fn clone(&self) -> RunsOnClone {
            contextvars::Context::new().run(|| RunsOnClone)
        }
    }
    static RUNS_ON_CLONE: ContextVar<Option<RunsOnClone>> = ContextVar::new("RUNS_ON_CLONE", || None);
    RUNS_ON_CLONE.set(Some(RunsOnClone));
    let panic = std::panic::catch_unwind(|| RUNS_ON_CLONE.get()).unwrap_err();
    let message = panic.downcast_ref::<&str>().copied().unwrap_or_default();
    assert!(message.contains("from inside the `Clone` of a value that `get` is cloning"), "{message}");
    // The thread's context is intact.
    assert!(RUNS_ON_CLONE.is_set());
}
