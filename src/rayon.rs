//! rayon's [`join`], [`scope`] and parallel iterators, whose closures run in copies of the
//! caller's context (feature `rayon`).
//!
//! A plain rayon job outside any context has none of its own: it reads defaults, and its
//! `set` panics naming [`join`] and [`scope`], rather than writing the pool thread's own
//! context, which every later job on that thread would read. The functions here carry the
//! caller's context along, and leave the pool threads' own contexts untouched:
//!
//! * [`join`] and [`scope`] run every closure in a copy of the context current where it was
//!   started, and merge all their changes back into the caller once they have all finished,
//!   in a fixed order (`a`, then `b`; the scope's body, then its spawns in spawn order), by
//!   the three-way merge: the variables' `merge` functions combine what siblings changed.
//! * [`.with_context()`](WithContextExt::with_context) on a parallel iterator runs every
//!   closure after it (`map`, `filter`, `for_each`, `reduce`, ...) for every item in a copy
//!   of the caller's context. What comes back is what a plain `.await` of a task delivers
//!   (the changes of `#[propagate(back)]` functions), or, after
//!   [`.merge_back()`](WithContext::merge_back), every change, merged item after item in the
//!   iterator's order through the variables' `merge` functions.
//!
//! A closure that panics delivers nothing, and neither does its join or iterator: the panic
//! reaches the caller as with rayon.
//!
//! With the features `tracing` and `opentelemetry`, every closure also runs inside the
//! tracing span current where it was started (at `join`, `scope`, `spawn` or
//! `.with_context()`) and with its context's `TRACE_CONTEXT` as OpenTelemetry's current
//! context, like [`spawn`](crate::spawn); [`untraced`](crate::untraced) opts out.
//!
//! ```
//! use contextvars::ContextVar;
//! use contextvars::rayon::WithContextExt;
//! use rayon::prelude::*;
//!
//! fn sum(base: &u64, parent: &u64, child: &u64) -> u64 { parent + child - base }
//! static ROWS: ContextVar<u64> = ContextVar::new("ROWS", || 0).merge(sum);
//! static TENANT: ContextVar<&'static str> = ContextVar::new("TENANT", || "none");
//!
//! TENANT.set("acme");
//! let tenants: Vec<_> = (0..100u64)
//!     .into_par_iter()
//!     .with_context()
//!     .merge_back()
//!     .map(|n| { ROWS.set(ROWS.get() + n); TENANT.get() })
//!     .collect();
//! assert!(tenants.iter().all(|tenant| *tenant == "acme"));
//! assert_eq!(ROWS.get(), 4950);
//! ```
//!
//! Calling these from inside a rayon job that has no context of its own (a closure given to
//! `ThreadPool::install` or a plain `rayon::spawn`) forks that job's empty context, and a
//! change that comes back there panics like `set`: enter a context first
//! (`Context::current()` taken before `install`, then `.run(...)` inside it). An iterator
//! made with `.with_context()` outside such a job and consumed inside it still starts its
//! items from the copy taken at `.with_context()`; its changes come back where it is
//! consumed, inside the job, so the same holds for them.
//!
//! One limit the library cannot lift: while one of these closures waits inside rayon (a
//! nested `join`, a `scope`), rayon may run another job on the same thread. A job started
//! through this module enters its own copy and sees nothing of the waiting closure; a plain
//! rayon job (`rayon::spawn`, `rayon::join` used directly) runs in the waiting closure's
//! context, sees its values, and what it sets lands there. Start every job that reads or
//! sets variables through this module.
//!
//! The same holds for the nested parallel iterator of a `flat_map` (or `flatten`): rayon
//! drives it with plain jobs, so the closures after the `flat_map` run, for the items
//! stolen by other threads, with no context (they read defaults, and `set` panics). Give them a
//! `.with_context()` of their own after it:
//! `.with_context().flat_map(f).with_context().map(g)` (`f` and `g` each in a copy of the
//! caller's context, every change of both brought back with `.merge_back()` on each).

use std::panic::Location;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use rayon::iter::ParallelIterator;
use rayon::iter::plumbing::{Consumer, Folder, Reducer, UnindexedConsumer};

use crate::carry::{self, Carry};
use crate::{Changes, Context, Fork};

/// `rayon::join`: runs `a` and `b`, possibly in parallel, each in a copy of the current
/// context, then merges all `a`'s changes into the current context, then all `b`'s.
///
/// ```
/// use contextvars::ContextVar;
/// fn sum(base: &u32, parent: &u32, child: &u32) -> u32 { parent + child - base }
/// static HITS: ContextVar<u32> = ContextVar::new("HITS", || 0).merge(sum);
/// static USER: ContextVar<&'static str> = ContextVar::new("USER", || "nobody");
///
/// USER.set("ada");
/// let (a, b) = contextvars::rayon::join(
///     || { HITS.set(HITS.get() + 1); USER.get() },
///     || { HITS.set(HITS.get() + 2); USER.set("bob") },
/// );
/// assert_eq!(a, "ada");
/// drop(b);
/// assert_eq!((HITS.get(), USER.get()), (3, "bob"));
/// ```
///
/// # Panics
///
/// If `a` or `b` panics (after both finished, as with rayon; nothing is merged), or if a
/// change is to land where `set` panics (code without a context of its own: a rayon job
/// outside any context, a plain `tokio::spawn` task), at the caller's line.
#[track_caller]
pub fn join<A, B, RA, RB>(a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    let fork = Fork::current();
    let (mut context_a, mut context_b) = (fork.context(), fork.context());
    let carry = Carry::capture();
    let (carry_a, carry_b) = (&carry, &carry);
    // While the join waits for `b`, the pool may run other jobs on this thread: the
    // caller's context is put away meanwhile (each closure enters its own copy).
    let ((output_a, context_a), (output_b, context_b)) = contextvars_runtime::without_context(|| {
        carry::aside(|| {
            rayon::join(
                move || (context_a.run(|| carry_a.start(a)), context_a),
                move || (context_b.run(|| carry_b.start(b)), context_b),
            )
        })
    });
    fork.clone().merge_back(context_a);
    fork.merge_back(context_b);
    (output_a, output_b)
}

/// `rayon::scope`: `op` and every closure spawned in the scope run in a copy of the context
/// current where they were started; once all have finished, all their changes are merged
/// into the current context: `op`'s first, then the spawns' in the order they were spawned,
/// each against the context it was forked from.
///
/// ```
/// use contextvars::ContextVar;
/// fn sum(base: &u32, parent: &u32, child: &u32) -> u32 { parent + child - base }
/// static ROWS: ContextVar<u32> = ContextVar::new("ROWS", || 0).merge(sum);
///
/// contextvars::rayon::scope(|s| {
///     for _ in 0..8 {
///         s.spawn(|s| {
///             ROWS.set(ROWS.get() + 1);
///             s.spawn(|_| { ROWS.set(ROWS.get() + 10); }); // forked from its spawner's context
///         });
///     }
/// });
/// assert_eq!(ROWS.get(), 88);
/// ```
///
/// # Panics
///
/// If `op` or a spawned closure panics (once all have finished, as with rayon; nothing is
/// merged), or if a change is to land where `set` panics, at the caller's line (as
/// [`join`]).
#[track_caller]
pub fn scope<'scope, OP, R>(op: OP) -> R
where
    OP: FnOnce(&Scope<'_, 'scope>) -> R + Send,
    R: Send,
{
    let fork = Fork::current();
    let mut context = fork.context();
    let carry = Carry::capture();
    let spawned = Arc::new(Spawned::default());
    // The scope waits for its spawns, and may run other jobs on this thread meanwhile: the
    // caller's context is put away until it returns.
    let output = contextvars_runtime::without_context(|| {
        carry::aside(|| {
            rayon::scope(|inner| {
                let scope = Scope { inner, spawned: &spawned };
                context.run(|| carry.start(|| op(&scope)))
            })
        })
    });
    fork.merge_back(context);
    let mut finished = std::mem::take(&mut *spawned.lock());
    finished.sort_unstable_by_key(|(order, _, _)| *order);
    for (_, fork, context) in finished {
        fork.merge_back(context);
    }
    output
}

/// The scope of [`scope`]: spawns closures that run in a copy of the spawner's context.
///
/// ```
/// use contextvars::ContextVar;
/// fn sum(base: &u64, parent: &u64, child: &u64) -> u64 { parent + child - base }
/// static ROWS: ContextVar<u64> = ContextVar::new("ROWS", || 0).merge(sum);
///
/// contextvars::rayon::scope(|s| {
///     s.spawn(|s| {
///         ROWS.set(ROWS.get() + 1);
///         s.spawn(|_| { ROWS.set(ROWS.get() + 1); }); // forked from this spawn's context
///     });
/// });
/// assert_eq!(ROWS.get(), 2);
/// ```
pub struct Scope<'a, 'scope> {
    inner: &'a rayon::Scope<'scope>,
    spawned: &'a Arc<Spawned>,
}

/// The spawned closures' final contexts, waiting for the end of the scope.
#[derive(Default)]
struct Spawned {
    next: AtomicU64,
    /// Spawn order, the fork and the final context of every closure that returned.
    finished: Mutex<Vec<(u64, Fork, Context)>>,
}

impl Spawned {
    /// The finished closures; a panic elsewhere does not keep them from the scope's end.
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(u64, Fork, Context)>> {
        self.finished.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<'scope> Scope<'_, 'scope> {
    /// `rayon::Scope::spawn`: runs `body` in the scope, in a copy of the current context.
    /// Its changes are merged into the caller of [`scope`] when the scope ends.
    ///
    /// ```
    /// use contextvars::ContextVar;
    /// static USER: ContextVar<&'static str> = ContextVar::new("USER", || "nobody");
    /// USER.set("ada");
    /// let mut seen = None;
    /// contextvars::rayon::scope(|s| s.spawn(|_| seen = Some(USER.get())));
    /// assert_eq!(seen, Some("ada"));
    /// ```
    pub fn spawn<BODY>(&self, body: BODY)
    where
        BODY: FnOnce(&Scope<'_, 'scope>) + Send + 'scope,
    {
        let order = self.spawned.next.fetch_add(1, Ordering::Relaxed);
        let fork = Fork::current();
        let carry = Carry::capture();
        let spawned = Arc::clone(self.spawned);
        self.inner.spawn(move |inner| {
            let mut context = fork.context();
            context.run(|| carry.start(|| body(&Scope { inner, spawned: &spawned })));
            spawned.lock().push((order, fork, context));
        });
    }
}

impl std::fmt::Debug for Scope<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scope").finish_non_exhaustive()
    }
}

/// `.with_context()` for every parallel iterator.
///
/// ```
/// use contextvars::ContextVar;
/// use contextvars::rayon::WithContextExt;
/// use rayon::prelude::*;
/// static USER: ContextVar<&'static str> = ContextVar::new("USER", || "nobody");
///
/// USER.set("ada");
/// let seen: Vec<_> = vec![1, 2, 3].into_iter().par_bridge().with_context().map(|_| USER.get()).collect();
/// assert_eq!(seen, ["ada"; 3]);
/// ```
pub trait WithContextExt: ParallelIterator {
    /// Runs the closures that follow (for every item, and those of `reduce`, `fold` and the
    /// like) in copies of the current context, taken now. Changes come back when the
    /// iterator is consumed, as from a plain `.await` of a task: those of
    /// `#[propagate(back)]` functions; [`merge_back`](WithContext::merge_back) brings them
    /// all.
    ///
    /// Each item starts from the same copy: nothing one item sets is seen by the next.
    /// The iterator it returns is unindexed: `enumerate`, `zip` and the like go before it.
    /// The closures after a `flat_map` of a parallel iterator need a `.with_context()` of
    /// their own after it (see the [module](self) docs).
    ///
    /// ```
    /// use contextvars::ContextVar;
    /// use contextvars::rayon::WithContextExt;
    /// use rayon::prelude::*;
    /// static USER: ContextVar<&'static str> = ContextVar::new("USER", || "nobody");
    ///
    /// USER.set("ada");
    /// let seen: Vec<_> = (0..4).into_par_iter().with_context().map(|_| USER.get()).collect();
    /// assert_eq!(seen, ["ada"; 4]);
    /// ```
    fn with_context(self) -> WithContext<Self> {
        WithContext { base: self, fork: Fork::current(), carry: Carry::capture(), merge_back: None }
    }
}

impl<I: ParallelIterator> WithContextExt for I {}

/// A parallel iterator whose closures run in copies of the caller's context: made by
/// [`WithContextExt::with_context`]. The copy is taken at `.with_context()`, whenever the
/// iterator is consumed.
///
/// ```
/// use contextvars::ContextVar;
/// use contextvars::rayon::WithContextExt;
/// use rayon::prelude::*;
/// static USER: ContextVar<&'static str> = ContextVar::new("USER", || "nobody");
///
/// USER.set("ada");
/// let names = (0..2).into_par_iter().with_context().map(|_| USER.get());
/// USER.set("bob");
/// assert_eq!(names.collect::<Vec<_>>(), ["ada", "ada"]);
/// ```
#[derive(Clone, Debug)]
#[must_use = "iterator adaptors are lazy and do nothing unless consumed"]
pub struct WithContext<I> {
    base: I,
    /// The caller's context at `with_context`: every item's start, and the base of the merge.
    fork: Fork,
    /// The caller's trace at `with_context`, entered around every closure.
    carry: Carry,
    /// `Some` after [`merge_back`](WithContext::merge_back): where it was called, which the
    /// panic of a merge with nowhere to land names (it comes from the consuming call).
    merge_back: Option<&'static Location<'static>>,
}

impl<I> WithContext<I> {
    /// Brings every change of the closures back, not only those of `#[propagate(back)]`
    /// functions: when the iterator is consumed, item after item in the iterator's order,
    /// each against the caller's context at `with_context`, through the variables' `merge`
    /// functions (without one, the last item's value wins).
    ///
    /// ```
    /// use contextvars::ContextVar;
    /// use contextvars::rayon::WithContextExt;
    /// use rayon::prelude::*;
    /// fn sum(base: &u64, parent: &u64, child: &u64) -> u64 { parent + child - base }
    /// static BYTES: ContextVar<u64> = ContextVar::new("BYTES", || 0).merge(sum);
    /// static LAST: ContextVar<u64> = ContextVar::new("LAST", || 0);
    ///
    /// (1..=10u64).into_par_iter().with_context().merge_back().for_each(|n| {
    ///     BYTES.set(BYTES.get() + n);
    ///     LAST.set(n);
    /// });
    /// assert_eq!((BYTES.get(), LAST.get()), (55, 10));
    /// ```
    #[track_caller]
    pub fn merge_back(self) -> WithContext<I> {
        WithContext { merge_back: Some(Location::caller()), ..self }
    }
}

impl<I: ParallelIterator> ParallelIterator for WithContext<I> {
    type Item = I::Item;

    fn drive_unindexed<C>(self, consumer: C) -> C::Result
    where
        C: UnindexedConsumer<Self::Item>,
    {
        let fork = self.fork;
        let origin = Origin { fork: fork.clone(), carry: Arc::new(self.carry), merge_back: self.merge_back };
        let consumer = ContextConsumer { base: consumer, origin };
        // The closures after `with_context` run in contexts of their own; while the iterator
        // waits for its pieces, the pool may run other jobs on this thread: the caller's
        // context is put away meanwhile.
        let (output, context) = contextvars_runtime::without_context(|| self.base.drive_unindexed(consumer));
        // Nested in another iterator's drive, the caller's context is put away: this is the
        // caller's own code, not a job of the pool, and it delivers there.
        contextvars_runtime::as_caller(|| deliver(fork, context, self.merge_back));
        output
    }

    fn opt_len(&self) -> Option<usize> {
        self.base.opt_len()
    }
}

/// Merges a child's changes into the current context: all of them, or the marked ones.
fn deliver(fork: Fork, child: Context, merge_back: Option<&'static Location<'static>>) {
    match merge_back {
        Some(called_at) => fork.merge_back_called_at(child, called_at),
        None => fork.join(child),
    }
}

/// What every piece of a `with_context` iterator shares: the caller's fork, its trace and
/// what comes back.
#[derive(Clone)]
struct Origin {
    fork: Fork,
    carry: Arc<Carry>,
    merge_back: Option<&'static Location<'static>>,
}

/// Wraps the consumer of the closures that follow `with_context`: every folder (one per
/// piece of the split iterator) gathers the changes of its items in a context of its own,
/// and the reducers merge those in the iterator's order.
struct ContextConsumer<C> {
    base: C,
    origin: Origin,
}

impl<T, C: Consumer<T>> Consumer<T> for ContextConsumer<C> {
    type Folder = ContextFolder<C::Folder>;
    type Reducer = ContextReducer<C::Reducer>;
    type Result = (C::Result, Context);

    fn split_at(self, index: usize) -> (Self, Self, Self::Reducer) {
        let ContextConsumer { base, origin } = self;
        let (left, right, reducer) = base.split_at(index);
        (
            ContextConsumer { base: left, origin: origin.clone() },
            ContextConsumer { base: right, origin: origin.clone() },
            ContextReducer { base: reducer, origin },
        )
    }

    fn into_folder(self) -> Self::Folder {
        let ContextConsumer { base, origin } = self;
        let mut start = origin.fork.context();
        start.run(|| origin.carry.adopt());
        let mut gathered = start.clone();
        // A folder may call user code when it is made (the identity of `fold`).
        let base = gathered.run(|| origin.carry.run(|| base.into_folder()));
        ContextFolder { base, start, gathered, origin }
    }

    fn full(&self) -> bool {
        self.base.full()
    }
}

impl<T, C: UnindexedConsumer<T>> UnindexedConsumer<T> for ContextConsumer<C> {
    fn split_off_left(&self) -> Self {
        ContextConsumer { base: self.base.split_off_left(), origin: self.origin.clone() }
    }

    fn to_reducer(&self) -> Self::Reducer {
        ContextReducer { base: self.base.to_reducer(), origin: self.origin.clone() }
    }
}

/// Runs each item in a fresh copy of the fork and gathers its changes.
struct ContextFolder<F> {
    base: F,
    /// The items' starting context: one copy per folder, each item runs in a clone of it.
    start: Context,
    /// The fork's copy that collects the changes of this folder's items, in order.
    gathered: Context,
    origin: Origin,
}

impl<T, F: Folder<T>> Folder<T> for ContextFolder<F> {
    type Result = (F::Result, Context);

    fn consume(self, item: T) -> Self {
        let ContextFolder { base, start, mut gathered, origin } = self;
        let mut context = start.clone();
        let base = context.run(|| origin.carry.run(move || base.consume(item)));
        // Most items change nothing: the check is O(1) then, and spares the join.
        if !Changes::between(&start, &context).is_empty() {
            gathered.run(|| deliver(origin.fork.clone(), context, origin.merge_back));
        }
        ContextFolder { base, start, gathered, origin }
    }

    fn complete(self) -> Self::Result {
        let ContextFolder { base, mut gathered, origin, .. } = self;
        let result = gathered.run(|| origin.carry.run(move || base.complete()));
        (result, gathered)
    }

    fn full(&self) -> bool {
        self.base.full()
    }
}

/// Reduces two halves inside the left half's context, after merging the right half's
/// changes into it.
struct ContextReducer<R> {
    base: R,
    origin: Origin,
}

impl<T, R: Reducer<T>> Reducer<(T, Context)> for ContextReducer<R> {
    fn reduce(self, (left, mut gathered): (T, Context), (right, later): (T, Context)) -> (T, Context) {
        let ContextReducer { base, origin } = self;
        let result = gathered.run(move || {
            deliver(origin.fork, later, origin.merge_back);
            origin.carry.run(move || base.reduce(left, right))
        });
        (result, gathered)
    }
}
