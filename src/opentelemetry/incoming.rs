//! The server side: a [`ContextLayer`] that also reads the propagation headers, and answers
//! with the variables that come back over the wire.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use tower_layer::Layer;
use tower_service::Service;

use crate::Context;
use crate::tower::{ContextLayer, ContextService};

/// [`ContextLayer`] plus the headers: each request runs in a fresh context into which
/// [`extract`](super::extract) read its `baggage`, `traceparent` and `tracestate` headers;
/// its response carries, in [`BACK_HEADER`](super::BACK_HEADER), the `back_from_remote`
/// variables the request changed. Use it in place of `ContextLayer`, outermost.
///
/// While the request's future is polled, the incoming trace context is also OpenTelemetry's
/// current context (`opentelemetry::Context::current()`), so a tracer called from the
/// handler's own future starts its spans under the caller's. The tasks and threads spawned
/// from the request with `contextvars` inherit [`TRACE_CONTEXT`](super::TRACE_CONTEXT), and
/// it is OpenTelemetry's current context there too (see [`spawn`](crate::spawn)).
///
/// The values sent back are those of the moment the response's head is ready: a change
/// made later, while a streamed body is written, cannot travel in a header that has left.
///
/// ```
/// use axum::{Router, routing::get};
/// use contextvars::{context_var, opentelemetry::IncomingLayer};
///
/// #[context_var(baggage = "user.id")]
/// static USER: Option<String>;
///
/// async fn hello() -> String {
///     format!("hello, {}", USER.get().unwrap_or_default()) // from the caller's baggage
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use http_body_util::BodyExt;
/// use tower::ServiceExt;
///
/// let app: Router = Router::new().route("/", get(hello)).layer(IncomingLayer::new());
///
/// let request = http::Request::get("/").header("baggage", "user.id=ada").body(axum::body::Body::empty()).unwrap();
/// let body = app.oneshot(request).await.unwrap().into_body().collect().await.unwrap().to_bytes();
/// assert_eq!(body, "hello, ada");
/// # }
/// ```
#[derive(Clone, Debug, Default)]
pub struct IncomingLayer {
    context: ContextLayer,
}

impl IncomingLayer {
    /// Every request starts from the empty context, then the headers are read into it.
    ///
    /// ```
    /// let layer = contextvars::opentelemetry::IncomingLayer::new();
    /// # let _ = layer;
    /// ```
    pub fn new() -> IncomingLayer {
        IncomingLayer { context: ContextLayer::new() }
    }

    /// Every request starts from a copy of `base` (see [`ContextLayer::with_base`]), then the
    /// headers are read into it.
    ///
    /// ```
    /// use contextvars::{Context, opentelemetry::IncomingLayer};
    /// let layer = IncomingLayer::with_base(Context::new());
    /// # let _ = layer;
    /// ```
    pub fn with_base(base: Context) -> IncomingLayer {
        IncomingLayer { context: ContextLayer::with_base(base) }
    }
}

impl<S> Layer<S> for IncomingLayer {
    type Service = ContextService<IncomingService<S>>;

    fn layer(&self, inner: S) -> Self::Service {
        self.context.layer(IncomingService { inner })
    }
}

/// The inner part of [`IncomingLayer`]'s service, run in the request's context: reads the
/// headers, then calls the service it wraps.
///
/// ```
/// use contextvars::opentelemetry::IncomingLayer;
/// use tower::{Layer, service_fn};
/// let service = IncomingLayer::new().layer(service_fn(|_: http::Request<()>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(()))
/// }));
/// # let _ = service;
/// ```
#[derive(Clone, Debug)]
pub struct IncomingService<S> {
    inner: S,
}

impl<S, B, R> Service<http::Request<B>> for IncomingService<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = IncomingFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> IncomingFuture<S::Future> {
        super::extract(request.headers());
        // What the request changes after this point may go back to the caller.
        let start = Context::current();
        IncomingFuture { inner: self.inner.call(request), start }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`IncomingService`]: adds the
    /// [`BACK_HEADER`](super::BACK_HEADER) once the response is ready.
    pub struct IncomingFuture<F> {
        #[pin]
        inner: F,
        start: Context,
    }
}

impl<F, R, E> Future for IncomingFuture<F>
where
    F: Future<Output = Result<http::Response<R>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let this = self.project();
        // Code in the request's own future that asks the OpenTelemetry API for the current
        // context (a tracer starting a span) finds the caller's trace as parent. Only when a
        // trace came in: otherwise a poll costs one lookup.
        let _attached = super::TRACE_CONTEXT.is_set().then(|| super::TRACE_CONTEXT.get().attach());
        let mut response = std::task::ready!(this.inner.poll(cx))?;
        // Polled inside the request's scope: the current context is the request's.
        if let Some(back) = super::back_header(this.start) {
            response.headers_mut().insert(super::BACK_HEADER, back);
        }
        Poll::Ready(Ok(response))
    }
}
