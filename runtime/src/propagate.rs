//! `#[propagate(back)]` as a transaction: the function runs in a copy of its caller's
//! context, and only when it completes do its changes land in the context it returns into.
//!
//! The copy is O(1) (a snapshot of the persistent map). At completion the changes from the
//! copy at entry to the copy at exit, restricted to the listed variables and to those that
//! flow back, are merged three ways into the context current then (base: the copy at entry,
//! parent: that context, child: the copy at exit), and their keys are marked there so that a
//! plain `.await` of the task delivers them on (see `join.rs`). A panic, or a future dropped
//! before it completes, lands nothing. The cost follows the number of changes the function
//! made: nothing is accumulated between calls but the marks (a persistent set in the map).

use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll, ready};

use pin_project_lite::pin_project;

use crate::changes::Changes;
use crate::context::Context;
use crate::current::{self, JOB_FIX, TASK_FIX};
use crate::map::{Listed, Spare};
use crate::scope::Scope;
use crate::value::Map;
use crate::var::AnyVar;

/// Runs `f` in a copy of the current context and, when it returns, lands its changes in the
/// current context: what `#[propagate(back)]` on a function expands to. `vars` restricts the
/// changes to the listed variables (`#[propagate(back(A, B))]`).
///
/// The changes are merged three ways (base: the context at the call, parent: the caller's
/// context now, child: the copy as `f` left it; a variable's `merge` decides when both sides
/// changed it) and marked, so that a plain `.await` of the task or thread this runs in
/// delivers them to whoever awaits it. If `f` panics, nothing lands.
///
/// The caller's context keeps its identity: a token it made before the call still resets in
/// it afterwards (but not inside `f`, which runs in the copy). A token made inside `f`
/// belongs to the copy, and resets only inside `f`.
///
/// ```
/// # extern crate contextvars_runtime as contextvars;
/// use contextvars::{ContextVar, propagate_back};
/// static USER: ContextVar<Option<String>> = ContextVar::new("USER", || None);
///
/// fn authenticate() {
///     propagate_back(None, || {
///         USER.set(Some("ada".into()));
///     })
/// }
///
/// authenticate();
/// assert_eq!(USER.get().as_deref(), Some("ada"));
/// USER.set(None);
/// # #[cfg(feature = "tokio")]
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// contextvars::spawn_blocking(authenticate).await.unwrap();
/// assert_eq!(USER.get().as_deref(), Some("ada")); // a plain `.await` delivered it
/// # });
/// ```
///
/// # Panics
///
/// When `f` returns into code without a context of its own (a plain `tokio::spawn` task, a
/// rayon job outside any context; see [`ContextVar::set`](crate::ContextVar::set)) having
/// changed a variable that lands: `f`'s own `set` works on the copy, and its changes have
/// nowhere to go. At the caller's line (for `#[propagate(back)]`, its attribute), naming the
/// likely cause and the fix. Changes that do not land (to variables declared `back = false`,
/// or not in `vars`) do not panic.
#[track_caller]
pub fn propagate_back<R>(vars: Option<&'static [&'static dyn AnyVar]>, f: impl FnOnce() -> R) -> R {
    // While `f` runs, the caller's context is put away where only this call can reach it:
    // at the exit it is still the copy's base, so no other handle on it is kept.
    let mut copy = Context::current();
    let Some(entered) = current::Enter::try_new(&mut copy, current::Entered::Run) else {
        // Called from the `Clone` of a value that `get` is cloning: no context can be entered
        // there, nor can `f` set anything (a `set` panics and says why), so `f` run in place
        // reads what it would read in the copy, and there is nothing to land.
        return f();
    };
    // A panic in `f` leaves the copy (the guard puts the caller's context back): nothing lands.
    let output = f();
    drop(entered);
    land_on_base(copy.into_map(), vars, Location::caller());
    output
}

/// Wraps `future` so that it runs in a copy of the context current at its first poll and,
/// when it completes, lands its changes in the context current then: what
/// `#[propagate(back)]` on an async function expands to. See [`propagate_back`] for the
/// merge, the marks and the tokens.
///
/// A future dropped before it completes (cancelled by a `select!`, a timeout or an abort)
/// lands nothing, nor does one that panics. Futures joined in one task (`join!`,
/// `join_all`) each work on their own copy and merge as they complete.
///
/// ```
/// # extern crate contextvars_runtime as contextvars;
/// use contextvars::{ContextVar, propagate_back_async};
/// fn sum(base: &u32, parent: &u32, child: &u32) -> u32 { parent + child - base }
/// static HITS: ContextVar<u32> = ContextVar::new("HITS", || 0).merge(sum);
///
/// async fn hit(n: u32) {
///     propagate_back_async(None, async move {
///         tokio::task::yield_now().await;
///         HITS.set(HITS.get() + n);
///     })
///     .await
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// tokio::join!(hit(1), hit(2), hit(3));
/// assert_eq!(HITS.get(), 6); // no lost update: each merged into the caller
/// # });
/// ```
///
/// # Panics
///
/// When the future completes in code without a context of its own (a plain `tokio::spawn`
/// task, a `tokio::task::JoinSet`), having changed a variable that lands, as
/// [`propagate_back`]. The panic comes from the last poll, which no caller's location
/// reaches: its message names where this was called (for `#[propagate(back)]`, the
/// attribute), with the likely cause and the fix. The future holds that location, one
/// pointer.
#[track_caller]
pub fn propagate_back_async<F: Future>(
    vars: Option<&'static [&'static dyn AnyVar]>,
    future: F,
) -> PropagateBack<F> {
    PropagateBack {
        vars,
        called_at: Location::caller(),
        state: State::Unpolled,
        scope: Context::new().scope(future),
    }
}

/// Where a [`PropagateBack`] is in its life.
enum State {
    Unpolled,
    /// Running: the copy as it was at the first poll.
    Running(Map),
    Done,
}

pin_project! {
    /// The future of [`propagate_back_async`]: runs the inner future in a copy of the context
    /// and lands its changes when it completes.
    ///
    /// Dropped before its first poll, the inner future is dropped in a copy of the context
    /// current then, as it would have run; polled after it completed, it panics.
    #[must_use = "futures do nothing unless polled"]
    pub struct PropagateBack<F> {
        vars: Option<&'static [&'static dyn AnyVar]>,
        // Where `propagate_back_async` was called (in the function `#[propagate(back)]`
        // wraps): the landing runs in `poll`, which no caller's location reaches, and its
        // panic names this one instead.
        called_at: &'static Location<'static>,
        state: State,
        #[pin]
        scope: Scope<F>,
    }

    impl<F> PinnedDrop for PropagateBack<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            // The inner future is dropped with the scope, in the scope's context: give it
            // the copy it would have run in (a `Drop` in it may read variables).
            if matches!(this.state, State::Unpolled) {
                this.scope.replace_context(current::snapshot());
            }
        }
    }
}

impl<F: Future> Future for PropagateBack<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let mut this = self.project();
        match this.state {
            State::Running(_) => {}
            State::Unpolled => {
                // Copied at the first poll, not at the call: the future may be created long
                // before it runs, and its changes are relative to where it ran.
                let entry = current::snapshot();
                this.scope.as_mut().replace_context(entry.clone());
                *this.state = State::Running(entry);
            }
            State::Done => panic!("`PropagateBack` polled after completion"),
        }
        let (output, exit) = ready!(this.scope.poll_with_context(cx));
        let State::Running(entry) = std::mem::replace(this.state, State::Done) else {
            unreachable!("set to `Running` above")
        };
        land(entry, exit.into_map(), *this.vars, this.called_at);
        Poll::Ready(output)
    }
}

impl<F> std::fmt::Debug for PropagateBack<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PropagateBack")
            .field("started", &!matches!(self.state, State::Unpolled))
            .finish_non_exhaustive()
    }
}

/// Merges the changes from `entry` to `exit` into the current context and marks them.
/// `called_at` is where the function was called, for the panic of code without a context.
fn land(
    entry: Map,
    exit: Map,
    vars: Option<&'static [&'static dyn AnyVar]>,
    called_at: &'static Location<'static>,
) {
    let exit = match Few::of(&entry, &exit, vars) {
        Some(few) => match few.land(exit, |caller| caller.same(&entry)) {
            Ok(listed) => {
                // Once the base is let go of, the caller's trie may be its own again.
                drop(entry);
                current::release_shadowed(&listed);
                return;
            }
            Err(exit) => exit,
        },
        None => exit,
    };
    land_changes(entry, exit, vars, called_at);
}

/// [`land`] where the current context is the base (`entry`) itself: a sync function's exit.
/// In code without a context of its own, a change that lands panics at the caller's
/// location, and its message names `called_at` (the same, but for a guard's `Drop`).
#[track_caller]
pub(crate) fn land_on_base(
    exit: Map,
    vars: Option<&'static [&'static dyn AnyVar]>,
    called_at: &'static Location<'static>,
) {
    // The common case in one visit to the caller's context: compared with the copy, then
    // replaced by it. What is let go of is dropped once the context is released.
    let mut exit = Some(exit);
    let replaced = current::try_write(|caller| {
        let few = Few::of(caller, exit.as_ref()?, vars)?;
        Some(few.replace(caller, exit.take()?))
    });
    let Some(exit) = exit else {
        if let Some(Some((replaced, listed))) = replaced {
            drop(replaced);
            current::release_shadowed(&listed);
        }
        return;
    };
    // Otherwise the general case (more changes, or some that do not land), or a context
    // that refused the write (code without a context of its own, a `get`'s `Clone`), which
    // `land_changes` tells apart. A second try of the path of `Few` could not succeed: it
    // would see the same maps, or be refused the same way.
    land_changes(current::snapshot(), exit, vars, called_at);
}

/// The general case: every change merged three ways, one by one. Also where code without a
/// context of its own ends up ([`Few::land`] is refused there), and is told so.
#[track_caller]
fn land_changes(
    entry: Map,
    exit: Map,
    vars: Option<&'static [&'static dyn AnyVar]>,
    called_at: &'static Location<'static>,
) {
    if !current::has_context() {
        return land_without_context(entry, exit, vars, called_at);
    }
    let changes = Changes::landing(&entry, &exit, vars);
    // Let go of the copy first: the caller's context may then own its nodes again and take
    // the changes in place.
    drop((entry, exit));
    changes.apply();
}

/// Code without a context of its own (a plain `tokio::spawn` task, a rayon job outside any
/// context) has nowhere to land the changes: if any of them lands, panics at the caller's
/// location, naming a variable, where the function was called (`called_at`) and the fix.
/// Nothing is kept either way, and the maps' values drop in a scratch context (a `Drop` may
/// set variables).
///
/// Called while the thread unwinds (from a `Drop`), it lands nothing and does not panic: a
/// second panic would abort the process.
#[cold]
#[inline(never)]
#[track_caller]
fn land_without_context(
    entry: Map,
    exit: Map,
    vars: Option<&'static [&'static dyn AnyVar]>,
    called_at: &'static Location<'static>,
) {
    let changes = Changes::landing(&entry, &exit, vars);
    let landing = changes.vars().find(|var| var.var_flows_back());
    current::drop_outside((entry, exit, changes));
    if let Some(var) = landing
        && !std::thread::panicking()
    {
        landing_without_context(var.var_name(), called_at, current::in_pool_job());
    }
}

#[cold]
#[track_caller]
fn landing_without_context(name: &'static str, called_at: &'static Location<'static>, job: bool) -> ! {
    if job {
        panic!(
            "contextvars: the changes of `#[propagate(back)]` at {called_at} land in a rayon job \
             that has no context of its own: the change to `{name}` has nowhere to go, and would \
             leak into every later job on this pool thread. {JOB_FIX}"
        )
    }
    panic!(
        "contextvars: the changes of `#[propagate(back)]` at {called_at} land in a tokio task that \
         has no context of its own: the change to `{name}` has nowhere to go, and would leak \
         into other tasks. {TASK_FIX}"
    )
}

/// At most this many changes take the path of [`Few`].
const FEW: usize = 4;

/// The common case, in O(changes) with nothing allocated: the caller's context is still the
/// base (a sync function's always is) and every change lands. The three-way merge then takes
/// every change as it is, so the caller's context becomes the copy at the exit wholesale,
/// with the changed keys marked (a key marked already costs nothing more).
struct Few {
    keys: [u32; FEW],
    count: usize,
    /// Bit `i`: the value of `keys[i]` has drop glue, so when the value its write replaced
    /// drops can be seen (see [`current::release_shadowed`]).
    loud: u8,
}

impl Few {
    /// The changes from `base` to `exit` if this case applies: they are at most [`FEW`],
    /// each lands, and the marks are the same set (else the function's own joins or calls
    /// marked something, and the merge marks only what lands).
    fn of(base: &Map, exit: &Map, vars: Option<&'static [&'static dyn AnyVar]>) -> Option<Few> {
        if !few_path() {
            return None;
        }
        let mut few = Few { keys: [0; FEW], count: 0, loud: 0 };
        let simple = Map::diff_exact(base, exit, &mut |key, before, after| {
            let Some(value) = after.or(before) else { return true };
            let var = value.var();
            let lands = var.var_flows_back()
                && vars.is_none_or(|vars| vars.iter().any(|listed| listed.var_key() == key));
            if !lands || few.count == FEW {
                return false;
            }
            few.keys[few.count] = key;
            if !value.drops_quietly() {
                few.loud |= 1 << few.count;
            }
            few.count += 1;
            true
        });
        simple.then_some(few)
    }

    /// Makes `exit` the current context's map, if the running code may write it (see
    /// `current::write`) and `unchanged` says it is still the base, and marks the changed
    /// keys; else gives `exit` back, for [`land_changes`] to land or to refuse. Gives the
    /// recent writes for [`current::release_shadowed`], once the base is let go of.
    fn land(self, exit: Map, unchanged: impl FnOnce(&Map) -> bool) -> Result<Listed, Map> {
        if self.count == 0 {
            return Ok(Listed::NONE);
        }
        let mut exit = Some(exit);
        let replaced = current::try_write(|map| {
            if !unchanged(map) {
                return None;
            }
            Some(self.replace(map, exit.take()?))
        });
        match exit {
            Some(exit) => Err(exit),
            None => {
                let (replaced, listed) = replaced.flatten().expect("taken by the replace");
                // Dropped with the context released: a replaced value's `Drop` may read variables.
                drop(replaced);
                Ok(listed)
            }
        }
    }

    /// Makes `exit` the caller's map `map`, which is the base, and marks the changed keys
    /// there; gives back what is let go of (the old map, or `exit` if nothing changed), to be
    /// dropped once the context is released, and the recent writes of `exit` that shadow a
    /// value of the base (see [`current::release_shadowed`]).
    fn replace(self, map: &mut Map, exit: Map) -> (Map, Listed) {
        if self.count == 0 {
            return (exit, Listed::NONE);
        }
        #[cfg(test)]
        tests::taken();
        let listed = match self.loud {
            0 => Listed::NONE,
            loud => {
                let mut keys = [0; FEW];
                let mut count = 0;
                for (i, &key) in self.keys[..self.count].iter().enumerate() {
                    if loud & (1 << i) != 0 {
                        keys[count] = key;
                        count += 1;
                    }
                }
                exit.shadowing(&keys[..count])
            }
        };
        let replaced = std::mem::replace(map, exit);
        for &key in &self.keys[..self.count] {
            map.mark(key);
        }
        (replaced, listed)
    }
}

/// Whether an exit may take the path of [`Few`]: always, but in the unit tests, which
/// compare it with the general path on the same exits.
#[cfg(not(test))]
#[inline(always)]
fn few_path() -> bool {
    true
}

#[cfg(test)]
use tests::few_path;

#[cfg(test)]
mod tests;
