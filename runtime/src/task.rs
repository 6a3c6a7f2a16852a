//! Crossing tasks and threads on tokio: copy down at the spawn, merge back at the join.

use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll, ready};

use pin_project_lite::pin_project;

use crate::context::Context;
use crate::current;
use crate::fork::Fork;
use crate::join::Deliver;
use crate::scope::Scope;

/// Why a task did not finish: it panicked or was aborted (tokio's own type).
pub use tokio::task::JoinError;

/// `tokio::spawn`, with a copy of the current context.
///
/// The task starts with a snapshot of the spawner's context, without the variables declared
/// `inherit(false)`. What it sets stays in its own context: awaiting the [`JoinHandle`]
/// delivers the final values of the variables its `#[propagate(back)]` functions changed,
/// and [`merge_back`](JoinHandle::merge_back) delivers all its changes.
///
/// Must be called from within a tokio runtime, like `tokio::spawn`.
///
/// ```
/// # extern crate contextvars_runtime as contextvars;
/// use contextvars::{ContextVar, spawn};
/// static USER: ContextVar<&'static str> = ContextVar::new("USER", || "nobody");
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// USER.set("ada");
/// let seen = spawn(async { USER.get() }).await.unwrap();
/// assert_eq!(seen, "ada");
///
/// spawn(async { USER.set("bob") }).merge_back().await.unwrap();
/// assert_eq!(USER.get(), "bob");
/// # });
/// ```
#[track_caller]
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let fork = Fork::current();
    let tracked = Tracked { scope: fork.context().scope(future) };
    JoinHandle { inner: tokio::spawn(tracked), fork: Some(fork) }
}

/// `tokio::task::spawn_blocking`, with a copy of the current context.
///
/// The closure runs on tokio's blocking pool inside a snapshot of the caller's context (see
/// [`spawn`]). The pool thread's own context is untouched: the next job it runs sees none
/// of these values.
///
/// ```
/// # extern crate contextvars_runtime as contextvars;
/// use contextvars::{ContextVar, spawn_blocking};
/// static USER: ContextVar<&'static str> = ContextVar::new("USER", || "nobody");
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// spawn_blocking(|| USER.set("ada")).merge_back().await.unwrap();
/// assert_eq!(USER.get(), "ada");
/// # });
/// ```
#[track_caller]
pub fn spawn_blocking<F, R>(f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let fork = Fork::current();
    let inner = tokio::task::spawn_blocking(fork.child(f));
    JoinHandle { inner, fork: Some(fork) }
}

/// `tokio::task::spawn_local`, with a copy of the current context: a `!Send` future on the
/// current [`LocalSet`](tokio::task::LocalSet).
///
/// The task starts with a snapshot of the spawner's context, like [`spawn`], and its
/// [`JoinHandle`] brings its changes back the same way.
///
/// ```
/// # extern crate contextvars_runtime as contextvars;
/// use std::rc::Rc;
/// use contextvars::{ContextVar, spawn_local};
/// static USER: ContextVar<&'static str> = ContextVar::new("USER", || "nobody");
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let local = tokio::task::LocalSet::new();
/// local.run_until(async {
///     USER.set("ada");
///     let not_send = Rc::new(());
///     let seen = spawn_local(async move { let _kept = not_send; USER.get() }).await.unwrap();
///     assert_eq!(seen, "ada");
///     spawn_local(async { USER.set("bob") }).merge_back().await.unwrap();
///     assert_eq!(USER.get(), "bob");
/// }).await;
/// # });
/// ```
///
/// # Panics
///
/// Outside a `LocalSet`, like `tokio::task::spawn_local`.
#[track_caller]
pub fn spawn_local<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let fork = Fork::current();
    let tracked = Tracked { scope: fork.context().scope(future) };
    JoinHandle { inner: tokio::task::spawn_local(tracked), fork: Some(fork) }
}

pin_project! {
    /// A spawned task's future: hands back the task's final context with its output.
    struct Tracked<F> {
        #[pin]
        scope: Scope<F>,
    }
}

impl<F: Future> Future for Tracked<F> {
    type Output = (F::Output, Context);

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        self.project().scope.poll_with_context(cx)
    }
}

/// A handle to a task started by [`spawn`], [`spawn_blocking`] or [`spawn_local`].
///
/// Awaiting it gives the output (or the [`JoinError`] of a panic or an abort) and delivers,
/// for each variable marked in the child (where a `#[propagate(back)]` function's changes,
/// or a join's delivery of them, landed), the child's final value, unless it is the value
/// the child started with; the awaiting context marks what it received, so it flows on up.
/// [`merge_back`](Self::merge_back) delivers all of the child's changes. Both merge three
/// ways into the context of the code that awaits, against the parent's context at the spawn
/// (see [`Changes::apply`](crate::Changes::apply) for the rules). A panicked or aborted child
/// delivers nothing.
///
/// In a task started with a raw `tokio::spawn`, which has no context of its own to take the
/// changes, a plain `.await` returns the output and delivers nothing, and `merge_back()`
/// panics with the fix (start that task with [`spawn`], or wrap it in a `Scope`).
///
/// Dropping the handle detaches the task, as with tokio; its changes are then lost.
pub struct JoinHandle<T> {
    inner: tokio::task::JoinHandle<(T, Context)>,
    /// The parent's context at the spawn; taken by the join.
    fork: Option<Fork>,
}

impl<T> JoinHandle<T> {
    /// A future that waits for the child and merges all its changes (not only those of
    /// `#[propagate(back)]` functions) into the awaiting context; those marked in the child
    /// are marked there too.
    ///
    /// ```
    /// # extern crate contextvars_runtime as contextvars;
    /// use contextvars::{ContextVar, spawn};
    /// static N: ContextVar<u32> = ContextVar::new("N", || 0);
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let plain = spawn(async { N.set(1) }).await.unwrap();
    /// assert_eq!(N.get(), 0); // a plain await brings back only #[propagate(back)] changes
    /// spawn(async { N.set(2) }).merge_back().await.unwrap();
    /// assert_eq!(N.get(), 2);
    /// # drop(plain);
    /// # });
    /// ```
    ///
    /// # Panics
    ///
    /// Here, or when the join is polled, in code without a context of its own to merge into
    /// (a plain `tokio::spawn` task, a `tokio::task::JoinSet`): await it in a task started by
    /// [`spawn`] (or `contextvars::JoinSet`), or wrap the awaiting future in
    /// [`Context::current().scope(..)`](Context::scope).
    #[track_caller]
    pub fn merge_back(self) -> MergeBack<T> {
        let caller = Location::caller();
        if !current::has_context() {
            merge_back_without_context(caller);
        }
        MergeBack { handle: self, caller }
    }

    /// Aborts the task (see `tokio::task::JoinHandle::abort`). Awaiting it then gives a
    /// cancelled `JoinError`, and nothing flows back.
    ///
    /// ```
    /// # extern crate contextvars_runtime as contextvars;
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let handle = contextvars::spawn(std::future::pending::<()>());
    /// handle.abort();
    /// assert!(handle.await.unwrap_err().is_cancelled());
    /// # });
    /// ```
    pub fn abort(&self) {
        self.inner.abort();
    }

    /// A handle that aborts the task without owning it (tokio's type): the join then delivers
    /// nothing.
    ///
    /// ```
    /// # extern crate contextvars_runtime as contextvars;
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let handle = contextvars::spawn(std::future::pending::<()>());
    /// let abort = handle.abort_handle();
    /// abort.abort();
    /// assert!(handle.await.unwrap_err().is_cancelled());
    /// # });
    /// ```
    pub fn abort_handle(&self) -> tokio::task::AbortHandle {
        self.inner.abort_handle()
    }

    /// The task's tokio id, the one `tokio::task::id()` returns inside it.
    ///
    /// ```
    /// # extern crate contextvars_runtime as contextvars;
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let handle = contextvars::spawn(async { tokio::task::id() });
    /// let id = handle.id();
    /// assert_eq!(handle.await.unwrap(), id);
    /// # });
    /// ```
    pub fn id(&self) -> tokio::task::Id {
        self.inner.id()
    }

    /// Whether the task has finished.
    ///
    /// ```
    /// # extern crate contextvars_runtime as contextvars;
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let handle = contextvars::spawn(std::future::pending::<()>());
    /// assert!(!handle.is_finished());
    /// # handle.abort();
    /// # });
    /// ```
    pub fn is_finished(&self) -> bool {
        self.inner.is_finished()
    }

    /// Polls the child and, once it finished, delivers `what` of its changes into the current
    /// context.
    ///
    /// Code without a context of its own has nowhere to take changes to: there a plain
    /// `.await` delivers nothing, and a `merge_back` (called at `caller`) panics.
    fn poll_join(
        &mut self,
        cx: &mut TaskContext<'_>,
        what: Deliver,
        caller: Option<&'static Location<'static>>,
    ) -> Poll<Result<T, JoinError>> {
        let (output, end) = match ready!(Pin::new(&mut self.inner).poll(cx)) {
            Ok(finished) => finished,
            Err(error) => return Poll::Ready(Err(error)),
        };
        let fork = self.fork.take().expect("`JoinHandle` polled after completion");
        if !current::has_context() {
            current::drop_outside((fork, end));
            if let Some(caller) = caller {
                merge_back_without_context(caller);
            }
            return Poll::Ready(Ok(output));
        }
        fork.deliver(end.into_map(), what, None);
        Poll::Ready(Ok(output))
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        self.poll_join(cx, Deliver::Marked, None)
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle").field("finished", &self.is_finished()).finish_non_exhaustive()
    }
}

/// The future of [`JoinHandle::merge_back`]: the child's output, with all its changes merged
/// into the awaiting context.
#[must_use = "futures do nothing unless polled"]
pub struct MergeBack<T> {
    handle: JoinHandle<T>,
    /// Where `merge_back` was called, for the panic of a join polled without a context.
    caller: &'static Location<'static>,
}

/// A `merge_back` awaited by code without a context to merge into.
#[cold]
#[track_caller]
fn merge_back_without_context(caller: &'static Location<'static>) -> ! {
    panic!(
        "contextvars: `.merge_back()` (called at {caller}) awaited in a task without a context of \
         its own: there is no context to merge the child's changes into. Await it in a task \
         started by `contextvars::spawn` or collected in a `contextvars::JoinSet` (not \
         `tokio::spawn` or `tokio::task::JoinSet`), or wrap the awaiting future in \
         `contextvars::Context::current().scope(..)`; a plain `.await` of the handle returns \
         the output without merging"
    )
}

impl<T> MergeBack<T> {
    /// Aborts the task (see [`JoinHandle::abort`]).
    ///
    /// ```
    /// # extern crate contextvars_runtime as contextvars;
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let join = contextvars::spawn(std::future::pending::<()>()).merge_back();
    /// join.abort();
    /// assert!(join.await.unwrap_err().is_cancelled());
    /// # });
    /// ```
    pub fn abort(&self) {
        self.handle.abort();
    }
}

impl<T> Future for MergeBack<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let caller = self.caller;
        self.handle.poll_join(cx, Deliver::All, Some(caller))
    }
}

impl<T> fmt::Debug for MergeBack<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MergeBack").field("handle", &self.handle).finish()
    }
}

/// Runs `future` to completion on the current tokio runtime from synchronous code, in the
/// thread's current context, and leaves its changes there (Python's asgiref
/// `async_to_sync`).
///
/// Meant for a closure run by [`spawn_blocking`]: the changes then reach the async caller
/// through [`merge_back`](JoinHandle::merge_back), so a value set three levels down (async,
/// sync, async) is seen at the top.
///
/// ```
/// # extern crate contextvars_runtime as contextvars;
/// use contextvars::{ContextVar, block_on, spawn_blocking};
/// static USER: ContextVar<&'static str> = ContextVar::new("USER", || "nobody");
///
/// # tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().unwrap().block_on(async {
/// spawn_blocking(|| block_on(async { USER.set("ada") })).merge_back().await.unwrap();
/// assert_eq!(USER.get(), "ada");
/// # });
/// ```
///
/// # Panics
///
/// Inside async code (a future polled by [`spawn`] or a [`Scope`]): blocking there would stall
/// the worker thread; `.await` the future instead. Also outside a tokio runtime.
#[track_caller]
pub fn block_on<F: Future>(future: F) -> F::Output {
    if current::in_async() {
        panic!(
            "contextvars::block_on called from async code: it would block a runtime worker thread. \
             `.await` the future instead, or call block_on from a `contextvars::spawn_blocking` closure"
        );
    }
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => handle.block_on(future),
        Err(_) => panic!(
            "contextvars::block_on called outside a tokio runtime: call it from a \
             `contextvars::spawn_blocking` closure, or enter a runtime first"
        ),
    }
}

/// What `#[sync_endpoint]` expands to: runs `f` on the blocking pool with a copy of the
/// context, merges all its changes back, and resumes its panic in the caller.
#[doc(hidden)]
pub async fn run_sync_endpoint<F, R>(f: F) -> R
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    match spawn_blocking(f).merge_back().await {
        Ok(output) => output,
        Err(error) => match error.try_into_panic() {
            Ok(payload) => std::panic::resume_unwind(payload),
            Err(error) => panic!("the blocking task of a #[sync_endpoint] did not finish: {error}"),
        },
    }
}
