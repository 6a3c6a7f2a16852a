//! `#[propagate(back)]` and `#[propagate(none)]` on a sync `#[track_caller]` function: the
//! body runs inline (not in a closure), so that the caller's location still reaches it, and
//! every exit keeps the rules of the closure form: a return, an early `return` or a `?`
//! lands the changes, a panic lands nothing, `none` discards them.

use std::panic::{AssertUnwindSafe, Location, catch_unwind};

use contextvars::{context_var, propagate};

#[context_var]
static USER: Option<String>;

#[context_var]
static ROLE: &'static str = "guest";

#[context_var]
static VISITS: u32;

#[track_caller]
#[propagate(back)]
fn login(user: &str) -> &'static Location<'static> {
    USER.set(Some(user.into()));
    Location::caller()
}

#[track_caller]
#[propagate(back(USER))]
fn login_as_admin(user: &str) {
    USER.set(Some(user.into()));
    ROLE.set("admin");
}

#[track_caller]
#[propagate(back)]
fn parse_visits(raw: &str) -> Result<u32, std::num::ParseIntError> {
    USER.set(Some("parsing".into()));
    if raw.is_empty() {
        return Ok(0);
    }
    let visits = raw.parse()?;
    VISITS.set(visits);
    Ok(visits)
}

#[track_caller]
#[propagate(back)]
fn login_then_fail(user: &str) {
    USER.set(Some(user.into()));
    panic!("no visits for {user}");
}

#[track_caller]
#[propagate(none)]
fn dry_run(user: &str) -> (&'static Location<'static>, Option<String>) {
    USER.set(Some(user.into()));
    (Location::caller(), USER.get())
}

#[test]
fn the_caller_location_reaches_the_body() {
    let (line, location) = (line!(), login("ada"));
    assert_eq!((location.file(), location.line()), (file!(), line));
    let (line, (location, _)) = (line!(), dry_run("bob"));
    assert_eq!((location.file(), location.line()), (file!(), line));
}

/// A `#[track_caller]` helper, as `unwrap`, `expect` or a refused `set` are.
#[track_caller]
fn here() -> &'static Location<'static> {
    Location::caller()
}

#[track_caller]
#[propagate(back)]
fn located_by_a_helper() -> &'static Location<'static> {
    here()
}

#[test]
fn track_caller_calls_in_the_body_name_the_caller_too() {
    let (line, location) = (line!(), located_by_a_helper());
    assert_eq!((location.file(), location.line()), (file!(), line));
}

#[test]
fn changes_land_when_the_function_returns() {
    login("ada");
    assert_eq!(USER.get().as_deref(), Some("ada"));
    login_as_admin("root");
    assert_eq!((USER.get().as_deref(), ROLE.get()), (Some("root"), "guest"));
}

#[test]
fn an_early_return_or_a_question_mark_still_lands() {
    assert_eq!(parse_visits(""), Ok(0));
    assert_eq!((USER.get().as_deref(), VISITS.get()), (Some("parsing"), 0));
    USER.set(None);
    assert!(parse_visits("many").is_err());
    assert_eq!(USER.get().as_deref(), Some("parsing"));
    assert_eq!(parse_visits("3"), Ok(3));
    assert_eq!(VISITS.get(), 3);
}

#[test]
fn a_panic_lands_nothing() {
    USER.set(Some("caller".into()));
    assert!(catch_unwind(|| login_then_fail("eve")).is_err());
    assert_eq!(USER.get().as_deref(), Some("caller"));
}

#[test]
fn none_discards_the_changes() {
    USER.set(Some("caller".into()));
    let (_, inside) = dry_run("bob");
    assert_eq!(inside.as_deref(), Some("bob"));
    assert_eq!(USER.get().as_deref(), Some("caller"));
}

/// Calls `login` from its `Drop`, which runs while the test unwinds.
struct LogsInOnDrop(std::sync::mpsc::Sender<Option<String>>);

impl Drop for LogsInOnDrop {
    fn drop(&mut self) {
        login("from-drop");
        let _ = self.0.send(USER.get());
    }
}

#[test]
fn called_while_unwinding_it_still_lands_when_it_returns() {
    let (sender, seen) = std::sync::mpsc::channel();
    let result = catch_unwind(AssertUnwindSafe(|| {
        let _guard = LogsInOnDrop(sender);
        panic!("unwinding");
    }));
    assert!(result.is_err());
    assert_eq!(seen.recv().unwrap().as_deref(), Some("from-drop"));
}

/// A value whose `Clone` calls a `#[track_caller]` `#[propagate(back)]` function: it runs
/// while `get` holds the context, where no copy can be entered.
struct LogsInOnClone;

impl Clone for LogsInOnClone {
    fn clone(&self) -> LogsInOnClone {
        assert_eq!(peek_role(), "cloning");
        LogsInOnClone
    }
}

#[track_caller]
#[propagate(back)]
fn peek_role() -> &'static str {
    ROLE.get()
}

#[context_var]
static CLONED: Option<LogsInOnClone>;

#[test]
fn inside_a_clone_during_get_the_body_runs_in_place() {
    ROLE.set("cloning");
    CLONED.set(Some(LogsInOnClone));
    assert!(CLONED.get().is_some());
    assert_eq!(ROLE.get(), "cloning");
}

/// A value whose `Clone` calls a `#[track_caller]` `#[propagate(none)]` function.
struct DryRunsOnClone;

impl Clone for DryRunsOnClone {
    fn clone(&self) -> DryRunsOnClone {
        peek_role_dry();
        DryRunsOnClone
    }
}

#[track_caller]
#[propagate(none)]
fn peek_role_dry() -> &'static str {
    ROLE.get()
}

#[context_var]
static DRY_CLONED: Option<DryRunsOnClone>;

#[test]
fn none_inside_a_clone_during_get_panics_as_without_track_caller() {
    // No copy can be entered while `get` holds the context: as `Context::run` there (the
    // closure form), the call panics and says why, rather than run outside a copy.
    DRY_CLONED.set(Some(DryRunsOnClone));
    let payload = catch_unwind(|| DRY_CLONED.get()).map(drop).unwrap_err();
    let message = match payload.downcast::<String>() {
        Ok(message) => *message,
        Err(payload) => payload.downcast_ref::<&str>().map(|s| s.to_string()).unwrap_or_default(),
    };
    assert!(message.contains("`#[propagate(none)]` function) from inside the `Clone`"), "{message}");
    DRY_CLONED.set(None);
}

/// Sets `USER` when dropped: a temporary of a body's last expression.
struct SetsUserOnDrop;

impl SetsUserOnDrop {
    fn visits(&self) -> u32 {
        1
    }
}

impl Drop for SetsUserOnDrop {
    fn drop(&mut self) {
        USER.set(Some("temporary".into()));
    }
}

#[track_caller]
#[propagate(none)]
fn visits_through_a_temporary() -> u32 {
    SetsUserOnDrop.visits()
}

#[test]
fn the_temporaries_of_the_last_expression_are_dropped_in_the_copy() {
    // (In a crate of edition 2021 too: see the doctest of `TrackCallerEdition2021`.)
    USER.set(Some("caller".into()));
    assert_eq!(visits_through_a_temporary(), 1);
    assert_eq!(USER.get().as_deref(), Some("caller"));
}

#[tokio::test(flavor = "current_thread")]
async fn in_a_task_and_on_the_blocking_pool_its_changes_flow_back_through_a_plain_await() {
    // In a spawned task (a `Scope`): the copy is entered inside async code and lands in the
    // task's context, marked, so the plain `.await` delivers it.
    contextvars::spawn(async { login("in-task") }).await.unwrap();
    assert_eq!(USER.get().as_deref(), Some("in-task"));
    contextvars::spawn_blocking(|| login("on-pool")).await.unwrap();
    assert_eq!(USER.get().as_deref(), Some("on-pool"));
    // `none` sends nothing back, from either.
    contextvars::spawn_blocking(|| dry_run("dry")).await.unwrap();
    contextvars::spawn(async { dry_run("dry") }).await.unwrap();
    assert_eq!(USER.get().as_deref(), Some("on-pool"));
}

#[tokio::test(flavor = "current_thread")]
async fn in_a_plain_tokio_task_the_body_reads_defaults_and_a_landing_change_panics() {
    // A task without a context of its own: the copy starts from defaults, and the changes
    // have nowhere to land, as with the closure form.
    USER.set(Some("caller".into()));
    let joined = tokio::spawn(async { login("nowhere") }).await;
    assert!(joined.unwrap_err().is_panic());
    let (_, seen) = tokio::spawn(async { dry_run("inside") }).await.unwrap();
    assert_eq!(seen.as_deref(), Some("inside"), "the discarded copy is writable");
    assert_eq!(USER.get().as_deref(), Some("caller"));
}
