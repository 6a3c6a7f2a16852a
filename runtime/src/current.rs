//! The thread's current context.
//!
//! Each thread holds one frame: the map of the context it runs in, that context's identity
//! (for tokens) and what entered it. [`Context::run`](crate::Context::run) and every poll of a
//! [`Scope`](crate::Scope) swap their own frame in and the previous one back out; the
//! thread's own root frame is what is left when nothing is entered.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::map::Map;

/// Who put the current frame on this thread.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Entered {
    /// Nothing: the thread's own context.
    Root,
    /// `Context::run`, outside async code.
    Run,
    /// `Context::run` called (directly or not) from a `Scope` being polled.
    RunInAsync,
    /// A `Scope` future being polled.
    Scope,
}

/// Which way a `swap` goes, for the frames of `Context::run`: one entered from async code is
/// marked so (`Entered::RunInAsync`), so that `block_on` can tell it is inside a poll.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    Enter,
    Leave,
}

pub(crate) struct Frame {
    pub(crate) map: Map,
    /// The context's identity for tokens; zero until a token needs it.
    pub(crate) id: u64,
    pub(crate) entered: Entered,
}

thread_local! {
    /// The thread's current frame.
    static CURRENT: RefCell<Frame> = const {
        RefCell::new(Frame { map: Map::EMPTY, id: 0, entered: Entered::Root })
    };
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A fresh context identity.
pub(crate) fn fresh_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// Calls `f` with the current context's map.
///
/// A tokio task that is not inside a `Scope` has no context of its own: it reads defaults
/// rather than whatever the worker thread's root context holds. During thread teardown,
/// likewise.
#[inline(always)]
pub(crate) fn read<R>(f: impl FnOnce(&Map) -> R) -> R {
    let mut f = Some(f);
    let result = CURRENT.try_with(|frame| {
        let frame = frame.borrow();
        if frame.entered == Entered::Root && !frame.map.is_empty() && in_unscoped_task() {
            return None;
        }
        Some((f.take().expect("called once"))(&frame.map))
    });
    match result {
        Ok(Some(result)) => result,
        _ => (f.take().expect("called once"))(&Map::EMPTY),
    }
}

/// Calls `f` with the current context's map to change it; returns the context's identity
/// (assigned now if it had none) with `f`'s result.
///
/// During thread teardown (a value's `Drop` run as the thread's context is destroyed) there
/// is no context left: `f` gets a scratch map that is dropped right after, and the identity
/// is zero. Panicking there instead would abort the process.
///
/// # Panics
///
/// In a tokio task outside any `Scope` (see `ContextVar::set`).
#[inline(always)]
pub(crate) fn write<R>(var: &'static str, f: impl FnOnce(&mut Map, u64) -> R) -> (u64, R) {
    let mut f = Some(f);
    let result = CURRENT.try_with(|frame| {
        let Ok(mut frame) = frame.try_borrow_mut() else { reentrant_write(var) };
        if frame.entered == Entered::Root && in_unscoped_task() {
            drop(frame);
            unscoped_write(var);
        }
        let frame = &mut *frame;
        if frame.id == 0 {
            frame.id = fresh_id();
        }
        (frame.id, (f.take().expect("called once"))(&mut frame.map, frame.id))
    });
    match result {
        Ok(result) => result,
        Err(_) => {
            let mut scratch = Map::EMPTY;
            let result = (f.take().expect("called once"))(&mut scratch, 0);
            (0, result)
        }
    }
}

/// A write from code that runs while `get` holds the context: a `Clone` impl of a stored
/// value that sets a variable.
#[cold]
#[track_caller]
fn reentrant_write(var: &'static str) -> ! {
    panic!(
        "contextvars: `{var}.set()` called from inside the `Clone` of a value that `get` is \
         cloning; set variables before or after the `get`, not from `Clone`"
    )
}

/// A context entered from code that runs while `get` holds the context.
#[cold]
fn reentrant_enter() -> ! {
    panic!(
        "contextvars: a context entered (`Context::run`, a `Scope`, a `#[propagate(none)]` \
         function) from inside the `Clone` of a value that `get` is cloning; enter it before or \
         after the `get`, or read the value with `with`, which does not hold the context"
    )
}

/// Whether `get` holds the thread's context: code that runs now is a `Clone` of the value it
/// clones, which can neither enter a context nor write.
pub(crate) fn in_get() -> bool {
    CURRENT.try_with(|frame| frame.try_borrow_mut().is_err()).unwrap_or(false)
}

#[cold]
#[track_caller]
fn unscoped_write(var: &'static str) -> ! {
    panic!(
        "contextvars: `{var}.set()` in a tokio task that has no context of its own. The value would \
         leak into every other task that runs on this thread. Start the task with \
         `contextvars::spawn(fut)` instead of `tokio::spawn(fut)` (a blocking job with \
         `contextvars::spawn_blocking(f)` instead of `tokio::task::spawn_blocking(f)`), or wrap its \
         future: `tokio::spawn(contextvars::Context::current().scope(fut))`."
    )
}

/// A copy of the current context's map (O(1)).
pub(crate) fn snapshot() -> Map {
    read(Map::clone)
}

/// Swaps a context's map, identity and entry kind with the thread's current ones: called
/// once to enter a context and once more to leave it.
#[inline(always)]
pub(crate) fn swap(map: &mut Map, id: &mut u64, entered: &mut Entered, direction: Direction) {
    // During thread teardown there is nothing to swap with (a scoped future dropped by
    // another thread-local's destructor): entering and leaving are then both no-ops.
    let _ = CURRENT.try_with(|frame| {
        let Ok(mut frame) = frame.try_borrow_mut() else { reentrant_enter() };
        let frame = &mut *frame;
        // In place, field by field: a copy of the frame through the stack would be read back
        // in one wide load right after narrower stores, and stall on it.
        frame.map.swap(map);
        std::mem::swap(&mut frame.id, id);
        std::mem::swap(&mut frame.entered, entered);
        if direction == Direction::Enter
            && frame.entered == Entered::Run
            && matches!(*entered, Entered::Scope | Entered::RunInAsync)
        {
            frame.entered = Entered::RunInAsync;
        }
    });
}

/// Whether this is a tokio task that has no context of its own: where `write` panics.
#[cfg_attr(not(feature = "tokio"), allow(dead_code))] // used by the joins
pub(crate) fn in_task_without_context() -> bool {
    CURRENT
        .try_with(|frame| frame.try_borrow().is_ok_and(|frame| frame.entered == Entered::Root))
        .unwrap_or(false)
        && in_unscoped_task()
}

/// Whether a `Scope` is being polled on this thread, i.e. we are inside async code.
#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
pub(crate) fn in_async() -> bool {
    CURRENT
        .try_with(|frame| matches!(frame.borrow().entered, Entered::Scope | Entered::RunInAsync))
        .unwrap_or(false)
}

#[cfg(feature = "tokio")]
#[inline]
fn in_unscoped_task() -> bool {
    tokio::task::try_id().is_some()
}

#[cfg(not(feature = "tokio"))]
#[inline]
fn in_unscoped_task() -> bool {
    false
}
