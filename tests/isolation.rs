//! Isolation under load: many concurrent tasks on a multi-thread runtime, each crossing
//! awaits, yields, child tasks, `spawn_blocking` and `block_on`, each see only their own
//! values.

mod support;

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use contextvars::ContextVar;
use support::{LibraryPanic, library_panics, record_library_panics};
use tokio::sync::Barrier;

const TASKS: u64 = 10_000;

static ID: ContextVar<u64> = ContextVar::new("ID", || u64::MAX);
static NAME: ContextVar<String> = ContextVar::new("NAME", String::new);
static CHILD: ContextVar<u64> = ContextVar::new("CHILD", || 0);
static DEEP: ContextVar<u64> = ContextVar::new("DEEP", || 0);
static SHARED: ContextVar<&'static str> = ContextVar::new("SHARED", || "unset");

/// One task's life; panics as soon as it sees a value that is not its own.
async fn one_task(id: u64, all_set: Arc<Barrier>) -> u64 {
    assert_eq!((ID.get(), SHARED.get()), (u64::MAX, "parent"));
    ID.set(id);
    NAME.set(format!("task-{id}"));
    // Every task holds its values at once before any goes on.
    all_set.wait().await;
    assert_eq!(ID.get(), id);
    tokio::task::yield_now().await;
    assert_eq!(NAME.get(), format!("task-{id}"));

    contextvars::spawn(async move {
        assert_eq!(ID.get(), id);
        tokio::task::yield_now().await;
        CHILD.set(id * 2);
    })
    .merge_back()
    .await
    .unwrap();
    assert_eq!((ID.get(), CHILD.get()), (id, id * 2));

    contextvars::spawn_blocking(move || {
        assert_eq!(ID.get(), id);
        contextvars::block_on(async move {
            tokio::task::yield_now().await;
            assert_eq!((ID.get(), CHILD.get()), (id, id * 2));
            DEEP.set(id + 1);
        });
        assert_eq!(DEEP.get(), id + 1);
    })
    .merge_back()
    .await
    .unwrap();
    tokio::task::yield_now().await;
    assert_eq!((ID.get(), NAME.get(), CHILD.get(), DEEP.get()), (id, format!("task-{id}"), id * 2, id + 1));
    ID.get()
}

#[test]
fn ten_thousand_tasks_each_see_only_their_own_values() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(4)
        .build()
        .unwrap();
    runtime.block_on(async {
        SHARED.set("parent");
        let all_set = Arc::new(Barrier::new(TASKS as usize));
        let handles: Vec<_> =
            (0..TASKS).map(|id| contextvars::spawn(one_task(id, all_set.clone()))).collect();
        for (id, handle) in handles.into_iter().enumerate() {
            assert_eq!(handle.await.unwrap(), id as u64);
        }
        // Plain awaits: nothing of the tasks came back.
        assert_eq!((ID.get(), CHILD.get(), DEEP.get(), SHARED.get()), (u64::MAX, 0, 0, "parent"));
    });
}

// ---------------------------------------------------------------------------------------
// A context belongs to the code that entered it: a plain tokio task polled while a context
// is entered on the thread has none.

static USER: ContextVar<&'static str> = ContextVar::new("USER", || "nobody");

/// What a plain `tokio::spawn` task saw, and what became of its `set`.
async fn plain_task_reads_and_sets() -> (&'static str, Result<(), String>) {
    let seen = USER.get();
    let set = std::panic::catch_unwind(|| {
        USER.set("intruder");
    })
    .map_err(panic_message);
    (seen, set)
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(message) => *message,
        Err(payload) => payload.downcast_ref::<&str>().map(|s| s.to_string()).unwrap_or_default(),
    }
}

fn assert_no_context(outcome: (&'static str, Result<(), String>)) {
    let (seen, set) = outcome;
    assert_eq!(seen, "nobody", "a plain task read the entered context");
    let message = set.expect_err("a plain task's `set` must panic");
    assert!(message.contains("no context of its own"), "{message}");
}

#[test]
fn plain_tasks_of_a_runtime_driven_inside_context_run_have_no_context() {
    record_library_panics();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let mut ctx = contextvars::Context::new();
    ctx.run(|| {
        USER.set("outer");
        runtime.block_on(async {
            // The body of `block_on` is no task: it runs in the entered context.
            assert_eq!(USER.get(), "outer");
            let a = tokio::spawn(plain_task_reads_and_sets()).await.unwrap();
            let b = tokio::spawn(async { USER.get() }).await.unwrap();
            assert_no_context(a);
            assert_eq!(b, "nobody", "task B saw task A's value");
        });
    });
    assert_eq!(ctx.get(&USER), "outer", "nothing landed in the enclosing context");
}

/// A value whose `Clone` must not run: it reads and sets variables, and panics.
#[derive(Debug)]
struct NotForOthers;

impl Clone for NotForOthers {
    fn clone(&self) -> NotForOthers {
        USER.get();
        USER.set("clone");
        panic!("a stored value was cloned for a task that does not own its context")
    }
}

static NOT_FOR_OTHERS: ContextVar<Option<NotForOthers>> = ContextVar::new("NOT_FOR_OTHERS", || None);

#[test]
fn a_stored_values_clone_never_runs_for_a_task_that_does_not_own_the_context() {
    // `get` finds the value in the entered context before it asks which task runs: the
    // answer must come before the `Clone`, which belongs to the context's owner alone.
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let mut ctx = contextvars::Context::new();
    ctx.run(|| {
        NOT_FOR_OTHERS.set(Some(NotForOthers));
        let scope = contextvars::Context::current().scope(async {
            let local = tokio::task::LocalSet::new();
            local
                .run_until(async { tokio::task::spawn_local(async { NOT_FOR_OTHERS.get().is_none() }).await })
                .await
        });
        let seen = runtime.block_on(async {
            let plain = tokio::spawn(async { NOT_FOR_OTHERS.get().is_none() }).await.unwrap();
            (plain, scope.await.unwrap())
        });
        assert_eq!(seen, (true, true), "a task that does not own the context read the default");
    });
}

#[test]
fn local_set_tasks_run_inside_a_scope_have_no_context() {
    record_library_panics();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let scope = contextvars::Context::new().scope(async {
        USER.set("scope");
        let local = tokio::task::LocalSet::new();
        let outcome = local
            .run_until(async {
                assert_eq!(USER.get(), "scope", "`run_until`'s own future is the scope's");
                tokio::task::spawn_local(plain_task_reads_and_sets()).await.unwrap()
            })
            .await;
        assert_no_context(outcome);
        USER.get()
    });
    assert_eq!(runtime.block_on(scope), "scope");
}

#[test]
fn a_scope_inside_a_plain_task_owns_its_context_again() {
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let mut ctx = contextvars::Context::new();
    ctx.run(|| {
        USER.set("outer");
        runtime.block_on(async {
            let inner = tokio::spawn(contextvars::Context::current().scope(async {
                USER.set("inner");
                tokio::task::yield_now().await;
                USER.get()
            }));
            assert_eq!(inner.await.unwrap(), "inner");
            assert_eq!(USER.get(), "outer");
        });
    });
}

// ---------------------------------------------------------------------------------------
// Joins in a task without a context.

static BACK: ContextVar<u32> = ContextVar::new("BACK", || 0);

#[contextvars::propagate(back)]
async fn records_a_change() -> u32 {
    BACK.set(7);
    7
}

#[test]
fn a_plain_await_in_a_task_without_a_context_returns_the_output_and_delivers_nothing() {
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    runtime.block_on(async {
        let handle = contextvars::spawn(records_a_change());
        let output = tokio::spawn(async move { (handle.await.unwrap(), BACK.get()) }).await.unwrap();
        assert_eq!(output, (7, 0));
        assert_eq!(BACK.get(), 0);
    });
}

#[test]
fn merge_back_in_a_task_without_a_context_panics_naming_the_fix() {
    record_library_panics();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    runtime.block_on(async {
        // Called there: panics at the call.
        let error = tokio::spawn(async { contextvars::spawn(records_a_change()).merge_back().await })
            .await
            .unwrap_err();
        let message = panic_message(error.into_panic());
        assert!(message.contains("contextvars::JoinSet") && message.contains(".scope(..)"), "{message}");

        // Called in a context, polled by a `tokio::task::JoinSet`: panics at the poll, and
        // the message names the call.
        let mut set = tokio::task::JoinSet::new();
        let line = line!() + 1;
        set.spawn(contextvars::spawn(records_a_change()).merge_back());
        let message = panic_message(set.join_next().await.unwrap().unwrap_err().into_panic());
        assert!(message.contains(&format!("{}:{line}", file!())), "{message}");
        assert!(message.contains("contextvars::JoinSet"), "{message}");
        assert_eq!(BACK.get(), 0);
    });
}

// ---------------------------------------------------------------------------------------
// Misuse panics point at the user's line.

#[test]
fn a_set_without_a_context_panics_at_the_callers_line_naming_the_layer() {
    record_library_panics();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let lines = runtime.block_on(async {
        tokio::spawn(async {
            let set_line = line!() + 1;
            let set = std::panic::catch_unwind(|| USER.set("x"));
            let changes = contextvars::Changes::between(&before(), &after());
            let apply_line = line!() + 1;
            let apply = std::panic::catch_unwind(AssertUnwindSafe(|| changes.apply()));
            assert!(set.is_err() && apply.is_err());
            (set_line, apply_line)
        })
        .await
        .unwrap()
    });
    let panics = library_panics();
    for line in [lines.0, lines.1] {
        let LibraryPanic { message, .. } = panics
            .iter()
            .find(|panic| panic.file == file!() && panic.line == line)
            .unwrap_or_else(|| panic!("no panic reported at {}:{line}: {panics:?}", file!()));
        assert!(message.contains("`contextvars::tower::ContextLayer`"), "{message}");
        assert!(message.contains("middleware placed outside it"), "{message}");
    }
}

fn before() -> contextvars::Context {
    contextvars::Context::new()
}

fn after() -> contextvars::Context {
    let mut ctx = contextvars::Context::new();
    ctx.run(|| USER.set("changed"));
    ctx
}

/// Code a task runs inside `block_in_place(|| Handle::block_on(..))` or a foreign
/// `block_on` is still that task's code: it reads and writes the task's context.
#[test]
fn a_tasks_own_nested_block_on_keeps_its_context() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    let (in_place, foreign) = runtime.block_on(async {
        contextvars::spawn(async {
            USER.set("ada");
            let in_place = tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(async {
                    let seen = USER.get();
                    USER.set("bob");
                    seen
                })
            });
            let foreign = futures::executor::block_on(async { USER.get() });
            (in_place, foreign)
        })
        .await
        .unwrap()
    });
    assert_eq!((in_place, foreign), ("ada", "bob"));
}

/// A `Scope` polled by one plain task, then moved to another and finished there, keeps
/// its context across the move.
#[test]
fn a_scope_moved_between_plain_tasks_keeps_its_context() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    let seen = runtime.block_on(async {
        let (resume, resumed) = tokio::sync::oneshot::channel::<()>();
        let mut scope = Box::pin(contextvars::Context::new().scope(async move {
            USER.set("ada");
            resumed.await.unwrap();
            USER.get()
        }));
        // Handed back in a tuple: the first task's output is the moved scope, not awaited.
        let (scope,) = tokio::spawn(async move {
            assert!(futures::poll!(scope.as_mut()).is_pending());
            (scope,)
        })
        .await
        .unwrap();
        resume.send(()).unwrap();
        tokio::spawn(scope).await.unwrap()
    });
    assert_eq!(seen, "ada");
}
