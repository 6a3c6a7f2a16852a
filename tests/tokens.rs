//! `set` returns a token; `reset(token)` restores what was there before, "not set" included,
//! and refuses tokens of another variable or another context without changing anything.

use contextvars::{Context, ContextVar, Error};

static USER: ContextVar<Option<String>> = ContextVar::new("USER", || None);
static LEVEL: ContextVar<u32> = ContextVar::new("LEVEL", || 10);
static OTHER: ContextVar<u32> = ContextVar::new("OTHER", || 0);

#[test]
fn reset_restores_not_set() {
    assert!(!LEVEL.is_set());
    let token = LEVEL.set(1);
    assert!(LEVEL.is_set());
    LEVEL.reset(token).unwrap();
    assert!(!LEVEL.is_set());
    assert_eq!(LEVEL.get(), 10);
}

#[test]
fn reset_restores_the_previous_value() {
    let _first = USER.set(Some("ada".into()));
    let second = USER.set(Some("bob".into()));
    assert_eq!(second.old_value(), Some(&Some("ada".to_string())));
    USER.reset(second).unwrap();
    assert_eq!(USER.get().as_deref(), Some("ada"));
    assert!(USER.is_set());
}

#[test]
fn resets_in_reverse_order_unwind_every_set() {
    let tokens: Vec<_> = (1..=5).map(|n| LEVEL.set(n)).collect();
    assert_eq!(LEVEL.get(), 5);
    for (n, token) in tokens.into_iter().enumerate().rev() {
        LEVEL.reset(token).unwrap();
        // After resetting the set of `n + 1`, the value is the one before it.
        let expected = if n == 0 { 10 } else { n as u32 };
        assert_eq!(LEVEL.get(), expected);
    }
    assert!(!LEVEL.is_set());
}

#[test]
fn reset_restores_a_value_shared_with_a_snapshot() {
    LEVEL.set(1);
    let snapshot = Context::current();
    let token = LEVEL.set(2);
    LEVEL.reset(token).unwrap();
    assert_eq!(LEVEL.get(), 1);
    assert_eq!(snapshot.get(&LEVEL), 1);
}

#[test]
fn token_of_another_variable_is_refused_and_changes_nothing() {
    let token = OTHER.set(1);
    LEVEL.set(2);
    let err = LEVEL.reset(token).unwrap_err();
    assert_eq!(err, Error::TokenFromOtherVar { token_var: "OTHER", var: "LEVEL" });
    let message = err.to_string();
    // The message says where the token belongs.
    assert!(message.contains("`OTHER.reset()`"), "{message}");
    assert_eq!((OTHER.get(), LEVEL.get()), (1, 2));
}

#[test]
fn token_of_another_variable_with_the_same_name_is_refused() {
    static A: ContextVar<u32> = ContextVar::new("twin", || 0);
    static B: ContextVar<u32> = ContextVar::new("twin", || 0);
    let token = A.set(1);
    assert!(matches!(B.reset(token), Err(Error::TokenFromOtherVar { .. })));
    assert_eq!((A.get(), B.get()), (1, 0));
}

fn assert_other_context(err: Error, var: &str) {
    assert_eq!(err, Error::TokenFromOtherContext { var: "LEVEL" });
    let message = err.to_string();
    assert!(message.contains(var), "{message}");
    // It says what to do: reset where `set` was called.
    assert!(message.contains("that called `set`"), "{message}");
}

#[test]
fn token_from_a_run_is_refused_outside_it() {
    LEVEL.set(1);
    let mut ctx = Context::new();
    let token = ctx.run(|| LEVEL.set(2));
    assert_other_context(LEVEL.reset(token).unwrap_err(), "LEVEL");
    assert_eq!((LEVEL.get(), ctx.get(&LEVEL)), (1, 2));
}

#[test]
fn token_of_the_thread_is_refused_inside_a_run() {
    let token = LEVEL.set(1);
    let mut ctx = Context::current();
    let err = ctx.run(|| {
        let err = LEVEL.reset(token).unwrap_err();
        assert_eq!(LEVEL.get(), 1);
        err
    });
    assert_other_context(err, "LEVEL");
    assert_eq!(LEVEL.get(), 1);
}

#[test]
fn token_is_accepted_by_a_later_run_of_the_same_context() {
    let mut ctx = Context::new();
    let token = ctx.run(|| LEVEL.set(2));
    ctx.run(|| LEVEL.reset(token)).unwrap();
    assert!(!ctx.contains(&LEVEL));
}

#[test]
fn token_is_refused_by_a_clone_of_its_context() {
    let mut ctx = Context::new();
    let token = ctx.run(|| LEVEL.set(2));
    let mut copy = ctx.clone();
    let err = copy.run(|| LEVEL.reset(token)).unwrap_err();
    assert_other_context(err, "LEVEL");
    assert_eq!(copy.get(&LEVEL), 2);
}

#[test]
fn token_from_another_thread_is_refused() {
    LEVEL.set(1);
    let token = std::thread::spawn(|| LEVEL.set(2)).join().unwrap();
    assert_other_context(LEVEL.reset(token).unwrap_err(), "LEVEL");
    assert_eq!(LEVEL.get(), 1);
}

#[tokio::test]
async fn token_from_a_spawned_task_is_refused_by_the_parent() {
    LEVEL.set(1);
    let token = contextvars::spawn(async { LEVEL.set(2) }).await.unwrap();
    assert_other_context(LEVEL.reset(token).unwrap_err(), "LEVEL");
    assert_eq!(LEVEL.get(), 1);
}

#[tokio::test]
async fn token_survives_an_await_inside_one_task() {
    let seen = contextvars::spawn(async {
        let token = LEVEL.set(3);
        tokio::task::yield_now().await;
        LEVEL.reset(token).unwrap();
        LEVEL.is_set()
    })
    .await
    .unwrap();
    assert!(!seen);
}
