//! With the feature `tracing`: the spawns carry the current tracing span into the child, as
//! they carry the context (the opt-outs are in [`crate::tracing`]).

use std::future::Future;

use tracing::Instrument;

use crate::JoinHandle;

/// [`contextvars_runtime::spawn`]: `tokio::spawn` with a copy of the current context, and,
/// with the feature `tracing`, inside the current tracing span (events of the task are the
/// span's children, as if it ran where it was spawned). Opt out with
/// [`tracing::spawn_without_span`](crate::tracing::spawn_without_span).
///
/// ```
/// use contextvars::ContextVar;
/// static USER: ContextVar<Option<String>> = ContextVar::new("USER", || None);
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// USER.set(Some("ada".into()));
/// let span = tracing::info_span!("request");
/// let _entered = span.enter();
/// let seen = contextvars::spawn(async { USER.get() }).await.unwrap();
/// assert_eq!(seen.as_deref(), Some("ada"));
/// # }
/// ```
#[track_caller]
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    contextvars_runtime::spawn(future.instrument(tracing::Span::current()))
}

/// [`contextvars_runtime::spawn_blocking`]: `tokio::task::spawn_blocking` with a copy of the
/// current context, and, with the feature `tracing`, inside the current tracing span. Opt
/// out with [`tracing::spawn_blocking_without_span`](crate::tracing::spawn_blocking_without_span).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let span = tracing::info_span!("request");
/// let _entered = span.enter();
/// let answer = contextvars::spawn_blocking(|| 6 * 7).await.unwrap();
/// assert_eq!(answer, 42);
/// # }
/// ```
#[track_caller]
pub fn spawn_blocking<F, R>(f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let span = tracing::Span::current();
    contextvars_runtime::spawn_blocking(move || span.in_scope(f))
}

/// What `#[sync_endpoint]` expands to with the feature `tracing`: the blocking function runs
/// inside the caller's span.
#[doc(hidden)]
pub async fn run_sync_endpoint<F, R>(f: F) -> R
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let span = tracing::Span::current();
    contextvars_runtime::run_sync_endpoint(move || span.in_scope(f)).await
}
