//! `std::thread::spawn` and `std::thread::scope`, with a copy of the current context in the
//! new thread and its changes merged back at the join.
//!
//! A thread started with `std::thread::spawn` begins in an empty context: it sees every
//! variable at its default. One started here begins in a copy of the spawner's context
//! (without the variables declared `inherit(false)`), and its join brings its changes back
//! into the context current on the joining thread, like the joins of tasks:
//! [`join`](JoinHandle::join) what its `#[propagate(back)]` functions changed,
//! [`merge_back`](JoinHandle::merge_back) all of them. A thread that panicked delivers
//! nothing. With the features `tracing` and `opentelemetry`, the thread also runs inside the
//! spawner's tracing span and trace context, like [`spawn`](crate::spawn) (opt out with
//! [`untraced`](crate::untraced)).
//!
//! ```
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

pub use contextvars_runtime::thread::{JoinHandle, ScopedJoinHandle};

use crate::carry;

/// `std::thread::spawn`, with a copy of the current context (see the [module](self) docs).
///
/// ```
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
    contextvars_runtime::thread::spawn(carry::closure(f))
}

/// `std::thread::scope`, whose threads start with a copy of the context at their spawn.
///
/// `f` gets a [`Scope`] (by value: it is `Copy`, so a spawned thread can capture it to spawn
/// more). Every thread is joined before `scope` returns, as with `std`; only the joins made
/// through their [`ScopedJoinHandle`]s bring changes back, into the context current on the
/// joining thread.
///
/// ```
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
    contextvars_runtime::thread::scope(|inner| f(Scope { inner }))
}

/// The scope of [`scope`]: spawns threads that may borrow from outside it.
///
/// ```
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
    inner: contextvars_runtime::thread::Scope<'scope, 'env>,
}

impl<'scope> Scope<'scope, '_> {
    /// Spawns a scoped thread in a copy of the current context (`std::thread::Scope::spawn`),
    /// with the spawner's trace like [`spawn`].
    ///
    /// ```
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
        self.inner.spawn(carry::closure(f))
    }
}

impl fmt::Debug for Scope<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.inner, f)
    }
}
