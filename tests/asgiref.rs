//! The context scenarios of Python's asgiref (`sync_to_async`, `async_to_sync`), with our
//! equivalents: `spawn_blocking(f).merge_back().await` for `sync_to_async(f)()` and
//! `block_on(fut)` for `async_to_sync(fut)()`.
//!
//! Where our semantics differ, the test says how and why. The scenarios about which thread
//! runs what (thread sensitivity) are not about contexts and are left out.

use contextvars::{Context, ContextVar, propagate_back};

static FOO: ContextVar<Option<&'static str>> = ContextVar::new("foo", || None);
static CONNECTION: ContextVar<u32> = ContextVar::new("connection", || 0);

/// Text that each side only appends to: the merge keeps the parent's text and adds what the
/// child appended since the fork.
#[allow(clippy::ptr_arg)] // `ContextVar<String>::merge` takes `fn(&String, &String, &String)`.
fn appended(base: &String, parent: &String, child: &String) -> String {
    let added = child.strip_prefix(base.as_str()).unwrap_or(child);
    format!("{parent}{added}")
}

static LOG: ContextVar<String> = ContextVar::new("log", String::new).merge(appended);
static LAST: ContextVar<String> = ContextVar::new("last", String::new);

fn sync_function() -> u32 {
    assert_eq!(FOO.get(), Some("bar"));
    FOO.set(Some("baz"));
    42
}

async fn async_function() -> u32 {
    tokio::task::yield_now().await;
    assert_eq!(FOO.get(), Some("bar"));
    FOO.set(Some("baz"));
    42
}

#[tokio::test]
async fn sync_to_async_contextvars() {
    FOO.set(Some("bar"));
    // asgiref copies every change back after every call. Here the caller chooses at the
    // join: `merge_back` brings all changes back...
    assert_eq!(contextvars::spawn_blocking(sync_function).merge_back().await.unwrap(), 42);
    assert_eq!(FOO.get(), Some("baz"));

    // ...while a plain await brings back only what `propagate_back` functions changed.
    FOO.set(Some("bar"));
    assert_eq!(contextvars::spawn_blocking(sync_function).await.unwrap(), 42);
    assert_eq!(FOO.get(), Some("bar"));
    let marked = || propagate_back(None, sync_function);
    assert_eq!(contextvars::spawn_blocking(marked).await.unwrap(), 42);
    assert_eq!(FOO.get(), Some("baz"));

    // Like asgiref, which copies the child's final values back, a plain await delivers the
    // final value of what a `propagate_back` function changed, not the value the function
    // left (the rules changed here: it used to deliver the function's value, already stale).
    let then_cleared = || {
        propagate_back(None, sync_function);
        FOO.set(None);
    };
    FOO.set(Some("bar"));
    contextvars::spawn_blocking(then_cleared).await.unwrap();
    assert_eq!(FOO.get(), None);
}

#[tokio::test]
async fn sync_to_async_calls_gathered_in_one_task_all_land() {
    // Under `asyncio.gather`, asgiref runs each call in a task of its own and the values they
    // copy back are lost. Here each `propagate_back` call gathered with `join!` works on its
    // own copy of the caller's context and merges into it when it completes (the rules changed
    // here: the calls used to share one context, and a merge function could not see them).
    async fn append() {
        contextvars::propagate_back_async(None, async {
            let before = LOG.get();
            tokio::task::yield_now().await;
            LOG.set(before + "1");
        })
        .await
    }
    LOG.set(String::new());
    tokio::join!(append(), append(), append());
    assert_eq!(LOG.get(), "111");
}

#[tokio::test]
async fn sync_to_async_contextvars_with_custom_context() {
    FOO.set(Some("bar"));
    // asgiref's `context=` argument: the function runs in the given context, which keeps
    // its changes, and the caller's context is left alone. Here the closure enters the
    // custom context with `run` and hands it back.
    let mut custom = Context::current();
    let (result, custom) = contextvars::spawn_blocking(move || {
        let result = custom.run(sync_function);
        (result, custom)
    })
    .merge_back()
    .await
    .unwrap();
    assert_eq!(result, 42);
    assert_eq!(FOO.get(), Some("bar"));
    assert_eq!(custom.get(&FOO), Some("baz"));
}

fn append_sync() -> u32 {
    LOG.set(LOG.get() + "1");
    LAST.set(LAST.get() + "1");
    1
}

async fn append_async() -> u32 {
    tokio::task::yield_now().await;
    append_sync()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_to_async_contextvars_with_custom_context_and_parallel_tasks() {
    LOG.set(String::new());
    // In asgiref the four calls share one context object and take turns in it. A context
    // here cannot be entered twice at once (`run` takes `&mut`), so each call gets a copy
    // of the custom context and is merged back into it: with a merge function the four
    // appends all land, whatever the order; without one the last child to finish wins.
    let custom = Context::current();
    let custom = custom
        .scope(async {
            let (a, b, c, d) = tokio::join!(
                contextvars::spawn_blocking(append_sync).merge_back(),
                contextvars::spawn_blocking(append_sync).merge_back(),
                contextvars::spawn(append_async()).merge_back(),
                contextvars::spawn(append_async()).merge_back(),
            );
            assert_eq!(a.unwrap() + b.unwrap() + c.unwrap() + d.unwrap(), 4);
            Context::current()
        })
        .await;
    // The caller's context is unchanged.
    assert_eq!((LOG.get(), LAST.get()), (String::new(), String::new()));
    // The custom context has every change.
    assert_eq!(custom.get(&LOG), "1111");
    assert_eq!(custom.get(&LAST), "1");
}

#[test]
fn async_to_sync_contextvars() {
    // Sync code with no async caller: `block_on` runs the future in this thread's context,
    // so its changes are simply there afterwards, as in asgiref.
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let _entered = runtime.enter();
    FOO.set(Some("bar"));
    assert_eq!(contextvars::block_on(async_function()), 42);
    assert_eq!(FOO.get(), Some("baz"));
}

#[tokio::test]
async fn async_to_sync_contextvars_inside_sync_to_async() {
    // Both directions at once: the async caller sees what the async function, called from
    // the sync one, set.
    FOO.set(Some("bar"));
    let result =
        contextvars::spawn_blocking(|| contextvars::block_on(async_function())).merge_back().await.unwrap();
    assert_eq!((result, FOO.get()), (42, Some("baz")));
}

#[test]
fn async_single_thread_context_success_share_context() {
    // Two `async_to_sync` calls from one sync caller share its context: the second sees
    // the first one's change.
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let _entered = runtime.enter();
    CONNECTION.set(0);
    let handler = || async { CONNECTION.set(CONNECTION.get() + 1) };
    contextvars::block_on(handler());
    contextvars::block_on(handler());
    assert_eq!(CONNECTION.get(), 2);
}

#[tokio::test]
async fn async_to_sync_in_async() {
    // asgiref raises a RuntimeError; we panic, with a message that says to `.await`.
    let error = contextvars::spawn(async { contextvars::block_on(async_function()) }).await.unwrap_err();
    assert!(error.is_panic());
}

#[test]
fn thread_sensitive_double_nested_sync() {
    // sync → async → sync → async → sync: a change at the bottom reaches the top sync
    // caller, because each sync-to-async boundary merges back.
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().unwrap();
    let _entered = runtime.enter();
    contextvars::block_on(async {
        contextvars::spawn_blocking(|| {
            contextvars::block_on(async {
                contextvars::spawn_blocking(|| CONNECTION.set(4)).merge_back().await.unwrap();
            })
        })
        .merge_back()
        .await
        .unwrap();
    });
    assert_eq!(CONNECTION.get(), 4);
}

#[tokio::test]
async fn thread_sensitive_double_nested_async() {
    // async → sync → async → sync → async, set at the bottom, seen at the top.
    contextvars::spawn_blocking(|| {
        contextvars::block_on(async {
            contextvars::spawn_blocking(|| contextvars::block_on(async { CONNECTION.set(4) }))
                .merge_back()
                .await
                .unwrap();
        })
    })
    .merge_back()
    .await
    .unwrap();
    assert_eq!(CONNECTION.get(), 4);
}

#[tokio::test]
async fn sync_to_async_changes_before_an_error_return_come_back() {
    // asgiref copies the context back in a `finally`, so even a function that raised
    // delivers its changes. A Rust function that fails by returning `Err` has returned
    // normally: its changes come back like any other.
    FOO.set(Some("bar"));
    let result: Result<u32, String> = contextvars::spawn_blocking(|| {
        FOO.set(Some("baz"));
        Err("failed".to_string())
    })
    .merge_back()
    .await
    .unwrap();
    assert_eq!(result, Err("failed".to_string()));
    assert_eq!(FOO.get(), Some("baz"));
}

#[tokio::test]
async fn sync_to_async_changes_before_a_panic_do_not_come_back() {
    // A difference: a panic is a bug, not a result, and the half-done changes of a
    // panicking child are dropped with it. The join reports the panic and the caller's
    // context is as before.
    FOO.set(Some("bar"));
    let error = contextvars::spawn_blocking(|| {
        propagate_back(None, || {
            FOO.set(Some("baz"));
            panic!("failed");
        })
    })
    .merge_back()
    .await
    .unwrap_err();
    assert!(error.is_panic());
    assert_eq!(FOO.get(), Some("bar"));
}

#[test]
fn async_to_sync_changes_before_a_panic_stay() {
    // `block_on` is no boundary: the future runs in the caller's own context, so what it
    // changed before panicking is already there when the caller catches the panic, as in
    // asgiref.
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let _entered = runtime.enter();
    FOO.set(Some("bar"));
    let caught = std::panic::catch_unwind(|| {
        contextvars::block_on(async {
            FOO.set(Some("baz"));
            panic!("failed");
        })
    });
    assert!(caught.is_err());
    assert_eq!(FOO.get(), Some("baz"));
}
