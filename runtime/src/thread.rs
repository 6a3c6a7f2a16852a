//! `std::thread::spawn` and `std::thread::scope`, with a copy of the current context in the
//! new thread and its changes merged back at the join.
//!
//! A thread started with `std::thread::spawn` begins in an empty context: it sees every
//! variable at its default. One started here begins in a copy of the spawner's context
//! (without the variables declared `inherit(false)`), and its join brings its changes back
//! into the context current on the joining thread, like the joins of tasks:
//! [`join`](JoinHandle::join) what its `#[propagate(back)]` functions changed,
//! [`merge_back`](JoinHandle::merge_back) all of them. A thread that panicked delivers
//! nothing.
//!
//! ```
//! # extern crate contextvars_runtime as contextvars;
//! use contextvars::{ContextVar, thread};
//! static USER: ContextVar<&'static str> = ContextVar::new("USER", || "nobody");
//!
//! USER.set("ada");
//! let seen = thread::spawn(|| USER.get()).join().unwrap();
//! assert_eq!(seen, "ada");
//!
//! thread::spawn(|| USER.set("bob")).merge_back().unwrap();
//! assert_eq!(USER.get(), "bob");
//! ```

use std::fmt;

use crate::context::Context;
use crate::fork::Fork;
use crate::join::Deliver;

/// `std::thread::spawn`, with a copy of the current context (see the [module](self) docs).
///
/// ```
/// # extern crate contextvars_runtime as contextvars;
/// use contextvars::{ContextVar, thread};
/// static N: ContextVar<u32> = ContextVar::new("N", || 0);
/// N.set(1);
/// assert_eq!(thread::spawn(|| N.get()).join().unwrap(), 1);
/// assert_eq!(std::thread::spawn(|| N.get()).join().unwrap(), 0); // std's starts empty
/// ```
///
/// # Panics
///
/// If the operating system cannot create the thread, like `std::thread::spawn`.
#[track_caller]
pub fn spawn<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let fork = Fork::current();
    let inner = std::thread::spawn(fork.child(f));
    JoinHandle { inner, fork }
}

/// A handle to a thread started by [`spawn`]: joining it brings its changes back.
///
/// Dropping it detaches the thread, as with `std`; its changes are then lost. It can be
/// joined on another thread than the one that spawned it: the changes land there.
///
/// ```
/// # extern crate contextvars_runtime as contextvars;
/// use contextvars::{ContextVar, thread};
/// static N: ContextVar<u32> = ContextVar::new("N", || 0);
///
/// let handle = thread::spawn(|| N.set(1));
/// let joined_elsewhere = std::thread::spawn(move || {
///     handle.merge_back().unwrap();
///     N.get()
/// });
/// assert_eq!(joined_elsewhere.join().unwrap(), 1);
/// assert_eq!(N.get(), 0); // the spawner's context is left alone
/// ```
pub struct JoinHandle<T> {
    inner: std::thread::JoinHandle<(T, Context)>,
    fork: Fork,
}

impl<T> JoinHandle<T> {
    /// Waits for the thread and merges the final values of the variables its
    /// `#[propagate(back)]` functions changed into the current context (what a plain
    /// `.await` of a task's [`JoinHandle`](crate::JoinHandle) does). `Err` with the panic's
    /// payload if the thread panicked: nothing is delivered then.
    ///
    /// ```
    /// # extern crate contextvars_runtime as contextvars;
    /// use contextvars::{ContextVar, thread};
    /// static N: ContextVar<u32> = ContextVar::new("N", || 0);
    /// thread::spawn(|| N.set(1)).join().unwrap();
    /// assert_eq!(N.get(), 0); // not changed by a #[propagate(back)] function: stays in the thread
    /// assert!(thread::spawn(|| panic!("boom")).join().is_err());
    /// ```
    ///
    /// In code without a context of its own (a plain `tokio::spawn` task, a rayon job outside
    /// any context) it delivers nothing: there is nowhere to deliver to.
    pub fn join(self) -> std::thread::Result<T> {
        self.join_with(Deliver::Marked)
    }

    /// Waits for the thread and merges all its changes into the current context (see
    /// [`Changes::apply`](crate::Changes::apply)). `Err` with the panic's payload if the
    /// thread panicked: nothing is delivered then.
    ///
    /// ```
    /// # extern crate contextvars_runtime as contextvars;
    /// use contextvars::{ContextVar, thread};
    /// static N: ContextVar<u32> = ContextVar::new("N", || 0);
    /// thread::spawn(|| N.set(1)).merge_back().unwrap();
    /// assert_eq!(N.get(), 1);
    /// ```
    ///
    /// # Panics
    ///
    /// In code without a context of its own (a plain `tokio::spawn` task, a rayon job outside
    /// any context) if a change is to land, at the caller's line, naming the fix.
    #[track_caller]
    pub fn merge_back(self) -> std::thread::Result<T> {
        self.join_with(Deliver::All)
    }

    /// The thread (`std::thread::JoinHandle::thread`).
    ///
    /// ```
    /// # extern crate contextvars_runtime as contextvars;
    /// let handle = contextvars::thread::spawn(|| std::thread::current().id());
    /// let id = handle.thread().id();
    /// assert_eq!(handle.join().unwrap(), id);
    /// ```
    pub fn thread(&self) -> &std::thread::Thread {
        self.inner.thread()
    }

    /// Whether the thread's closure has returned (`std::thread::JoinHandle::is_finished`).
    ///
    /// ```
    /// # extern crate contextvars_runtime as contextvars;
    /// let (go, wait) = std::sync::mpsc::channel::<()>();
    /// let handle = contextvars::thread::spawn(move || wait.recv().unwrap());
    /// assert!(!handle.is_finished());
    /// go.send(()).unwrap();
    /// handle.join().unwrap();
    /// ```
    pub fn is_finished(&self) -> bool {
        self.inner.is_finished()
    }

    #[track_caller]
    fn join_with(self, what: Deliver) -> std::thread::Result<T> {
        let (output, end) = self.inner.join()?;
        self.fork.deliver(end.into_map(), what, None);
        Ok(output)
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle").field("thread", self.thread()).finish_non_exhaustive()
    }
}

/// `std::thread::scope`, whose threads start with a copy of the context at their spawn.
///
/// `f` gets a [`Scope`] (by value: it is `Copy`, so a spawned thread can capture it to spawn
/// more). Every thread is joined before `scope` returns, as with `std`; only the joins made
/// through their [`ScopedJoinHandle`]s bring changes back, into the context current on the
/// joining thread.
///
/// ```
/// # extern crate contextvars_runtime as contextvars;
/// use contextvars::{ContextVar, thread};
/// fn sum(base: &u32, parent: &u32, child: &u32) -> u32 { parent + child - base }
/// static ROWS: ContextVar<u32> = ContextVar::new("ROWS", || 0).merge(sum);
///
/// let shards = [3, 4, 5];
/// thread::scope(|s| {
///     let handles: Vec<_> = shards.iter().map(|n| s.spawn(move || ROWS.set(ROWS.get() + n))).collect();
///     for handle in handles {
///         handle.merge_back().unwrap();
///     }
/// });
/// assert_eq!(ROWS.get(), 12);
/// ```
///
/// # Panics
///
/// If a thread that was not joined panicked, like `std::thread::scope`.
#[track_caller]
pub fn scope<'env, F, T>(f: F) -> T
where
    F: for<'scope> FnOnce(Scope<'scope, 'env>) -> T,
{
    std::thread::scope(|inner| f(Scope { inner }))
}

/// The scope of [`scope`]: spawns threads that may borrow from outside it.
///
/// ```
/// # extern crate contextvars_runtime as contextvars;
/// use contextvars::{ContextVar, thread};
/// static N: ContextVar<u32> = ContextVar::new("N", || 0);
///
/// N.set(1);
/// let seen = thread::scope(|s| {
///     // A scoped thread spawns another from its own context.
///     s.spawn(move || { N.set(2); s.spawn(|| N.get()).join().unwrap() }).join().unwrap()
/// });
/// assert_eq!(seen, 2);
/// ```
#[derive(Clone, Copy)]
pub struct Scope<'scope, 'env> {
    inner: &'scope std::thread::Scope<'scope, 'env>,
}

impl<'scope, 'env> Scope<'scope, 'env> {
    /// Spawns a scoped thread in a copy of the current context (`std::thread::Scope::spawn`).
    ///
    /// ```
    /// # extern crate contextvars_runtime as contextvars;
    /// use contextvars::{ContextVar, thread};
    /// static N: ContextVar<u32> = ContextVar::new("N", || 0);
    /// N.set(1);
    /// let seen = thread::scope(|s| s.spawn(|| N.get()).join().unwrap());
    /// assert_eq!(seen, 1);
    /// ```
    ///
    /// # Panics
    ///
    /// If the operating system cannot create the thread.
    #[track_caller]
    pub fn spawn<F, T>(self, f: F) -> ScopedJoinHandle<'scope, T>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        let fork = Fork::current();
        let inner = self.inner.spawn(fork.child(f));
        ScopedJoinHandle { inner, fork }
    }
}

impl fmt::Debug for Scope<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope").finish_non_exhaustive()
    }
}

/// A handle to a thread started by [`Scope::spawn`]: joining it brings its changes back.
/// A thread only the scope joins (its handle dropped) brings nothing back.
///
/// ```
/// # extern crate contextvars_runtime as contextvars;
/// use contextvars::{ContextVar, thread};
/// static N: ContextVar<u32> = ContextVar::new("N", || 0);
///
/// thread::scope(|s| {
///     let _dropped = s.spawn(|| N.set(1));
/// });
/// assert_eq!(N.get(), 0);
/// ```
pub struct ScopedJoinHandle<'scope, T> {
    inner: std::thread::ScopedJoinHandle<'scope, (T, Context)>,
    fork: Fork,
}

impl<T> ScopedJoinHandle<'_, T> {
    /// Waits for the thread and merges the final values of the variables its
    /// `#[propagate(back)]` functions changed into the current context (see [`JoinHandle::join`]).
    ///
    /// ```
    /// # extern crate contextvars_runtime as contextvars;
    /// use contextvars::{ContextVar, thread};
    /// static N: ContextVar<u32> = ContextVar::new("N", || 0);
    /// thread::scope(|s| s.spawn(|| N.set(1)).join().unwrap());
    /// assert_eq!(N.get(), 0);
    /// ```
    ///
    /// Like [`JoinHandle::join`], it delivers nothing in code without a context of its own.
    pub fn join(self) -> std::thread::Result<T> {
        self.join_with(Deliver::Marked)
    }

    /// Waits for the thread and merges all its changes into the current context (see
    /// [`JoinHandle::merge_back`]).
    ///
    /// ```
    /// # extern crate contextvars_runtime as contextvars;
    /// use contextvars::{ContextVar, thread};
    /// static N: ContextVar<u32> = ContextVar::new("N", || 0);
    /// thread::scope(|s| s.spawn(|| N.set(1)).merge_back().unwrap());
    /// assert_eq!(N.get(), 1);
    /// ```
    ///
    /// # Panics
    ///
    /// Like [`JoinHandle::merge_back`].
    #[track_caller]
    pub fn merge_back(self) -> std::thread::Result<T> {
        self.join_with(Deliver::All)
    }

    /// The thread (`std::thread::ScopedJoinHandle::thread`).
    ///
    /// ```
    /// # extern crate contextvars_runtime as contextvars;
    /// contextvars::thread::scope(|s| {
    ///     let handle = s.spawn(|| std::thread::current().id());
    ///     let id = handle.thread().id();
    ///     assert_eq!(handle.join().unwrap(), id);
    /// });
    /// ```
    pub fn thread(&self) -> &std::thread::Thread {
        self.inner.thread()
    }

    /// Whether the thread's closure has returned.
    ///
    /// ```
    /// # extern crate contextvars_runtime as contextvars;
    /// contextvars::thread::scope(|s| {
    ///     let (go, wait) = std::sync::mpsc::channel::<()>();
    ///     let handle = s.spawn(move || wait.recv().unwrap());
    ///     assert!(!handle.is_finished());
    ///     go.send(()).unwrap();
    ///     handle.join().unwrap();
    /// });
    /// ```
    pub fn is_finished(&self) -> bool {
        self.inner.is_finished()
    }

    #[track_caller]
    fn join_with(self, what: Deliver) -> std::thread::Result<T> {
        let (output, end) = self.inner.join()?;
        self.fork.deliver(end.into_map(), what, None);
        Ok(output)
    }
}

impl<T> fmt::Debug for ScopedJoinHandle<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopedJoinHandle").field("thread", self.thread()).finish_non_exhaustive()
    }
}
