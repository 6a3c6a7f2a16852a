//! The facade's `JoinSet`: the runtime's, whose spawns carry the spawner's trace.

use std::fmt;
use std::future::Future;

use contextvars_runtime::AbortHandle;

use crate::{JoinError, carry};

/// A set of tasks awaited in the order they finish, like `tokio::task::JoinSet`, whose
/// children start with a copy of the context at their own spawn (and, with the features
/// `tracing` and `opentelemetry`, inside the spawner's span and trace context, like
/// [`spawn`](crate::spawn); opt out with [`untraced`](crate::untraced)).
///
/// [`join_next`](JoinSet::join_next) delivers what a plain `.await` of a
/// [`JoinHandle`](crate::JoinHandle) delivers (the changes of the child's
/// `#[propagate(back)]` functions); [`merge_back_next`](JoinSet::merge_back_next) delivers all
/// of that child's changes. Each child is merged against the context it was forked from,
/// into the context current where the join is awaited, so siblings that all changed a
/// variable are combined by its `merge` function. A panicked or aborted child delivers
/// nothing. Dropping the set aborts every task in it, as tokio's does.
///
/// ```
/// use contextvars::{ContextVar, JoinSet};
/// fn sum(base: &u32, parent: &u32, child: &u32) -> u32 { parent + child - base }
/// static ROWS: ContextVar<u32> = ContextVar::new("ROWS", || 0).merge(sum);
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let mut set = JoinSet::new();
/// for shard in 0..4 {
///     set.spawn(async move { ROWS.set(ROWS.get() + 10); shard });
/// }
/// while let Some(shard) = set.merge_back_next().await {
///     shard.unwrap();
/// }
/// assert_eq!(ROWS.get(), 40);
/// # }
/// ```
pub struct JoinSet<T> {
    inner: contextvars_runtime::JoinSet<T>,
}

impl<T> JoinSet<T> {
    /// An empty set.
    ///
    /// ```
    /// let set = contextvars::JoinSet::<()>::new();
    /// assert!(set.is_empty());
    /// ```
    pub fn new() -> JoinSet<T> {
        JoinSet { inner: contextvars_runtime::JoinSet::new() }
    }

    /// How many tasks are in the set, finished or not, not yet joined.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut set = contextvars::JoinSet::new();
    /// set.spawn(async {});
    /// assert_eq!(set.len(), 1);
    /// set.join_next().await;
    /// assert_eq!(set.len(), 0);
    /// # }
    /// ```
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether the set holds no task.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut set = contextvars::JoinSet::new();
    /// set.spawn(async {});
    /// assert!(!set.is_empty());
    /// # }
    /// ```
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }
}

impl<T: 'static> JoinSet<T> {
    /// Aborts every task in the set. They stay in it until joined: each join then gives a
    /// cancelled [`JoinError`] (or the output of a task that had already finished), and a
    /// cancelled one delivers nothing.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut set = contextvars::JoinSet::new();
    /// set.spawn(std::future::pending::<()>());
    /// set.abort_all();
    /// assert!(set.join_next().await.unwrap().unwrap_err().is_cancelled());
    /// # }
    /// ```
    pub fn abort_all(&mut self) {
        self.inner.abort_all();
    }

    /// Aborts every task and waits until all have stopped. Nothing is delivered, not even
    /// from the tasks that had already finished.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut set = contextvars::JoinSet::new();
    /// set.spawn(std::future::pending::<()>());
    /// set.shutdown().await;
    /// assert!(set.is_empty());
    /// # }
    /// ```
    pub async fn shutdown(&mut self) {
        self.inner.shutdown().await;
    }

    /// Waits for the next task to finish and delivers, into the awaiting context, what a
    /// plain `.await` of its [`JoinHandle`](crate::JoinHandle) would: the final values of the
    /// variables its `#[propagate(back)]` functions changed. `None` when the set is empty.
    /// Cancel safe, like tokio's: if the future is dropped before it is ready, no task is
    /// taken out of the set and nothing is delivered.
    ///
    /// ```
    /// use contextvars::{ContextVar, JoinSet};
    /// static N: ContextVar<u32> = ContextVar::new("N", || 0);
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut set = JoinSet::new();
    /// set.spawn(async { N.set(1); "done" });
    /// assert_eq!(set.join_next().await.unwrap().unwrap(), "done");
    /// assert_eq!(N.get(), 0); // not changed by a #[propagate(back)] function: stays behind
    /// assert!(set.join_next().await.is_none());
    /// # }
    /// ```
    ///
    /// In code without a context of its own (a plain `tokio::spawn` task) it delivers
    /// nothing: there is nowhere to deliver to.
    pub async fn join_next(&mut self) -> Option<Result<T, JoinError>> {
        self.inner.join_next().await
    }

    /// Waits for the next task to finish and merges all its changes into the awaiting
    /// context, against the context it was forked from (see
    /// [`Changes::apply`](crate::Changes::apply)). `None` when the set is empty. Cancel safe,
    /// like [`join_next`](JoinSet::join_next).
    ///
    /// ```
    /// use contextvars::{ContextVar, JoinSet};
    /// static N: ContextVar<u32> = ContextVar::new("N", || 0);
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut set = JoinSet::new();
    /// set.spawn_blocking(|| N.set(2));
    /// set.merge_back_next().await.unwrap().unwrap();
    /// assert_eq!(N.get(), 2);
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// In code without a context of its own (a plain `tokio::spawn` task) if a change is to
    /// land, naming the fix and the line that called this (the panic itself comes from a poll,
    /// which no caller's location reaches).
    #[track_caller]
    pub fn merge_back_next(&mut self) -> impl Future<Output = Option<Result<T, JoinError>>> + '_ {
        self.inner.merge_back_next()
    }

    /// Spawns `future` on the current tokio runtime, in a copy of the current context (see
    /// [`spawn`](crate::spawn)), and adds it to the set.
    ///
    /// ```
    /// use contextvars::{ContextVar, JoinSet};
    /// static USER: ContextVar<&'static str> = ContextVar::new("USER", || "nobody");
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut set = JoinSet::new();
    /// USER.set("ada");
    /// set.spawn(async { USER.get() });
    /// USER.set("bob"); // the child was forked at its spawn
    /// assert_eq!(set.join_next().await.unwrap().unwrap(), "ada");
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, like `tokio::task::JoinSet::spawn`.
    #[track_caller]
    pub fn spawn<F>(&mut self, future: F) -> AbortHandle
    where
        F: Future<Output = T> + Send + 'static,
        T: Send,
    {
        self.inner.spawn(carry::future(future))
    }

    /// Runs `f` on tokio's blocking pool in a copy of the current context (see
    /// [`spawn_blocking`](crate::spawn_blocking)), and adds it to the set.
    ///
    /// ```
    /// use contextvars::{ContextVar, JoinSet};
    /// static USER: ContextVar<&'static str> = ContextVar::new("USER", || "nobody");
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut set = JoinSet::new();
    /// USER.set("ada");
    /// set.spawn_blocking(|| USER.get());
    /// assert_eq!(set.join_next().await.unwrap().unwrap(), "ada");
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    #[track_caller]
    pub fn spawn_blocking<F>(&mut self, f: F) -> AbortHandle
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send,
    {
        self.inner.spawn_blocking(carry::closure(f))
    }

    /// Spawns a `!Send` future on the current `LocalSet`, in a copy of the current context
    /// (see [`spawn_local`](crate::spawn_local)), and adds it to the set.
    ///
    /// ```
    /// use std::rc::Rc;
    /// use contextvars::{ContextVar, JoinSet};
    /// static USER: ContextVar<&'static str> = ContextVar::new("USER", || "nobody");
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// tokio::task::LocalSet::new().run_until(async {
    ///     let mut set = JoinSet::new();
    ///     let not_send = Rc::new(());
    ///     set.spawn_local(async move { let _kept = not_send; USER.set("ada") });
    ///     set.merge_back_next().await.unwrap().unwrap();
    ///     assert_eq!(USER.get(), "ada");
    /// }).await;
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// Outside a `LocalSet`.
    #[track_caller]
    pub fn spawn_local<F>(&mut self, future: F) -> AbortHandle
    where
        F: Future<Output = T> + 'static,
    {
        self.inner.spawn_local(carry::future(future))
    }
}

impl<T> Default for JoinSet<T> {
    fn default() -> JoinSet<T> {
        JoinSet::new()
    }
}

impl<T> fmt::Debug for JoinSet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.inner, f)
    }
}
