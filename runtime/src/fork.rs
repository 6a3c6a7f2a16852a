//! `Fork`: the copy taken where work crosses into another task, thread or pool, and the one
//! delivery every join goes through.

use std::fmt;
use std::panic::Location;

use crate::context::Context;
use crate::current;
use crate::join::{self, Deliver};
use crate::value::{self, Map};

/// The current context, copied where work crosses into another task, thread or pool, and
/// the join that later brings that work's changes back: what [`spawn`](crate::spawn),
/// [`thread::spawn`](crate::thread::spawn) and the other boundaries of this crate use, for
/// an executor or a pool they do not cover.
///
/// [`context`](Fork::context) is the child's starting context (the fork without the
/// variables declared `inherit(false)`); run the child in it (with [`Context::run`] or
/// [`Context::scope`]), then hand its final context to [`join`](Fork::join) (what a plain
/// `.await` of a [`JoinHandle`](crate::JoinHandle) delivers: the changes of its
/// `#[propagate(back)]` functions) or [`merge_back`](Fork::merge_back) (all its changes).
/// Both merge into the context current where they are called, with the fork as the base of
/// the three-way merge (see [`Changes::apply`](crate::Changes::apply)). A child that
/// panicked should deliver nothing: drop its context instead.
///
/// ```
/// # extern crate contextvars_runtime as contextvars;
/// use contextvars::{ContextVar, Fork};
/// static USER: ContextVar<&'static str> = ContextVar::new("USER", || "nobody");
///
/// USER.set("ada");
/// let fork = Fork::current();
/// let mut child = fork.context();
/// let seen = std::thread::spawn(move || {
///     let seen = child.run(|| { let seen = USER.get(); USER.set("bob"); seen });
///     (seen, child)
/// });
/// let (seen, child) = seen.join().unwrap();
/// assert_eq!(seen, "ada");
/// fork.merge_back(child);
/// assert_eq!(USER.get(), "bob");
/// ```
///
/// Cloning is O(1); one fork can be the base of several children's joins.
#[derive(Clone)]
pub struct Fork {
    /// The parent's context at the fork: the base of the three-way merge.
    fork: Map,
    /// The child's starting context, `fork` without the variables that are not inherited;
    /// `None` when that is `fork` itself.
    start: Option<Map>,
}

impl Fork {
    /// Forks the current context, in O(1) (plus a copy of the paths to the variables that are
    /// not inherited, if any are set).
    ///
    /// ```
    /// # extern crate contextvars_runtime as contextvars;
    /// use contextvars::{ContextVar, Fork};
    /// static N: ContextVar<u8> = ContextVar::new("N", || 0);
    /// N.set(1);
    /// let fork = Fork::current();
    /// N.set(2);
    /// assert_eq!(fork.context().get(&N), 1);
    /// ```
    pub fn current() -> Fork {
        let fork = current::snapshot();
        let start = fork.without(value::NOT_INHERITED);
        Fork { fork, start }
    }

    /// A new copy of the child's starting context: the fork without the variables declared
    /// `inherit(false)`.
    ///
    /// ```
    /// # extern crate contextvars_runtime as contextvars;
    /// use contextvars::{ContextVar, Fork};
    /// static TXN: ContextVar<Option<u32>> = ContextVar::new("TXN", || None).inherit(false);
    /// TXN.set(Some(7));
    /// assert_eq!(Fork::current().context().get(&TXN), None);
    /// ```
    pub fn context(&self) -> Context {
        Context { map: self.start.as_ref().unwrap_or(&self.fork).clone(), id: 0 }
    }

    /// `f` as a child that runs elsewhere (a thread, the blocking pool): it runs in a copy of
    /// the starting context and hands back its output with its final context, for the join.
    pub(crate) fn child<F, T>(&self, f: F) -> impl FnOnce() -> (T, Context) + Send + use<F, T>
    where
        F: FnOnce() -> T + Send,
    {
        let mut context = self.context();
        move || (context.run(f), context)
    }

    /// Merges into the current context what a plain `.await` of a
    /// [`JoinHandle`](crate::JoinHandle) delivers: the final values of the variables marked
    /// in the child (those a `#[propagate(back)]` function, or a join's delivery, changed),
    /// marked again here so that they keep flowing up through the joins above.
    ///
    /// ```
    /// # extern crate contextvars_runtime as contextvars;
    /// use contextvars::{ContextVar, Fork};
    /// static N: ContextVar<u8> = ContextVar::new("N", || 0);
    /// let fork = Fork::current();
    /// let mut child = fork.context();
    /// child.run(|| N.set(1)); // not marked: stays in the child
    /// fork.join(child);
    /// assert_eq!(N.get(), 0);
    /// ```
    ///
    /// In code without a context of its own (a plain `tokio::spawn` task, a rayon job outside
    /// any context) it delivers nothing: there is nowhere to deliver to.
    pub fn join(self, child: Context) {
        self.deliver(child.into_map(), Deliver::Marked, None);
    }

    /// Merges all the child's changes into the current context (see
    /// [`Changes::apply`](crate::Changes::apply)).
    ///
    /// ```
    /// # extern crate contextvars_runtime as contextvars;
    /// use contextvars::{ContextVar, Fork};
    /// fn sum(base: &u32, parent: &u32, child: &u32) -> u32 { parent + child - base }
    /// static ROWS: ContextVar<u32> = ContextVar::new("ROWS", || 0).merge(sum);
    ///
    /// let fork = Fork::current();
    /// let children: Vec<_> = (0..3).map(|_| {
    ///     let mut child = fork.context();
    ///     child.run(|| ROWS.set(ROWS.get() + 1));
    ///     child
    /// }).collect();
    /// for child in children {
    ///     fork.clone().merge_back(child);
    /// }
    /// assert_eq!(ROWS.get(), 3);
    /// ```
    ///
    /// # Panics
    ///
    /// In code without a context of its own (a plain `tokio::spawn` task, a rayon job outside
    /// any context) if a change is to land, at the caller's line, naming the fix.
    #[track_caller]
    pub fn merge_back(self, child: Context) {
        self.deliver(child.into_map(), Deliver::All, None);
    }

    /// [`merge_back`](Fork::merge_back) for an adapter whose merge was asked for at
    /// `called_at` and runs elsewhere: a panic for lack of a context names that line.
    #[doc(hidden)]
    pub fn merge_back_called_at(self, child: Context, called_at: &'static Location<'static>) {
        self.deliver(child.into_map(), Deliver::All, Some(called_at));
    }

    /// Merges `what` of the changes a child made between its start and `end` into the current
    /// context, through the one delivery of every join ([`join::deliver`]).
    #[track_caller]
    pub(crate) fn deliver(self, end: Map, what: Deliver, called_at: Option<&'static Location<'static>>) {
        join::deliver(self.fork, self.start, end, what, called_at);
    }
}

impl fmt::Debug for Fork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fork").field("fork", &Context { map: self.fork.clone(), id: 0 }).finish()
    }
}
