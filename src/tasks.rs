//! The task spawns of the facade: the runtime's, with the spawner's trace carried into the
//! child (see [`untraced`](crate::untraced) for the opt-out).

use std::future::Future;

use crate::{JoinHandle, carry};

/// `tokio::spawn` with a copy of the current context (see
/// [`boundaries`](crate::boundaries) for what comes back). With the feature `tracing`, the
/// task runs inside the current tracing span (its events are the span's children, as if it
/// ran where it was spawned); with `opentelemetry`, its
/// [`TRACE_CONTEXT`](crate::opentelemetry::TRACE_CONTEXT) is OpenTelemetry's current context
/// at each poll. Opt out with [`untraced`](crate::untraced).
///
/// ```
/// use contextvars::ContextVar;
/// static USER: ContextVar<Option<String>> = ContextVar::new("USER", || None);
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// USER.set(Some("ada".into()));
/// let span = tracing::info_span!("request");
/// let task = span.in_scope(|| contextvars::spawn(async { USER.get() })); // runs in `request`
/// assert_eq!(task.await.unwrap().as_deref(), Some("ada"));
/// # }
/// ```
///
/// # Panics
///
/// Outside a tokio runtime, like `tokio::spawn`.
#[track_caller]
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    contextvars_runtime::spawn(carry::future(future))
}

/// `tokio::task::spawn_blocking` with a copy of the current context; with `tracing` and
/// `opentelemetry`, `f` runs inside the current span and trace context, like [`spawn`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let span = tracing::info_span!("request");
/// let answer = span.in_scope(|| contextvars::spawn_blocking(|| 6 * 7)); // runs in `request`
/// assert_eq!(answer.await.unwrap(), 42);
/// # }
/// ```
///
/// # Panics
///
/// Outside a tokio runtime.
#[track_caller]
pub fn spawn_blocking<F, R>(f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    contextvars_runtime::spawn_blocking(carry::closure(f))
}

/// `tokio::task::spawn_local` with a copy of the current context: a `!Send` future on the
/// current `LocalSet`; with `tracing` and `opentelemetry`, inside the current span and trace
/// context, like [`spawn`].
///
/// ```
/// use std::rc::Rc;
/// use contextvars::ContextVar;
/// static USER: ContextVar<&'static str> = ContextVar::new("USER", || "nobody");
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// tokio::task::LocalSet::new().run_until(async {
///     USER.set("ada");
///     let not_send = Rc::new(());
///     let seen = contextvars::spawn_local(async move { let _kept = not_send; USER.get() });
///     assert_eq!(seen.await.unwrap(), "ada");
/// }).await;
/// # }
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
    contextvars_runtime::spawn_local(carry::future(future))
}

/// What `#[sync_endpoint]` expands to: the blocking function runs with the caller's trace.
#[doc(hidden)]
pub async fn run_sync_endpoint<F, R>(f: F) -> R
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    contextvars_runtime::run_sync_endpoint(carry::closure(f)).await
}
