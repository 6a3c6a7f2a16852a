//! Every thread has a current context; `Context::run` enters another one for a closure;
//! `Context::current` is a snapshot.

use std::panic::{AssertUnwindSafe, catch_unwind};

use contextvars::{Context, ContextVar};

static USER: ContextVar<Option<String>> = ContextVar::new("USER", || None);
static HITS: ContextVar<u32> = ContextVar::new("HITS", || 0);

#[test]
fn each_thread_has_its_own_current_context() {
    HITS.set(1);
    let other = std::thread::spawn(|| {
        // A new thread starts empty: nothing of the spawner's context.
        let before = HITS.get();
        HITS.set(2);
        (before, HITS.get())
    })
    .join()
    .unwrap();
    assert_eq!(other, (0, 2));
    // And what the other thread set stayed there.
    assert_eq!(HITS.get(), 1);
}

#[test]
fn run_enters_the_context_and_keeps_its_changes() {
    USER.set(Some("thread".into()));
    let mut ctx = Context::new();
    ctx.run(|| {
        // Inside, the entered context is current: not the thread's.
        assert_eq!(USER.get(), None);
        USER.set(Some("ada".into()));
        assert_eq!(USER.get().as_deref(), Some("ada"));
    });
    assert_eq!(ctx.get(&USER).as_deref(), Some("ada"));
    assert_eq!(USER.get().as_deref(), Some("thread"));

    // Entering it again continues from where the last run left it.
    ctx.run(|| {
        assert_eq!(USER.get().as_deref(), Some("ada"));
        HITS.set(HITS.get() + 1);
    });
    ctx.run(|| HITS.set(HITS.get() + 1));
    assert_eq!(ctx.get(&HITS), 2);
    assert_eq!(HITS.get(), 0);
}

#[test]
fn run_returns_the_closures_value() {
    let mut ctx = Context::new();
    let seen = ctx.run(|| {
        HITS.set(9);
        HITS.get() * 2
    });
    assert_eq!(seen, 18);
}

#[test]
fn nested_runs_restore_each_outer_context() {
    let mut outer = Context::new();
    let mut inner = Context::new();
    outer.run(|| {
        HITS.set(1);
        inner.run(|| {
            assert_eq!(HITS.get(), 0);
            HITS.set(2);
        });
        assert_eq!(HITS.get(), 1);
    });
    assert_eq!((outer.get(&HITS), inner.get(&HITS), HITS.get()), (1, 2, 0));
}

#[test]
fn a_panic_in_run_restores_the_threads_context() {
    HITS.set(5);
    let mut ctx = Context::new();
    let result = catch_unwind(AssertUnwindSafe(|| {
        ctx.run(|| {
            HITS.set(6);
            panic!("boom");
        })
    }));
    assert!(result.is_err());
    assert_eq!(HITS.get(), 5);
    // The context keeps what was set before the panic: `run` stores its state back on
    // every exit.
    assert_eq!(ctx.get(&HITS), 6);
    // And the thread can still enter contexts normally afterwards.
    ctx.run(|| assert_eq!(HITS.get(), 6));
}

#[test]
fn current_is_a_snapshot() {
    USER.set(Some("ada".into()));
    let snapshot = Context::current();
    USER.set(Some("bob".into()));
    HITS.set(3);
    assert_eq!(snapshot.get(&USER).as_deref(), Some("ada"));
    assert_eq!(snapshot.get(&HITS), 0);
    assert!(!snapshot.contains(&HITS));
    assert_eq!(USER.get().as_deref(), Some("bob"));
}

#[test]
fn current_inside_run_is_the_entered_context() {
    HITS.set(1);
    let mut ctx = Context::new();
    let inside = ctx.run(|| {
        HITS.set(2);
        Context::current()
    });
    assert_eq!(inside.get(&HITS), 2);
}

#[test]
fn running_a_snapshot_does_not_change_the_original() {
    HITS.set(1);
    let original = Context::current();
    let mut copy = original.clone();
    copy.run(|| HITS.set(2));
    assert_eq!((original.get(&HITS), copy.get(&HITS), HITS.get()), (1, 2, 1));
}

#[test]
fn new_context_is_empty_and_default_valued() {
    HITS.set(4);
    let empty = Context::new();
    assert!(empty.is_empty());
    assert_eq!(empty.get(&HITS), 0);
    assert!(Context::default().is_empty());
    assert!(!Context::current().is_empty());
}

#[test]
fn debug_lists_the_variables_that_are_set() {
    let mut ctx = Context::new();
    ctx.run(|| {
        HITS.set(1);
    });
    let debug = format!("{ctx:?}");
    assert!(debug.contains("HITS"), "{debug}");
    assert!(!debug.contains("USER"), "{debug}");
}

#[tokio::test]
async fn debug_lists_a_value_delivered_by_a_plain_await_once() {
    // The awaiting context marks the delivered variable (so that it flows further up); the
    // mark is no value of its own.
    contextvars::spawn(async { contextvars::propagate_back(None, || HITS.set(1)) }).await.unwrap();
    assert_eq!(HITS.get(), 1);
    assert_eq!(format!("{:?}", Context::current()), r#"Context { set: ["HITS"] }"#);
}

// ---------------------------------------------------------------------------------------
// A context as a read-only mapping of variables, like Python's.

static ID: ContextVar<u64> = ContextVar::new("ID", || 0);
static WIDE: [ContextVar<u8>; 40] = [const { ContextVar::new("wide", || 0) }; 40];

fn names(ctx: &Context) -> Vec<&'static str> {
    let mut names: Vec<_> = ctx.vars().map(|var| var.var_name()).collect();
    names.sort_unstable();
    names
}

#[test]
fn len_vars_and_contains_follow_sets_and_resets() {
    let mut ctx = Context::new();
    assert_eq!((ctx.len(), ctx.vars().count()), (0, 0));
    let token = ctx.run(|| {
        USER.set(Some("ada".into()));
        HITS.set(0) // set to its default is still set
    });
    assert_eq!(ctx.len(), 2);
    assert_eq!(names(&ctx), ["HITS", "USER"]);
    assert!(ctx.contains(&USER) && ctx.contains(&HITS) && !ctx.contains(&ID));

    // What `vars` yields is what `contains` accepts, whatever the variable's type.
    assert!(ctx.vars().all(|var| ctx.contains(var)));

    // A reset to "not set" takes the variable out; a snapshot taken before keeps it.
    let before = ctx.clone();
    ctx.run(|| HITS.reset(token)).unwrap();
    assert_eq!((ctx.len(), names(&ctx)), (1, vec!["USER"]));
    assert!(!ctx.contains(&HITS));
    assert_eq!((before.len(), names(&before)), (2, vec!["HITS", "USER"]));
}

#[test]
fn vars_lists_every_variable_of_a_deep_map_once() {
    let mut ctx = Context::new();
    ctx.run(|| {
        for (n, var) in WIDE.iter().enumerate().filter(|(n, _)| n % 3 == 0) {
            var.set(n as u8);
        }
    });
    assert_eq!(ctx.len(), 14);
    let mut keys: Vec<*const ()> = ctx.vars().map(|var| var as *const _ as *const ()).collect();
    let expected: Vec<*const ()> = WIDE.iter().step_by(3).map(|var| var as *const _ as *const ()).collect();
    keys.sort_unstable();
    let mut sorted = expected.clone();
    sorted.sort_unstable();
    assert_eq!(keys, sorted, "each set variable once, no other");
    assert!(WIDE.iter().enumerate().all(|(n, var)| ctx.contains(var) == (n % 3 == 0)));
}

#[contextvars::propagate(back)]
async fn sets_id() {
    ID.set(7);
}

#[tokio::test]
async fn what_propagate_back_keeps_for_the_joins_is_no_variable() {
    // A plain await of a `#[propagate(back)]` function's task delivers its change, and the
    // awaiting context keeps what arrived so that it flows further up: not a variable.
    let ctx = Context::new()
        .scope(async {
            contextvars::spawn(sets_id()).await.unwrap();
            Context::current()
        })
        .await;
    assert_eq!(ctx.get(&ID), 7);
    assert_eq!((ctx.len(), names(&ctx)), (1, vec!["ID"]));
    assert!(!ctx.is_empty());
    assert_eq!(format!("{ctx:?}"), r#"Context { set: ["ID"] }"#);
}
