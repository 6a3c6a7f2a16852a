//! The thread's current context.
//!
//! Each thread holds one frame: the map of the context it runs in, that context's identity
//! (for tokens), what entered it and who owns it. [`Context::run`](crate::Context::run) and
//! every poll of a [`Scope`](crate::Scope) swap their own context in with an [`Enter`] guard
//! and the previous one back out; the thread's own root frame is what is left when nothing
//! is entered.
//!
//! A frame belongs to the code that entered it: the tokio task that was running at that
//! moment (none outside any task). Code running in another task (a plain `tokio::spawn` task
//! polled by a runtime driven inside `Context::run`, a `LocalSet` task polled inside a
//! `Scope`) has no context: it reads defaults and its writes panic. The root frame belongs
//! to the thread outside any task, and not to the jobs of a rayon pool (feature `rayon`).

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::context::Context;
use crate::map::{Listed, RECENT};
use crate::value::{Map, Value};

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
    /// Nothing, while the code that had a context here waits in a parallel call that may
    /// run other jobs on this thread (see [`without_context`]).
    Vacated,
}

/// The task a frame belongs to: the tokio task that entered it, `None` outside any task.
#[cfg(feature = "tokio")]
pub(crate) type Owner = Option<tokio::task::Id>;
/// Without tokio, every frame belongs to its thread.
#[cfg(not(feature = "tokio"))]
pub(crate) type Owner = ();

struct Frame {
    map: Map,
    /// The context's identity for tokens; zero until a token needs it.
    id: u64,
    entered: Entered,
    owner: Owner,
}

thread_local! {
    /// The thread's current frame.
    static CURRENT: RefCell<Frame> = const {
        RefCell::new(Frame { map: Map::EMPTY, id: 0, entered: Entered::Root, owner: ROOT_OWNER })
    };
}

#[cfg(feature = "tokio")]
const ROOT_OWNER: Owner = None;
#[cfg(not(feature = "tokio"))]
const ROOT_OWNER: Owner = ();

/// The task running now, which owns the frames it enters.
#[cfg(feature = "tokio")]
#[inline(always)]
pub(crate) fn running_task() -> Owner {
    tokio::task::try_id()
}

#[cfg(not(feature = "tokio"))]
#[inline(always)]
pub(crate) fn running_task() -> Owner {}

/// Whether `owner` is the task running now.
#[cfg(feature = "tokio")]
#[inline(always)]
fn is_running(owner: &Owner) -> bool {
    *owner == running_task()
}

#[cfg(not(feature = "tokio"))]
#[inline(always)]
fn is_running(_owner: &Owner) -> bool {
    true
}

/// Whether the thread is a rayon worker: its root frame then belongs to no job.
#[cfg(feature = "rayon")]
#[inline(always)]
fn on_rayon_worker() -> bool {
    rayon_core::current_thread_index().is_some()
}

#[cfg(not(feature = "rayon"))]
#[inline(always)]
fn on_rayon_worker() -> bool {
    false
}

impl Frame {
    /// Whether the code running now may use this frame: it entered it (same task), and the
    /// frame is not the root frame of a pool thread.
    #[inline(always)]
    fn is_owned(&self) -> bool {
        is_running(&self.owner)
            && self.entered != Entered::Vacated
            && !(self.entered == Entered::Root && on_rayon_worker())
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// How many identities a thread takes from [`NEXT_ID`] at a time.
const ID_BLOCK: u64 = 1 << 10;

thread_local! {
    /// The thread's block of identities: the next one, and the end of the block.
    static IDS: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// A fresh context identity, unique in the process. Every `#[propagate(back)]` call's copy
/// takes one at its first write: from the thread's own block, without the locked
/// instruction of a shared counter.
pub(crate) fn fresh_id() -> u64 {
    IDS.try_with(|ids| {
        let (next, end) = ids.get();
        if next < end {
            ids.set((next + 1, end));
            return next;
        }
        let start = NEXT_ID.fetch_add(ID_BLOCK, Ordering::Relaxed);
        ids.set((start + 1, start + ID_BLOCK));
        start
    })
    // During thread teardown: one from the shared counter.
    .unwrap_or_else(|_| NEXT_ID.fetch_add(1, Ordering::Relaxed))
}

/// Calls `f` with the current context's map.
///
/// Code that does not own the thread's frame (see the module's documentation) reads the
/// empty map, that is defaults. During thread teardown, likewise.
#[inline(always)]
pub(crate) fn read<R>(f: impl FnOnce(&Map) -> R) -> R {
    let mut f = Some(f);
    let result = CURRENT.try_with(|frame| {
        let frame = frame.borrow();
        // An empty map reads as defaults either way: skip asking who runs.
        if !frame.map.is_empty() && !frame.is_owned() {
            return None;
        }
        Some((f.take().expect("called once"))(&frame.map))
    });
    match result {
        Ok(Some(result)) => result,
        _ => (f.take().expect("called once"))(&Map::EMPTY),
    }
}

/// The value stored under `key` in the current context, handed to `f`; `None` if there is
/// none, or if the code running now does not own the thread's frame (it reads defaults).
///
/// Who runs is asked only once a value is found, after the lookup: a default reads the same
/// to every task, and the question then overlaps the lookup instead of preceding it.
#[inline(always)]
pub(crate) fn read_value<R>(key: u32, f: impl FnOnce(&Value) -> Option<R>) -> Option<R> {
    CURRENT
        .try_with(|frame| {
            let frame = frame.borrow();
            let stored = frame.map.get(key)?;
            if !frame.is_owned() {
                return None;
            }
            f(stored)
        })
        .ok()
        .flatten()
}

/// Lets go of the values that the recent writes `listed` shadow in the current context's
/// trie, once that trie is the context's own again: after its map became a copy whose writes
/// were made while the copy shared the trie (a join that took the child's map whole, a
/// `#[propagate(back)]` exit that took the copy's). Those values are still in the trie,
/// unseen; a write of the key in the context's own trie would have let go of them there and
/// then, and the general paths of a join and of an exit do (their `Drop` runs here, in this
/// context). Without it such a value stayed until the key was set in this context itself
/// (later joins or exits delivering the key did not let go of it) and dropped wherever the
/// context ended. A value without drop glue is not listed: nothing observes when it drops.
#[inline]
pub(crate) fn release_shadowed(listed: &Listed) {
    // Out of line: most exits and joins have nothing listed (values without drop glue).
    #[inline(never)]
    fn release(listed: &Listed) {
        let mut displaced = [const { None }; RECENT];
        try_write(|map| map.settle(listed, &mut displaced));
        // With the context released: a `Drop` may read or set variables.
        drop(displaced);
    }
    if !listed.is_empty() {
        release(listed);
    }
}

/// Whether the code running now has a context of its own to write to (see `write`).
pub(crate) fn has_context() -> bool {
    CURRENT.try_with(|frame| frame.borrow().is_owned()).unwrap_or(true)
}

/// Whether the code running now, without a context of its own, is a job of a parallel pool
/// rather than a tokio task: the likely cause its panic names (see `write`). A tokio task
/// polled on a pool thread (by a runtime driven inside a rayon job) is a tokio task: the fix
/// it needs is the tokio one.
pub(crate) fn in_pool_job() -> bool {
    let vacated =
        CURRENT.try_with(|frame| frame.try_borrow().is_ok_and(|frame| frame.entered == Entered::Vacated));
    vacated.unwrap_or(false) || (on_rayon_worker() && !in_tokio_task())
}

/// Whether a tokio task is running now.
#[cfg(feature = "tokio")]
fn in_tokio_task() -> bool {
    running_task().is_some()
}

#[cfg(not(feature = "tokio"))]
fn in_tokio_task() -> bool {
    false
}

/// The fix a panic names for a tokio task without a context of its own.
pub(crate) const TASK_FIX: &str = "In a web service the usual cause is a missing \
    `contextvars::tower::ContextLayer`, or a middleware placed outside it (add the layer last, \
    so it wraps everything). Otherwise start the task with `contextvars::spawn(fut)` instead \
    of `tokio::spawn(fut)` (a blocking job with `contextvars::spawn_blocking(f)`), or wrap its \
    future: `tokio::spawn(contextvars::Context::current().scope(fut))`.";

/// The fix a panic names for a rayon job without a context of its own.
pub(crate) const JOB_FIX: &str = "Run the parallel work with `contextvars::rayon::join` / \
    `contextvars::rayon::scope` (feature `rayon`), which give each job a copy of the caller's \
    context, or enter one yourself: `let mut ctx = contextvars::Context::current();` before \
    the pool, `ctx.clone().run(|| ..)` in each job.";

/// Why a write was refused.
enum Refused {
    /// The frame is borrowed by a `get` that is cloning a value.
    Reentrant,
    /// The running code has no context of its own; `job`: it is a job of a parallel pool.
    NoContext { job: bool },
}

/// Calls `f` with the current context's map to change it, and the context's identity
/// (assigned now if it had none); returns `f`'s result. `name` is the variable's, for
/// messages.
///
/// During thread teardown (a value's `Drop` run as the thread's context is destroyed) there
/// is no context left: `f` gets a scratch map that is released right after, and the
/// identity is zero. So does a write that would be refused (below) while the thread unwinds
/// from a panic, from a `Drop` that the unwinding runs. Panicking there instead would abort
/// the process.
///
/// # Panics
///
/// In code without a context of its own (see `ContextVar::set`), and from a `Clone` that
/// `get` runs; at the caller's location. Not while the thread unwinds.
#[inline(always)]
#[track_caller]
pub(crate) fn write<R>(name: &'static str, f: impl FnOnce(&mut Map, u64) -> R) -> R {
    let mut f = Some(f);
    // Only `f`'s result comes back, and only the panics are out of line: a result wrapped
    // with the refusals (or with the identity), or handed back by an out-of-line call, went
    // through the stack and stalled on store forwarding.
    let written = CURRENT.try_with(|frame| {
        let mut frame = frame.try_borrow_mut().ok()?;
        if !frame.is_owned() {
            return None;
        }
        let frame = &mut *frame;
        if frame.id == 0 {
            frame.id = fresh_id();
        }
        Some((f.take()?)(&mut frame.map, frame.id))
    });
    match written {
        Ok(Some(result)) => result,
        Ok(None) if !std::thread::panicking() => refused_write(name),
        // Refused while the thread unwinds (a `Drop` run by a panic), or during teardown.
        _ => {
            let mut scratch = Map::EMPTY;
            let result = (f.take().expect("called once"))(&mut scratch, 0);
            drop_outside(scratch);
            result
        }
    }
}

/// Panics for a write that [`write()`] refused: from a `get`'s `Clone`, or from code without a
/// context of its own.
#[cold]
#[inline(never)]
#[track_caller]
fn refused_write(name: &'static str) -> ! {
    // The closure only reports the refusal: a panic from inside it would point at this file,
    // `#[track_caller]` does not reach into closures. The borrow ends before `in_pool_job`
    // looks at the frame (a borrow held through a `match` hid a put-away frame from it).
    let refused = CURRENT.try_with(|frame| {
        if frame.try_borrow_mut().is_err() {
            return Refused::Reentrant;
        }
        Refused::NoContext { job: in_pool_job() }
    });
    match refused {
        Ok(Refused::Reentrant) => reentrant_write(name),
        Ok(Refused::NoContext { job }) => no_context_write(name, job),
        Err(_) => unreachable!("`write` found the thread's context, which lives until the thread ends"),
    }
}

/// [`write()`] for a caller that knows what to write only once it has seen the map: calls `f`
/// where `write` would call it, else gives `None` (and leaves the panic, with the name of a
/// variable, to a later `write`). Assigns no identity: `f` writes no token.
#[inline(always)]
pub(crate) fn try_write<R>(f: impl FnOnce(&mut Map) -> R) -> Option<R> {
    CURRENT
        .try_with(|frame| {
            let mut frame = frame.try_borrow_mut().ok()?;
            frame.is_owned().then(|| f(&mut frame.map))
        })
        .ok()
        .flatten()
}

/// A write from code that runs while `get` holds the context: a `Clone` impl of a stored
/// value that sets a variable.
#[cold]
#[track_caller]
fn reentrant_write(name: &'static str) -> ! {
    panic!(
        "contextvars: `{name}.set()` called from inside the `Clone` of a value that `get` is \
         cloning; set variables before or after the `get`, not from `Clone`"
    )
}

#[cold]
#[track_caller]
fn no_context_write(name: &'static str, job: bool) -> ! {
    if job {
        panic!(
            "contextvars: `{name}.set()` in a rayon job that has no context of its own. The value \
             would leak into every later job on this pool thread. {JOB_FIX}"
        )
    }
    panic!(
        "contextvars: `{name}.set()` in a tokio task that has no context of its own, so the value \
         would leak into other tasks. {TASK_FIX}"
    )
}

/// A copy of the current context's map (O(1)).
pub(crate) fn snapshot() -> Map {
    read(Map::clone)
}

/// Whether a `Scope` is being polled on this thread, i.e. we are inside async code.
#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
pub(crate) fn in_async() -> bool {
    CURRENT
        .try_with(|frame| matches!(frame.borrow().entered, Entered::Scope | Entered::RunInAsync))
        .unwrap_or(false)
}

/// Makes a context the thread's current one for the guard's lifetime: swaps it in on
/// creation and back out on drop (also by panic), for `Context::run` and each poll of a
/// `Scope` alike. While entered, `context` holds the thread's previous map and identity.
pub(crate) struct Enter<'a> {
    context: &'a mut Context,
    /// While entered: how the previous frame was entered, and its owner.
    entered: Entered,
    owner: Owner,
}

impl<'a> Enter<'a> {
    /// Enters `context`, owned by the task running now; `entered` says how (`Run` or `Scope`).
    ///
    /// # Panics
    ///
    /// From the `Clone` of a value that `get` is cloning (the context is borrowed then).
    #[inline(always)]
    #[track_caller]
    pub(crate) fn new(context: &'a mut Context, entered: Entered) -> Enter<'a> {
        match Enter::try_new(context, entered) {
            Some(guard) => guard,
            None => reentrant_enter(),
        }
    }

    /// [`Enter::new`], or `None` where it would panic.
    #[inline(always)]
    pub(crate) fn try_new(context: &'a mut Context, entered: Entered) -> Option<Enter<'a>> {
        let mut guard = Enter { context, entered, owner: running_task() };
        match guard.swap(true) {
            Ok(()) => Some(guard),
            Err(()) => {
                // Nothing was swapped: leaving must not swap either.
                std::mem::forget(guard);
                None
            }
        }
    }

    /// Swaps the guard's context, entry kind and owner with the thread's.
    #[inline(always)]
    fn swap(&mut self, entering: bool) -> Result<(), ()> {
        swap_frame(self.context, &mut self.entered, &mut self.owner, entering)
    }
}

/// Swaps `context`, `entered` and `owner` with the thread's frame: the one mechanism behind
/// [`Enter`] and [`InlineCopy`](crate::InlineCopy), which owns its context. `Err` when the
/// frame is borrowed (code running inside `get`'s `Clone`): nothing was swapped then.
#[inline(always)]
pub(crate) fn swap_frame(
    context: &mut Context,
    entered: &mut Entered,
    owner: &mut Owner,
    entering: bool,
) -> Result<(), ()> {
    // During thread teardown there is nothing to swap with (a scoped future dropped by
    // another thread-local's destructor): entering and leaving are then both no-ops.
    CURRENT
        .try_with(|frame| {
            let Ok(mut frame) = frame.try_borrow_mut() else { return Err(()) };
            let frame = &mut *frame;
            // In place, field by field: a copy of the frame through the stack would be read
            // back in one wide load right after narrower stores, and stall on it.
            frame.map.swap(&mut context.map);
            std::mem::swap(&mut frame.id, &mut context.id);
            std::mem::swap(&mut frame.entered, entered);
            std::mem::swap(&mut frame.owner, owner);
            // A `Context::run` inside async code is still inside async code (`block_on`).
            if entering
                && frame.entered == Entered::Run
                && matches!(*entered, Entered::Scope | Entered::RunInAsync)
            {
                frame.entered = Entered::RunInAsync;
            }
            Ok(())
        })
        .unwrap_or(Ok(()))
}

impl Drop for Enter<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        // Leaving cannot find the frame borrowed: the borrows of `read` and `write` end
        // before they return, and entering one from inside them was refused.
        let _ = self.swap(false);
    }
}

/// A context entered from code that runs while `get` holds the context.
#[cold]
#[track_caller]
pub(crate) fn reentrant_enter() -> ! {
    panic!(
        "contextvars: a context entered (`Context::run`, a `Scope`, a `#[propagate(none)]` \
         function) from inside the `Clone` of a value that `get` is cloning; enter it before or \
         after the `get`, or read the value with `with`, which does not hold the context"
    )
}

/// Runs `f` with the thread's current context put away: code that runs in `f` outside a
/// context of its own reads defaults and its `set` panics, naming the `contextvars::rayon`
/// adapters. The previous state is restored after, also by panic.
///
/// For a parallel call that waits on this thread (`rayon::join`, `rayon::scope`, a parallel
/// iterator): while it waits, the pool may run other jobs here, and those must not see, nor
/// set, the context of the code that called it. The caller's own code that runs in `f`
/// without waiting (a nested iterator's delivery) takes the context back with
/// [`as_caller`].
///
/// ```
/// use contextvars_runtime::{ContextVar, as_caller, without_context};
/// static USER: ContextVar<&'static str> = ContextVar::new("USER", || "nobody");
/// USER.set("ada");
/// assert_eq!(without_context(|| USER.get()), "nobody");
/// assert_eq!(without_context(|| as_caller(|| USER.get())), "ada");
/// assert_eq!(USER.get(), "ada");
/// ```
#[doc(hidden)]
pub fn without_context<R>(f: impl FnOnce() -> R) -> R {
    // A frame the running code does not own is hidden from the pool's jobs already; one put
    // away stays so. Thus a put-away frame is always one the caller owned (see `as_caller`).
    let _vacated = Mark::new(|frame| frame.is_owned().then_some(Entered::Vacated));
    f()
}

/// Inside [`without_context`], runs `f` in the context that was put away (elsewhere, runs
/// `f` as it is): for the caller's own code, not for jobs of the pool.
#[doc(hidden)]
pub fn as_caller<R>(f: impl FnOnce() -> R) -> R {
    let _back = Mark::new(|frame| (frame.entered == Entered::Vacated).then_some(Entered::Run));
    f()
}

/// Changes how the thread's frame counts as entered, for the guard's lifetime.
struct Mark(Option<Entered>);

impl Mark {
    /// `change` gives the new kind from the frame, or `None` to leave it.
    fn new(change: impl FnOnce(&Frame) -> Option<Entered>) -> Mark {
        let previous = CURRENT.try_with(|frame| {
            // Borrowed only inside a `get`'s `Clone`: leave the frame alone there.
            let mut frame = frame.try_borrow_mut().ok()?;
            let new = change(&frame)?;
            Some(std::mem::replace(&mut frame.entered, new))
        });
        Mark(previous.ok().flatten())
    }
}

impl Drop for Mark {
    fn drop(&mut self) {
        if let Some(previous) = self.0 {
            let _ = CURRENT.try_with(|frame| {
                if let Ok(mut frame) = frame.try_borrow_mut() {
                    frame.entered = previous;
                }
            });
        }
    }
}

/// How many rounds of drops may set values whose drops set values again (see
/// [`drop_outside`]); beyond that the rest is leaked rather than dropped forever.
const DROP_ROUNDS: u32 = 16;

thread_local! {
    /// Rounds of [`drop_outside`] in progress on this thread, nested ones included. No
    /// destructor, so it stays usable during thread teardown.
    static DROP_DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// Drops `values` (a map, a context's values, a join's leftovers) in a scratch context owned
/// by the running code, so that a stored value's `Drop` that sets a variable neither panics
/// (no context of its own, or during unwinding: an abort) nor writes into whatever context
/// happens to be current. What those drops set is dropped the same way, for at most
/// [`DROP_ROUNDS`] rounds on this thread; a longer chain of drops that set values whose drops
/// set values is leaked.
pub(crate) fn drop_outside<T>(values: T) {
    struct Depth(u32);
    impl Drop for Depth {
        fn drop(&mut self) {
            DROP_DEPTH.set(self.0);
        }
    }

    let depth = Depth(DROP_DEPTH.get());
    if depth.0 >= DROP_ROUNDS {
        std::mem::forget(values);
        return;
    }
    DROP_DEPTH.set(depth.0 + 1);
    let mut scratch = Context::new();
    // Inside a `get`'s `Clone` the frame cannot be entered: the values drop where they are.
    let entered = Enter::try_new(&mut scratch, Entered::Run);
    drop(values);
    drop(entered);
    // Nested: each round counts against the bound.
    let left = std::mem::take(&mut scratch.map);
    if !left.is_empty() {
        drop_outside(left);
    }
    drop(depth);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_are_unique_across_threads_and_blocks() {
        let per_thread = 3 * ID_BLOCK as usize / 2; // each thread crosses into a second block
        let threads: Vec<_> = (0..4)
            .map(|_| std::thread::spawn(move || (0..per_thread).map(|_| fresh_id()).collect::<Vec<_>>()))
            .collect();
        let mut ids: Vec<u64> = threads.into_iter().flat_map(|thread| thread.join().unwrap()).collect();
        ids.extend((0..per_thread).map(|_| fresh_id()));
        let count = ids.len();
        assert!(ids.iter().all(|&id| id != 0), "zero means no identity yet");
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), count);
    }

    #[test]
    fn a_set_refused_in_a_put_away_context_names_the_pool_job() {
        // What runs while a parallel call waits (its caller's context put away) is a job of
        // the pool, whichever thread it runs on: its panic names the rayon fix.
        static N: crate::ContextVar<u32> = crate::ContextVar::new("N", || 0);
        let refused = without_context(|| std::panic::catch_unwind(|| drop(N.set(1))));
        let message = refused.expect_err("refused").downcast::<String>().expect("a message");
        assert!(message.contains("`N.set()` in a rayon job"), "{message}");
    }
}
