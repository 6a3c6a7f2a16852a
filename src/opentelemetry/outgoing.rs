//! The client side: the propagation headers on every request, and what comes back merged
//! into the caller.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use tower_layer::Layer;
use tower_service::Service;

use super::call::{self, Call};

/// A tower [`Layer`] for HTTP clients (hyper, tonic, any `tower::Service` of
/// `http::Request`s): [`inject`](super::inject)s the caller's context into every request, and
/// merges the [`BACK_HEADER`](super::BACK_HEADER) of the response into the caller's context
/// like a join merges a child: the caller's context when the request left is the base.
///
/// The headers are written where the service's `call` runs, and what comes back lands where
/// its response future is polled. So put the layer outside any layer that calls the inner
/// service from a task of its own, such as tower's `Buffer` (whose worker task has no
/// context: the request would leave with no variable). A tonic `Channel` buffers inside
/// itself, so the layer goes around the channel.
///
/// ```
/// use contextvars::{context_var, opentelemetry::OutgoingLayer};
/// use tower::{Layer, Service, ServiceExt, service_fn};
///
/// #[context_var(baggage = "user.id")]
/// static USER: Option<String>;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// // A stand-in for a hyper client: answers with the baggage it received.
/// let transport = service_fn(|request: http::Request<()>| async move {
///     let baggage = request.headers()["baggage"].to_str().unwrap().to_owned();
///     Ok::<_, std::convert::Infallible>(http::Response::new(baggage))
/// });
/// let mut client = OutgoingLayer::new().layer(transport);
/// USER.set(Some("ada".into()));
/// let response = client.ready().await.unwrap().call(http::Request::new(())).await.unwrap();
/// assert_eq!(response.body(), "user.id=ada");
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct OutgoingLayer {
    _private: (),
}

impl OutgoingLayer {
    /// The layer.
    ///
    /// ```
    /// let layer = contextvars::opentelemetry::OutgoingLayer::new();
    /// # let _ = layer;
    /// ```
    pub fn new() -> OutgoingLayer {
        OutgoingLayer::default()
    }
}

impl<S> Layer<S> for OutgoingLayer {
    type Service = OutgoingService<S>;

    fn layer(&self, inner: S) -> OutgoingService<S> {
        OutgoingService { inner }
    }
}

/// The service made by [`OutgoingLayer`].
///
/// ```
/// use contextvars::opentelemetry::{OutgoingLayer, OutgoingService};
/// use tower::{Layer, service_fn};
/// let client: OutgoingService<_> = OutgoingLayer::new().layer(service_fn(|_: http::Request<()>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(()))
/// }));
/// # let _ = client;
/// ```
#[derive(Clone, Debug)]
pub struct OutgoingService<S> {
    inner: S,
}

impl<S, B, R> Service<http::Request<B>> for OutgoingService<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = OutgoingFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> OutgoingFuture<S::Future> {
        let call = Call::start(request.headers_mut());
        OutgoingFuture { inner: self.inner.call(request), call }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`OutgoingService`]: merges what came back into the context
    /// that polls it (the caller's) when the response is ready.
    pub struct OutgoingFuture<F> {
        #[pin]
        inner: F,
        call: Call,
    }
}

impl<F, R, E> Future for OutgoingFuture<F>
where
    F: Future<Output = Result<http::Response<R>, E>>,
{
    type Output = F::Output;

    /// # Panics
    ///
    /// When the response carries variables back and the future is polled in a tokio task
    /// without a context of its own (see [`ContextVar::set`](crate::ContextVar::set)).
    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let this = self.project();
        let mut response = std::task::ready!(this.inner.poll(cx))?;
        if call::first_merge(response.extensions_mut()) {
            this.call.finish(response.headers());
        }
        Poll::Ready(Ok(response))
    }
}
