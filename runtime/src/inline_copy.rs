//! `#[propagate(back)]` and `#[propagate(none)]` on a sync `#[track_caller]` function: the
//! body runs inline, in the function itself, so that the caller's location reaches it.
//!
//! The other sync forms move the body into a closure for [`propagate_back`] or
//! [`Context::run`](crate::Context::run); a closure cannot be `#[track_caller]` on stable
//! Rust, so `Location::caller()` and every `#[track_caller]` call in the body (`unwrap`,
//! `panic!`, a refused `set`) would name the body instead of the function's caller. Here a
//! guard enters the copy before the body's first statement and, dropped after the body's
//! locals and temporaries (by a `return`, a `?`, the end of the body or a panic), leaves it;
//! a back copy then lands its changes unless the function is unwinding from a panic of its
//! own.
//!
//! [`propagate_back`]: crate::propagate_back

use std::marker::PhantomData;
use std::panic::Location;

use crate::context::Context;
use crate::current::{self, Entered, Owner};
use crate::propagate::land_on_base;
use crate::var::AnyVar;

/// The guard `#[propagate]` puts first in a sync `#[track_caller]` function (the binding of
/// a `match` whose arm is the body): the body runs in a copy of its caller's context until
/// the guard is dropped after its locals and temporaries. Not for direct use:
/// [`propagate_back`](crate::propagate_back) and [`Context::run`] are the API.
pub struct InlineCopy {
    /// While entered: the caller's context, put away; after: the copy as the body left it.
    context: Context,
    entered: Entered,
    owner: Owner,
    /// Whether the copy was entered (not from inside `get`'s `Clone`, where nothing can be).
    active: bool,
    /// `Some(vars)` when the changes land (`back`), `None` when they are discarded.
    lands: Option<Option<&'static [&'static dyn AnyVar]>>,
    /// The function's caller. The changes land in `Drop`, which no caller's location reaches
    /// (`#[track_caller]` there would name the standard library's drop glue): a landing that
    /// panics names this location in its message instead.
    called_at: &'static Location<'static>,
    /// Whether the thread was unwinding already when the function was called (from a
    /// `Drop`): leaving then counts as completion. A panic of the body's own that a
    /// `catch_unwind` in that `Drop` catches cannot be told apart (the standard library
    /// says only whether the thread is panicking), so its changes land.
    unwinding_at_entry: bool,
    /// Left on the thread it entered: not `Send`, so it cannot be held across an `.await`.
    _not_send: PhantomData<*const ()>,
}

impl InlineCopy {
    /// Enters a copy of the current context whose changes land in the caller's context when
    /// the guard is dropped, unless by a panic: `#[propagate(back)]`.
    ///
    /// # Panics
    ///
    /// When the guard is dropped, in code without a context of its own (a plain
    /// `tokio::spawn` task, a rayon job outside any context) if a change lands: the message
    /// names the function's caller, where this is called from.
    #[inline]
    #[track_caller]
    pub fn back(vars: Option<&'static [&'static dyn AnyVar]>) -> InlineCopy {
        InlineCopy::enter(Some(vars))
    }

    /// Enters a copy of the current context whose changes are discarded:
    /// `#[propagate(none)]`.
    ///
    /// # Panics
    ///
    /// From the `Clone` of a value that `get` is cloning, as `Context::run` there (the form
    /// without `#[track_caller]`), at the function's caller.
    #[inline]
    #[track_caller]
    pub fn discard() -> InlineCopy {
        InlineCopy::enter(None)
    }

    #[track_caller]
    fn enter(lands: Option<Option<&'static [&'static dyn AnyVar]>>) -> InlineCopy {
        let mut guard = InlineCopy {
            context: Context::current(),
            entered: Entered::Run,
            owner: current::running_task(),
            active: false,
            lands,
            called_at: Location::caller(),
            unwinding_at_entry: std::thread::panicking(),
            _not_send: PhantomData,
        };
        // Refused only inside `get`'s `Clone`. A back copy's body then runs in place, as in
        // `propagate_back`: it reads what it would read in the copy, and cannot set anything
        // (a `set` panics and says why). Entering a discarded copy panics, as `Context::run` does.
        guard.active =
            current::swap_frame(&mut guard.context, &mut guard.entered, &mut guard.owner, true).is_ok();
        if !guard.active && guard.lands.is_none() {
            current::reentrant_enter();
        }
        guard
    }
}

impl Drop for InlineCopy {
    fn drop(&mut self) {
        if !self.active {
            return;
        }
        // Leaving cannot find the frame borrowed: the body's reads and writes ended.
        let _ = current::swap_frame(&mut self.context, &mut self.entered, &mut self.owner, false);
        let Some(vars) = self.lands else { return };
        if std::thread::panicking() && !self.unwinding_at_entry {
            return;
        }
        // The caller's context is still the copy's base: nothing else could reach it.
        land_on_base(std::mem::take(&mut self.context).into_map(), vars, self.called_at);
    }
}

impl std::fmt::Debug for InlineCopy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InlineCopy").field("lands", &self.lands.is_some()).finish_non_exhaustive()
    }
}
