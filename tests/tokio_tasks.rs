//! A task started with a raw `tokio::spawn` has no context of its own: writing there panics
//! with a message that names the fix, reading there gives defaults, whatever the thread
//! running it holds. The body of `#[tokio::main]` / `#[tokio::test]` is not such a task.

use contextvars::{Context, ContextVar};

static USER: ContextVar<&'static str> = ContextVar::new("USER", || "nobody");

/// The panic message carried by a task's `JoinError`.
fn panic_message(error: tokio::task::JoinError) -> String {
    assert!(error.is_panic(), "{error}");
    let payload = error.into_panic();
    match payload.downcast::<String>() {
        Ok(message) => *message,
        Err(payload) => payload.downcast::<&'static str>().map(|s| s.to_string()).unwrap_or_default(),
    }
}

#[tokio::test]
async fn set_in_a_raw_task_panics_and_names_the_fix() {
    let error = tokio::spawn(async { USER.set("ada") }).await.unwrap_err();
    let message = panic_message(error);
    assert!(message.contains("`USER.set()`"), "{message}");
    assert!(message.contains("contextvars::spawn"), "{message}");
    assert!(message.contains("Context::current().scope("), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_in_a_raw_task_panics_on_a_multi_thread_runtime() {
    let error = tokio::spawn(async { USER.set("ada") }).await.unwrap_err();
    assert!(panic_message(error).contains("contextvars::spawn"));
}

#[tokio::test]
async fn the_body_of_tokio_test_can_set() {
    USER.set("ada");
    tokio::task::yield_now().await;
    assert_eq!(USER.get(), "ada");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_body_of_a_multi_thread_tokio_test_can_set() {
    USER.set("ada");
    tokio::task::yield_now().await;
    assert_eq!(USER.get(), "ada");
    // A task of our own still inherits from the body.
    assert_eq!(contextvars::spawn(async { USER.get() }).await.unwrap(), "ada");
}

#[tokio::test]
async fn a_raw_task_on_the_same_thread_reads_defaults() {
    // On a current_thread runtime the raw task runs on this very thread, whose own
    // context now holds a value: the task must not see it.
    USER.set("ada");
    let body_thread = std::thread::current().id();
    let (thread, seen, is_set) =
        tokio::spawn(async { (std::thread::current().id(), USER.get(), USER.is_set()) }).await.unwrap();
    assert_eq!(thread, body_thread);
    assert_eq!((seen, is_set), ("nobody", false));
    assert_eq!(USER.get(), "ada");
}

#[test]
fn a_raw_task_does_not_see_the_runtime_threads_values() {
    // The same from a hand-built runtime, whose thread set a value before it started.
    USER.set("main");
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let seen = runtime.block_on(async {
        assert_eq!(USER.get(), "main");
        tokio::spawn(async { USER.get() }).await.unwrap()
    });
    assert_eq!(seen, "nobody");
}

#[tokio::test]
async fn a_raw_task_does_not_hand_the_threads_values_to_its_children() {
    USER.set("ada");
    let seen = tokio::spawn(async { contextvars::spawn(async { USER.get() }).await.unwrap() }).await.unwrap();
    assert_eq!(seen, "nobody");
}

#[tokio::test]
async fn a_raw_task_can_set_inside_a_scope() {
    USER.set("ada");
    let seen = tokio::spawn(Context::current().scope(async {
        let inherited = USER.get();
        USER.set("bob");
        (inherited, USER.get())
    }))
    .await
    .unwrap();
    assert_eq!(seen, ("ada", "bob"));
    assert_eq!(USER.get(), "ada");
}

#[tokio::test]
async fn a_raw_task_can_set_inside_run() {
    let seen = tokio::spawn(async {
        let mut ctx = Context::new();
        ctx.run(|| USER.set("ada"));
        ctx.get(&USER)
    })
    .await
    .unwrap();
    assert_eq!(seen, "ada");
}

static LOCAL: ContextVar<u32> = ContextVar::new("LOCAL", || 0).back(false);

#[tokio::test]
async fn a_raw_task_can_join_a_child_with_a_plain_await() {
    // The raw task has no context to deliver into: a plain `.await` returns the output and
    // delivers nothing.
    let seen = tokio::spawn(async {
        let output = contextvars::spawn(async {
            LOCAL.set(1);
            USER.set("ada");
            2
        })
        .await
        .unwrap();
        (output, LOCAL.get(), USER.get())
    })
    .await
    .unwrap();
    assert_eq!(seen, (2, 0, "nobody"));
}

#[tokio::test]
async fn a_raw_task_that_merges_a_change_back_panics_and_names_the_fix() {
    let error =
        tokio::spawn(async { contextvars::spawn(async { USER.set("ada") }).merge_back().await.unwrap() })
            .await
            .unwrap_err();
    let message = panic_message(error);
    assert!(message.contains("`.merge_back()`"), "{message}");
    assert!(message.contains("contextvars::JoinSet"), "{message}");
    assert!(message.contains("Context::current().scope(..)"), "{message}");
}

#[tokio::test]
async fn a_propagate_back_function_in_a_raw_task_runs_in_its_copy_and_its_exit_panics() {
    // The function runs in a copy of the (empty) context it is called from, so it may set;
    // its changes have nowhere to land, and the exit says so, naming the variable and the
    // call (not a `set` of the caller's).
    let line = line!() + 2;
    let error = tokio::spawn(async {
        contextvars::propagate_back(None, || {
            USER.set("ada");
            assert_eq!(USER.get(), "ada");
        })
    })
    .await
    .unwrap_err();
    let message = panic_message(error);
    assert!(message.contains(&format!("`#[propagate(back)]` at {}:{line}:", file!())), "{message}");
    assert!(message.contains("the change to `USER` has nowhere to go"), "{message}");
    assert!(message.contains("contextvars::spawn"), "{message}");
    // One that changes nothing lands nothing, and does not panic.
    let seen = tokio::spawn(async { contextvars::propagate_back(None, || USER.get()) }).await.unwrap();
    assert_eq!(seen, "nobody");
}
