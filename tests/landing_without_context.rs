//! A `#[propagate(back)]` function called by code without a context of its own (here a plain
//! `tokio::spawn` task) works on its own copy, and its changes have nowhere to land: the
//! landing panics, naming the likely cause and the fix. A sync form panics at the user's
//! line (the attribute, or the hand-written `propagate_back` call); the forms that land
//! where no caller's location reaches (an async function's last poll, the guard of a
//! `#[track_caller]` function) name that line in the message. A function whose changes do
//! not land changes nothing there and does not panic. So do a thread's and a `Fork`'s
//! `merge_back`; a `set` from a `Drop` while the task unwinds is discarded, not a second
//! panic that would abort the process.

mod support;

use std::future::Future;

use contextvars::{context_var, propagate, propagate_back, propagate_back_async};
use support::{LibraryPanic, library_panics, record_library_panics};

#[context_var]
static USER: Option<String>;

#[context_var]
static ROLE: &'static str = "guest";

#[context_var(back = false)]
static SCRATCH: u32;

#[context_var]
static A: u32;
#[context_var]
static B: u32;
#[context_var]
static C: u32;
#[context_var]
static D: u32;

const LOG_IN_AT: u32 = line!() + 1;
#[propagate(back)]
fn log_in(user: &str) {
    USER.set(Some(user.into()));
}

/// Five changes: more than the few that land in one step.
const COUNT_ALL_AT: u32 = line!() + 1;
#[propagate(back)]
fn count_all() {
    for (n, var) in [&A, &B, &C, &D].into_iter().enumerate() {
        var.set(n as u32 + 1);
    }
    ROLE.set("counter");
}

/// `ROLE` is not listed: what lands is chosen change by change.
const LOG_IN_USER_ONLY_AT: u32 = line!() + 1;
#[propagate(back(USER))]
fn log_in_user_only(user: &str) {
    USER.set(Some(user.into()));
    ROLE.set("admin");
}

const BY_HAND_AT: u32 = line!() + 2;
fn log_in_by_hand(user: &str) {
    propagate_back(None, || {
        USER.set(Some(user.into()));
    })
}

#[track_caller]
#[propagate(back)]
fn tracked_log_in(user: &str) {
    USER.set(Some(user.into()));
}

const LOG_IN_LATER_AT: u32 = line!() + 1;
#[propagate(back)]
async fn log_in_later(user: &'static str) {
    tokio::task::yield_now().await;
    USER.set(Some(user.into()));
}

const LOG_IN_LATER_BY_HAND_AT: u32 = line!() + 2;
async fn log_in_later_by_hand(user: &'static str) {
    propagate_back_async(None, async move {
        tokio::task::yield_now().await;
        USER.set(Some(user.into()));
    })
    .await
}

/// Runs `task` as a plain `tokio::spawn` task, which has no context of its own, and gives
/// the panics of the library it reported (it ran on this thread) and its output if it did
/// not panic.
fn in_a_plain_task<F>(task: impl FnOnce() -> F) -> (Vec<LibraryPanic>, Option<F::Output>)
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    record_library_panics();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let joined = runtime.block_on(async { tokio::spawn(task()).await });
    let output = match joined {
        Ok(output) => Some(output),
        Err(error) => {
            assert!(error.is_panic(), "{error}");
            None
        }
    };
    (library_panics(), output)
}

/// The one panic that `task`, run in a plain task, reported.
fn landing_panic<F>(task: impl FnOnce() -> F) -> LibraryPanic
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (mut panics, output) = in_a_plain_task(task);
    assert!(output.is_none(), "the task did not panic");
    assert_eq!(panics.len(), 1, "{panics:?}");
    panics.remove(0)
}

/// The panic was reported at `line` of this file.
fn assert_reported_at(panic: &LibraryPanic, line: u32) {
    assert_eq!((panic.file.as_str(), panic.line), (file!(), line), "{panic:?}");
}

/// The message names this file's `line`, one of the variables that land (`vars`), the
/// likely cause and the fix.
fn assert_names_line_cause_and_fix(panic: &LibraryPanic, line: u32, vars: &[&str]) {
    let message = &panic.message;
    let named = vars.iter().any(|var| message.contains(&format!("the change to `{var}`")));
    assert!(named, "none of {vars:?} named in {message:?}");
    for expected in [
        format!("`#[propagate(back)]` at {}:{line}:", file!()),
        "a tokio task that has no context of its own".to_owned(),
        "`contextvars::tower::ContextLayer`, or a middleware placed outside it".to_owned(),
        "`contextvars::spawn(fut)` instead of `tokio::spawn(fut)`".to_owned(),
        "`tokio::spawn(contextvars::Context::current().scope(fut))`".to_owned(),
    ] {
        assert!(message.contains(&expected), "{expected:?} not in {message:?}");
    }
}

#[test]
fn a_sync_function_panics_at_its_attribute() {
    let panic = landing_panic(|| async { log_in("ada") });
    assert_reported_at(&panic, LOG_IN_AT);
    assert_names_line_cause_and_fix(&panic, LOG_IN_AT, &["USER"]);
}

#[test]
fn a_sync_function_with_many_changes_panics_at_its_attribute() {
    let panic = landing_panic(|| async { count_all() });
    assert_reported_at(&panic, COUNT_ALL_AT);
    assert_names_line_cause_and_fix(&panic, COUNT_ALL_AT, &["A", "B", "C", "D", "ROLE"]);
}

#[test]
fn a_sync_function_with_a_list_panics_at_its_attribute_naming_a_listed_variable() {
    let panic = landing_panic(|| async { log_in_user_only("ada") });
    assert_reported_at(&panic, LOG_IN_USER_ONLY_AT);
    assert_names_line_cause_and_fix(&panic, LOG_IN_USER_ONLY_AT, &["USER"]);
}

#[test]
fn propagate_back_by_hand_panics_at_its_call() {
    let panic = landing_panic(|| async { log_in_by_hand("ada") });
    assert_reported_at(&panic, BY_HAND_AT);
    assert_names_line_cause_and_fix(&panic, BY_HAND_AT, &["USER"]);
}

#[test]
fn a_track_caller_function_names_its_callers_line() {
    // The changes land when the guard in the function is dropped: the panic is reported
    // there, and the message names the line that called the function.
    let line = line!() + 1;
    let panic = landing_panic(|| async { tracked_log_in("ada") });
    assert_names_line_cause_and_fix(&panic, line, &["USER"]);
}

#[test]
fn an_async_function_names_its_attribute() {
    // The changes land in the last poll, which no caller's location reaches.
    let panic = landing_panic(|| log_in_later("ada"));
    assert_names_line_cause_and_fix(&panic, LOG_IN_LATER_AT, &["USER"]);
}

#[test]
fn propagate_back_async_by_hand_names_its_call() {
    let panic = landing_panic(|| log_in_later_by_hand("ada"));
    assert_names_line_cause_and_fix(&panic, LOG_IN_LATER_BY_HAND_AT, &["USER"]);
}

#[propagate(back)]
fn only_scratch() -> u32 {
    SCRATCH.set(1);
    SCRATCH.get()
}

#[propagate(back(USER))]
fn only_unlisted() -> &'static str {
    ROLE.set("admin");
    ROLE.get()
}

#[track_caller]
#[propagate(back)]
fn tracked_only_scratch() -> u32 {
    SCRATCH.set(2);
    SCRATCH.get()
}

#[propagate(back)]
async fn reads_only() -> Option<String> {
    tokio::task::yield_now().await;
    USER.get()
}

#[test]
fn a_function_whose_changes_do_not_land_returns_normally() {
    let (panics, output) = in_a_plain_task(|| async {
        (
            only_scratch(),
            only_unlisted(),
            tracked_only_scratch(),
            reads_only().await,
            SCRATCH.get(),
            ROLE.get(),
        )
    });
    assert!(panics.is_empty(), "{panics:?}");
    // Each worked on its own copy (from defaults), and nothing came back.
    assert_eq!(output, Some((1, "admin", 2, None, 0, "guest")));
}

/// Logs in when dropped.
struct LogsInOnDrop;

impl Drop for LogsInOnDrop {
    fn drop(&mut self) {
        log_in("dropped");
    }
}

#[test]
fn called_from_a_drop_while_unwinding_it_lands_nothing_rather_than_abort() {
    // A second panic while the thread unwinds would abort the process.
    let (panics, output) = in_a_plain_task(|| async {
        let unwound = std::panic::catch_unwind(|| {
            let _guard = LogsInOnDrop;
            panic!("contextvars: test: unwinding");
        });
        (unwound.is_err(), USER.get())
    });
    assert_eq!(output, Some((true, None)));
    assert_eq!(panics.len(), 1, "only the test's own panic: {panics:?}");
}

/// Sets `USER` when dropped.
struct SetsOnDrop;

impl Drop for SetsOnDrop {
    fn drop(&mut self) {
        USER.set(Some("dropped".into()));
    }
}

#[test]
fn a_set_from_a_drop_while_unwinding_is_discarded_rather_than_abort() {
    // The same `set` outside unwinding panics (`tokio_tasks.rs`); here a second panic would
    // abort the process. The task's own panic is what its join reports.
    let (panics, output) = in_a_plain_task(|| async {
        let _guard = SetsOnDrop;
        panic!("contextvars: test: unwinding");
    });
    assert_eq!(output, None);
    assert_eq!(panics.len(), 1, "only the test's own panic: {panics:?}");
    assert_eq!(panics[0].message, "contextvars: test: unwinding");
    let (panics, output) = in_a_plain_task(|| async { USER.get() });
    assert!(panics.is_empty(), "{panics:?}");
    assert_eq!(output, Some(None), "nothing was written anywhere");
}

#[test]
fn inside_a_context_a_drop_while_unwinding_still_sets_and_lands() {
    // Only a write that would be refused is discarded while unwinding: in a task with a
    // context of its own, a `Drop` the unwinding runs sets and lands as anywhere else.
    record_library_panics();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let seen = runtime.block_on(async {
        contextvars::spawn(async {
            let set = std::panic::catch_unwind(|| {
                let _guard = SetsOnDrop;
                panic!("contextvars: test: unwinding");
            });
            let set_value = USER.get();
            USER.set(None);
            let landed = std::panic::catch_unwind(|| {
                let _guard = LogsInOnDrop;
                panic!("contextvars: test: unwinding");
            });
            (set.is_err(), set_value, landed.is_err(), USER.get())
        })
        .await
        .unwrap()
    });
    let dropped = Some("dropped".to_owned());
    assert_eq!(seen, (true, dropped.clone(), true, dropped));
    assert_eq!(library_panics().len(), 2, "only the test's own panics");
}

#[test]
fn a_threads_merge_back_panics_at_its_call_and_its_join_delivers_nothing() {
    let line = line!() + 3;
    let panic = landing_panic(|| async {
        let thread = contextvars::thread::spawn(|| USER.set(Some("ada".into())));
        thread.merge_back()
    });
    assert_reported_at(&panic, line);
    let message = &panic.message;
    for expected in [
        "a `merge_back` join in a tokio task that has no context of its own",
        "the child's change to `USER`",
        "`contextvars::spawn(fut)` instead of `tokio::spawn(fut)`",
    ] {
        assert!(message.contains(expected), "{expected:?} not in {message:?}");
    }

    // A plain join asked for marked changes only, and delivers nothing, without a panic.
    let (panics, output) = in_a_plain_task(|| async {
        contextvars::thread::spawn(|| log_in("ada")).join().unwrap();
        USER.get()
    });
    assert!(panics.is_empty(), "{panics:?}");
    assert_eq!(output, Some(None));
}

#[test]
fn a_forks_merge_back_panics_at_its_call() {
    let line = line!() + 5;
    let panic = landing_panic(|| async {
        let fork = contextvars::Fork::current();
        let mut child = fork.context();
        child.run(|| USER.set(Some("ada".into())));
        fork.merge_back(child);
    });
    assert_reported_at(&panic, line);
    assert!(panic.message.contains("the child's change to `USER`"), "{panic:?}");
}

/// Holds a value whose `Drop` sets a variable: the last handle on it may go with a child's
/// context at a join.
#[derive(Clone)]
struct SetsWhenLastGoes(#[allow(dead_code)] std::sync::Arc<SetsOnDrop>);

#[context_var]
static HOLDER: Option<SetsWhenLastGoes>;

fn hold_a_value_that_sets_when_dropped() {
    HOLDER.set(Some(SetsWhenLastGoes(std::sync::Arc::new(SetsOnDrop))));
}

#[test]
fn a_plain_join_without_a_context_drops_the_childs_values_where_their_drop_may_set() {
    // The child's context goes at the join, with the last handle on its value: the value's
    // `Drop` sets a variable, which here would panic (the task has no context of its own)
    // had the join not dropped it in a scratch context, as a `JoinHandle`'s `.await` does.
    let (panics, output) = in_a_plain_task(|| async {
        contextvars::thread::spawn(hold_a_value_that_sets_when_dropped).join().unwrap();
        contextvars::thread::scope(|scope| scope.spawn(hold_a_value_that_sets_when_dropped).join().unwrap());
        let fork = contextvars::Fork::current();
        let mut child = fork.context();
        child.run(hold_a_value_that_sets_when_dropped);
        fork.join(child);
        let mut set = contextvars::JoinSet::new();
        set.spawn(async { hold_a_value_that_sets_when_dropped() });
        set.join_next().await.unwrap().unwrap();
        contextvars::spawn(async { hold_a_value_that_sets_when_dropped() }).await.unwrap();
        USER.get()
    });
    assert!(panics.is_empty(), "{panics:?}");
    assert_eq!(output, Some(None), "nothing was written anywhere");
}

#[test]
fn a_joinsets_join_next_delivers_nothing_and_its_merge_back_next_panics() {
    let (panics, output) = in_a_plain_task(|| async {
        let mut set = contextvars::JoinSet::new();
        set.spawn(async { log_in("ada") });
        set.join_next().await.unwrap().unwrap();
        USER.get()
    });
    assert!(panics.is_empty(), "{panics:?}");
    assert_eq!(output, Some(None));

    let line = line!() + 4;
    let panic = landing_panic(|| async {
        let mut set = contextvars::JoinSet::new();
        set.spawn(async { log_in("ada") });
        set.merge_back_next().await
    });
    // The panic comes from a poll: its message names the call.
    let message = &panic.message;
    for expected in [
        &format!("a `merge_back` join (called at {}:{line}:", file!()),
        "in a tokio task that has no context of its own",
        "the child's change to `USER`",
        "`contextvars::spawn(fut)` instead of `tokio::spawn(fut)`",
    ] {
        assert!(message.contains(expected), "{expected:?} not in {message:?}");
    }
}
