//! What every child form takes along besides the context, with the features `tracing` and
//! `opentelemetry`: the spawner's tracing span, entered around each poll of a task and
//! around a closure, and the child's [`TRACE_CONTEXT`],
//! attached as OpenTelemetry's current context at the same places.
//!
//! The facade's spawns wrap the child in a [`Carry`] before they hand it to the runtime, so
//! the runtime knows nothing of tracing or OpenTelemetry. Without either feature a `Carry`
//! is empty and the wrappers are the identity.

use std::cell::Cell;

#[cfg(feature = "opentelemetry")]
use opentelemetry::trace::TraceContextExt;

#[cfg(feature = "opentelemetry")]
use crate::opentelemetry::TRACE_CONTEXT;

thread_local! {
    /// How many [`untraced`] calls are running on this thread.
    static UNTRACED: Cell<usize> = const { Cell::new(0) };
}

/// Runs `f`, in which every child started on this thread (with [`spawn`](crate::spawn),
/// [`spawn_blocking`](crate::spawn_blocking), [`spawn_local`](crate::spawn_local),
/// [`JoinSet`](crate::JoinSet), [`thread`](crate::thread), the `rayon` adapters) starts
/// outside the caller's trace: in no tracing span (feature `tracing`) and with an empty
/// OpenTelemetry context as its `TRACE_CONTEXT` (feature `opentelemetry`). Its variables
/// are copied as usual. The one opt-out for every child form: for a background job that
/// outlives the request, whose events and spans should not hang under it.
///
/// A carried child holds the spawner's span, as `tracing`'s `Instrument` does: the span
/// closes (its `on_close`, its duration) when the last child that carries it ends, not when
/// the spawner leaves it. A long-lived worker started from a request keeps the request's
/// span open, and every span it starts is the request's child, for as long as it runs:
/// start it under `untraced`.
///
/// It nests, and applies to the children started while `f` runs, on this thread: not to
/// those a future returned by `f` starts when it is awaited (`untraced(|| async {
/// spawn(job) })` opts nothing out). An untraced child's own children carry what it runs
/// in: no span and an empty trace context, unless it starts its own. A `#[sync_endpoint]`
/// function is awaited in place, as the caller's own work, and always runs in its span. A
/// local task enters no span of its own then, but is polled by its `LocalSet`: if that is
/// polled inside a span, the task sees it, as tokio's own local tasks would.
///
/// A span entered with `Span::enter` and held across an `.await` stays entered on the
/// thread while the task is suspended, and whatever else that thread polls meanwhile, an
/// untraced child too, runs in it: enter spans with `Instrument` or `in_scope`, as `tracing`
/// advises.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// # let _subscriber = tracing::subscriber::set_default(
/// #     tracing_subscriber::fmt().with_writer(std::io::sink).finish(),
/// # );
/// fn span_name() -> Option<&'static str> {
///     tracing::Span::current().metadata().map(|span| span.name())
/// }
/// let span = tracing::info_span!("request");
/// let (job, cleanup) = span.in_scope(|| {
///     let job = contextvars::spawn(async { span_name() });
///     (job, contextvars::untraced(|| contextvars::spawn(async { span_name() })))
/// });
/// assert_eq!(job.await.unwrap(), Some("request"));
/// assert_eq!(cleanup.await.unwrap(), None); // ran in no span
/// # }
/// ```
pub fn untraced<R>(f: impl FnOnce() -> R) -> R {
    struct Leave;
    impl Drop for Leave {
        fn drop(&mut self) {
            UNTRACED.with(|depth| depth.set(depth.get() - 1));
        }
    }
    UNTRACED.with(|depth| depth.set(depth.get() + 1));
    let _leave = Leave;
    f()
}

#[cfg(any(feature = "tracing", feature = "opentelemetry"))]
fn is_untraced() -> bool {
    UNTRACED.with(Cell::get) > 0
}

/// The spawner's trace, taken at the spawn: what the child enters. Empty without the
/// features (then only the rayon adapters use it, and only with `rayon`).
#[derive(Clone, Debug)]
#[cfg_attr(not(any(feature = "tracing", feature = "opentelemetry")), allow(dead_code))]
pub(crate) struct Carry {
    #[cfg(feature = "tracing")]
    span: tracing::Span,
    /// The OpenTelemetry context the child starts with, when it is not the spawner's
    /// `TRACE_CONTEXT`: one the spawner's code attached itself (a span it started), or an
    /// empty one under [`untraced`].
    #[cfg(feature = "opentelemetry")]
    trace: Option<opentelemetry::Context>,
}

#[cfg_attr(not(any(feature = "tracing", feature = "opentelemetry")), allow(dead_code))]
impl Carry {
    /// The current trace, on the spawner's thread.
    pub(crate) fn capture() -> Carry {
        #[cfg(any(feature = "tracing", feature = "opentelemetry"))]
        let untraced = is_untraced();
        Carry {
            #[cfg(feature = "tracing")]
            span: if untraced { tracing::Span::none() } else { tracing::Span::current() },
            #[cfg(feature = "opentelemetry")]
            trace: if untraced { Some(opentelemetry::Context::new()) } else { attached_trace() },
        }
    }

    /// Runs `f` as the child's first code, in the child's context: gives the child its
    /// starting trace context, then runs `f` like [`Carry::run`].
    #[cfg(feature = "rayon")]
    pub(crate) fn start<R>(&self, f: impl FnOnce() -> R) -> R {
        self.adopt();
        self.run(f)
    }

    /// Sets the child's `TRACE_CONTEXT` when it starts from another than the spawner's.
    #[cfg(feature = "rayon")]
    pub(crate) fn adopt(&self) {
        #[cfg(feature = "opentelemetry")]
        if let Some(trace) = &self.trace {
            TRACE_CONTEXT.set(trace.clone());
        }
    }

    /// [`adopt`](Carry::adopt) for a carry that starts one child: moves the trace context in
    /// instead of cloning it, and does nothing the next time.
    #[cfg(any(feature = "tracing", feature = "opentelemetry"))]
    fn adopt_once(&mut self) {
        #[cfg(feature = "opentelemetry")]
        if let Some(trace) = self.trace.take() {
            TRACE_CONTEXT.set(trace);
        }
    }

    /// Runs `f` inside the span, with the current context's `TRACE_CONTEXT` attached as
    /// OpenTelemetry's current context (when it is set: otherwise a run costs one lookup).
    pub(crate) fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        #[cfg(feature = "opentelemetry")]
        let _attached = TRACE_CONTEXT.is_set().then(|| TRACE_CONTEXT.get().attach());
        #[cfg(feature = "tracing")]
        let _entered = self.span.enter();
        f()
    }
}

/// Runs `f`, a rayon wait (`join`, `scope`) that may run other jobs on this thread, with an
/// empty OpenTelemetry context attached: a foreign job run meanwhile is not the waiting
/// closure's child (the jobs `contextvars` runs attach their own). A tracing span cannot
/// be put aside: such a job runs in the waiting closure's span, as with rayon alone.
#[cfg(feature = "rayon")]
pub(crate) fn aside<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(feature = "opentelemetry")]
    let _cleared = opentelemetry::Context::new().attach();
    f()
}

/// The spawner's OpenTelemetry current context, when its code attached one of its own over
/// `TRACE_CONTEXT` (a span it started with `tracer.in_span`, a future it wrapped with
/// `FutureExt::with_context`): the child then follows that span, not the request's.
#[cfg(feature = "opentelemetry")]
pub(crate) fn attached_trace() -> Option<opentelemetry::Context> {
    opentelemetry::Context::map_current(|current| {
        let span = current.span();
        let attached = span.span_context();
        let own = attached.is_valid() && TRACE_CONTEXT.with(|trace| trace.span().span_context() != attached);
        own.then(|| current.clone())
    })
}

#[cfg(all(feature = "tokio", any(feature = "tracing", feature = "opentelemetry")))]
pin_project_lite::pin_project! {
    /// A child task's future with its [`Carry`]: each poll runs inside it, and so does the
    /// drop of the future (a value dropped by a finished, aborted or cancelled task).
    pub(crate) struct Carried<F> {
        // `None` once dropped: dropped in place, inside the carry.
        #[pin]
        inner: Option<F>,
        // Its trace context is moved into the task at the first poll.
        carry: Carry,
    }

    impl<F> PinnedDrop for Carried<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            let mut inner = this.inner;
            this.carry.run(|| inner.set(None));
        }
    }
}

#[cfg(all(feature = "tokio", any(feature = "tracing", feature = "opentelemetry")))]
impl<F: std::future::Future> std::future::Future for Carried<F> {
    type Output = F::Output;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<F::Output> {
        let this = self.project();
        this.carry.adopt_once();
        let inner = this.inner.as_pin_mut().expect("a carried future is polled only until it is dropped");
        this.carry.run(|| inner.poll(cx))
    }
}

/// `future` with the current trace: each of its polls runs inside it.
#[cfg(all(feature = "tokio", any(feature = "tracing", feature = "opentelemetry")))]
pub(crate) fn future<F: std::future::Future>(future: F) -> Carried<F> {
    Carried { inner: Some(future), carry: Carry::capture() }
}

/// Without `tracing` and `opentelemetry` there is nothing to carry.
#[cfg(all(feature = "tokio", not(any(feature = "tracing", feature = "opentelemetry"))))]
pub(crate) fn future<F: std::future::Future>(future: F) -> F {
    future
}

/// `f` with the current trace: it runs inside it.
#[cfg(any(feature = "tracing", feature = "opentelemetry"))]
pub(crate) fn closure<R>(f: impl FnOnce() -> R) -> impl FnOnce() -> R {
    let mut carry = Carry::capture();
    move || {
        carry.adopt_once();
        carry.run(f)
    }
}

/// Without `tracing` and `opentelemetry` there is nothing to carry.
#[cfg(not(any(feature = "tracing", feature = "opentelemetry")))]
pub(crate) fn closure<R>(f: impl FnOnce() -> R) -> impl FnOnce() -> R {
    f
}
