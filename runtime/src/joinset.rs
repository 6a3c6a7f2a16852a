//! `JoinSet<T>`: tokio's `JoinSet`, each child forked from the context at its own spawn and
//! merged back against that fork.

use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll, ready};

use pin_project_lite::pin_project;
use tokio::task::{AbortHandle, JoinError};

use crate::fork::Fork;
use crate::join::Deliver;
use crate::scope::Scope;
use crate::value::Map;

/// A set of tasks awaited in the order they finish, like `tokio::task::JoinSet`, whose
/// children start with a copy of the context at their own spawn.
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
/// # extern crate contextvars_runtime as contextvars;
/// use contextvars::{ContextVar, JoinSet};
/// fn sum(base: &u32, parent: &u32, child: &u32) -> u32 { parent + child - base }
/// static ROWS: ContextVar<u32> = ContextVar::new("ROWS", || 0).merge(sum);
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let mut set = JoinSet::new();
/// for shard in 0..4 {
///     set.spawn(async move { ROWS.set(ROWS.get() + 10); shard });
/// }
/// while let Some(shard) = set.merge_back_next().await {
///     shard.unwrap();
/// }
/// assert_eq!(ROWS.get(), 40);
/// # });
/// ```
pub struct JoinSet<T> {
    inner: tokio::task::JoinSet<Finished<T>>,
}

/// What a child hands back: its output, its final context and the fork it started from.
struct Finished<T> {
    output: T,
    end: Map,
    fork: Fork,
}

impl<T> JoinSet<T> {
    /// An empty set.
    ///
    /// ```
    /// # extern crate contextvars_runtime as contextvars;
    /// let set = contextvars::JoinSet::<()>::new();
    /// assert!(set.is_empty());
    /// ```
    pub fn new() -> JoinSet<T> {
        JoinSet { inner: tokio::task::JoinSet::new() }
    }

    /// How many tasks are in the set, finished or not, not yet joined.
    ///
    /// ```
    /// # extern crate contextvars_runtime as contextvars;
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let mut set = contextvars::JoinSet::new();
    /// set.spawn(async {});
    /// assert_eq!(set.len(), 1);
    /// set.join_next().await;
    /// assert_eq!(set.len(), 0);
    /// # });
    /// ```
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether the set holds no task.
    ///
    /// ```
    /// # extern crate contextvars_runtime as contextvars;
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let mut set = contextvars::JoinSet::new();
    /// set.spawn(async {});
    /// assert!(!set.is_empty());
    /// # });
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
    /// # extern crate contextvars_runtime as contextvars;
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let mut set = contextvars::JoinSet::new();
    /// set.spawn(std::future::pending::<()>());
    /// set.abort_all();
    /// assert!(set.join_next().await.unwrap().unwrap_err().is_cancelled());
    /// # });
    /// ```
    pub fn abort_all(&mut self) {
        self.inner.abort_all();
    }

    /// Aborts every task and waits until all have stopped. Nothing is delivered, not even
    /// from the tasks that had already finished.
    ///
    /// ```
    /// # extern crate contextvars_runtime as contextvars;
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let mut set = contextvars::JoinSet::new();
    /// set.spawn(std::future::pending::<()>());
    /// set.shutdown().await;
    /// assert!(set.is_empty());
    /// # });
    /// ```
    pub async fn shutdown(&mut self) {
        self.inner.shutdown().await;
    }

    /// Waits for the next task to finish and delivers, into the awaiting context, what a
    /// plain `.await` of its [`JoinHandle`](crate::JoinHandle) would: the final values of the
    /// variables its `#[propagate(back)]` functions changed. `None` when the set is empty.
    ///
    /// Cancel safe, like tokio's: if the future is dropped before it is ready, no task is
    /// taken out of the set and nothing is delivered.
    ///
    /// ```
    /// # extern crate contextvars_runtime as contextvars;
    /// use contextvars::{ContextVar, JoinSet};
    /// static N: ContextVar<u32> = ContextVar::new("N", || 0);
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let mut set = JoinSet::new();
    /// set.spawn(async { N.set(1); "done" });
    /// assert_eq!(set.join_next().await.unwrap().unwrap(), "done");
    /// assert_eq!(N.get(), 0); // not changed by a #[propagate(back)] function: stays behind
    /// assert!(set.join_next().await.is_none());
    /// # });
    /// ```
    ///
    /// In code without a context of its own (a plain `tokio::spawn` task) it delivers
    /// nothing: there is nowhere to deliver to.
    pub async fn join_next(&mut self) -> Option<Result<T, JoinError>> {
        std::future::poll_fn(|cx| self.poll_join_next(cx, Deliver::Marked, None)).await
    }

    /// Waits for the next task to finish and merges all its changes into the awaiting
    /// context, against the context it was forked from (see
    /// [`Changes::apply`](crate::Changes::apply)). `None` when the set is empty. Cancel safe,
    /// like [`join_next`](JoinSet::join_next).
    ///
    /// ```
    /// # extern crate contextvars_runtime as contextvars;
    /// use contextvars::{ContextVar, JoinSet};
    /// static N: ContextVar<u32> = ContextVar::new("N", || 0);
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let mut set = JoinSet::new();
    /// set.spawn_blocking(|| N.set(2));
    /// set.merge_back_next().await.unwrap().unwrap();
    /// assert_eq!(N.get(), 2);
    /// # });
    /// ```
    ///
    /// # Panics
    ///
    /// In code without a context of its own (a plain `tokio::spawn` task) if a change is to
    /// land, naming the fix and the line that called this (the panic itself comes from a poll,
    /// which no caller's location reaches).
    #[track_caller]
    pub fn merge_back_next(&mut self) -> impl Future<Output = Option<Result<T, JoinError>>> + '_ {
        let called_at = Location::caller();
        std::future::poll_fn(move |cx| self.poll_join_next(cx, Deliver::All, Some(called_at)))
    }

    /// Polls for the next finished task and delivers its changes (all of them, or the
    /// marked ones) in the same poll, so that a dropped join loses nothing.
    fn poll_join_next(
        &mut self,
        cx: &mut TaskContext<'_>,
        what: Deliver,
        called_at: Option<&'static Location<'static>>,
    ) -> Poll<Option<Result<T, JoinError>>> {
        let finished = match ready!(self.inner.poll_join_next(cx)) {
            None => return Poll::Ready(None),
            Some(Err(error)) => return Poll::Ready(Some(Err(error))),
            Some(Ok(finished)) => finished,
        };
        let Finished { output, end, fork } = finished;
        fork.deliver(end, what, called_at);
        Poll::Ready(Some(Ok(output)))
    }

    /// Spawns `future` on the current tokio runtime, in a copy of the current context (see
    /// [`spawn`](crate::spawn)), and adds it to the set.
    ///
    /// ```
    /// # extern crate contextvars_runtime as contextvars;
    /// use contextvars::{ContextVar, JoinSet};
    /// static USER: ContextVar<&'static str> = ContextVar::new("USER", || "nobody");
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let mut set = JoinSet::new();
    /// USER.set("ada");
    /// set.spawn(async { USER.get() });
    /// USER.set("bob"); // the child was forked at its spawn
    /// assert_eq!(set.join_next().await.unwrap().unwrap(), "ada");
    /// # });
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
        self.inner.spawn(Child::new(future))
    }

    /// Runs `f` on tokio's blocking pool in a copy of the current context (see
    /// [`spawn_blocking`](crate::spawn_blocking)), and adds it to the set.
    ///
    /// ```
    /// # extern crate contextvars_runtime as contextvars;
    /// use contextvars::{ContextVar, JoinSet};
    /// static USER: ContextVar<&'static str> = ContextVar::new("USER", || "nobody");
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let mut set = JoinSet::new();
    /// USER.set("ada");
    /// set.spawn_blocking(|| USER.get());
    /// assert_eq!(set.join_next().await.unwrap().unwrap(), "ada");
    /// # });
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
        let fork = Fork::current();
        let child = fork.child(f);
        self.inner.spawn_blocking(move || {
            let (output, end) = child();
            Finished { output, end: end.into_map(), fork }
        })
    }

    /// Spawns a `!Send` future on the current [`LocalSet`](tokio::task::LocalSet), in a copy
    /// of the current context (see [`spawn_local`](crate::spawn_local)), and adds it to the set.
    ///
    /// ```
    /// # extern crate contextvars_runtime as contextvars;
    /// use std::rc::Rc;
    /// use contextvars::{ContextVar, JoinSet};
    /// static USER: ContextVar<&'static str> = ContextVar::new("USER", || "nobody");
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// tokio::task::LocalSet::new().run_until(async {
    ///     let mut set = JoinSet::new();
    ///     let not_send = Rc::new(());
    ///     set.spawn_local(async move { let _kept = not_send; USER.set("ada") });
    ///     set.merge_back_next().await.unwrap().unwrap();
    ///     assert_eq!(USER.get(), "ada");
    /// }).await;
    /// # });
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
        self.inner.spawn_local(Child::new(future))
    }
}

impl<T> Default for JoinSet<T> {
    fn default() -> JoinSet<T> {
        JoinSet::new()
    }
}

impl<T> fmt::Debug for JoinSet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinSet").field("len", &self.len()).finish()
    }
}

pin_project! {
    /// A child's future: runs in its own context and hands back that context and its fork.
    struct Child<F> {
        #[pin]
        scope: Scope<F>,
        fork: Option<Fork>,
    }
}

impl<F: Future> Child<F> {
    fn new(future: F) -> Child<F> {
        let fork = Fork::current();
        Child { scope: fork.context().scope(future), fork: Some(fork) }
    }
}

impl<F: Future> Future for Child<F> {
    type Output = Finished<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let (output, end) = ready!(this.scope.poll_with_context(cx));
        let fork = this.fork.take().expect("a child is not polled after it finished");
        Poll::Ready(Finished { output, end: end.into_map(), fork })
    }
}
