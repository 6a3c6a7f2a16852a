//! A tower [`Layer`] that runs every request in a context of its own (feature `tower`).
//!
//! Put [`ContextLayer`] outside everything that reads or sets context variables for a
//! request: middleware and handlers (with axum, `Router::layer` applies it to every route;
//! wrapping the whole `Router` as a service also covers routing). Each request then starts
//! from the same base context (empty unless [`ContextLayer::with_base`] says otherwise) and
//! nothing it sets is ever seen by another request: not by a request served concurrently,
//! not by the next request on the same keep-alive connection (hyper serves those one after
//! the other in one task), and not by a later request whose sync handler runs on the same
//! blocking-pool thread.
//!
//! Within a request the context behaves like a task's: a middleware that awaits the handler
//! sees what an async handler set, and what a `#[sync_endpoint]` handler or a
//! `#[propagate(back)]` function set on another thread once it has been joined.
//!
//! # Where a request's context ends
//!
//! Not when the handler returns: a response body can be a stream (axum's
//! `Body::from_stream`, server-sent events) that the server polls long after. The layer
//! wraps the body of every [`http::Response`] in a [`ScopedBody`], which polls it in the
//! request's context as the handler and the middleware inside the layer left it. The
//! context ends after the body's last frame (the body is then dropped, in the context) or
//! when the server drops the response, whichever comes first; the values only this request
//! held are dropped then.
//!
//! So a middleware inside the layer, which runs on once the handler's future has returned
//! the response, sees what the handler set but not what the body sets later (nothing is
//! polled after the body): read such values in the body itself. Each frame sees what the
//! frames before it set.
//!
//! The response type therefore becomes `http::Response<ScopedBody<B>>`. `Router::layer`
//! accepts that as it is; a whole `Router` served by `axum::serve` wants axum's own
//! `Response` back, which `.map_response(IntoResponse::into_response)` outside the layer
//! gives. For a service whose response is not an `http::Response` (a tower service of your
//! own, a test with `service_fn`), use [`ContextLayer::for_any_response`]: it runs the
//! service's future in the request's context and returns its response untouched (nothing of
//! the request's context outlives that future). Rust has no specialization, so one layer
//! type cannot do both: the `http` one is the default because that is what axum, hyper and
//! tonic users write.
//!
//! # Without the layer
//!
//! A request served without the layer (or a middleware placed outside it) runs in the
//! server's connection task, which has no context: `get` returns defaults and `set` panics,
//! naming the layer. There is one place where that does not show: calling a service
//! directly with `oneshot` in a `#[tokio::test]` body. That body is not a task, so it has a
//! context (the test thread's), and every `oneshot` call without the layer reads and writes
//! that one context: what the first request set, the second sees. Put the layer in the
//! service under test as in production, or wrap each call:
//! `Context::new().scope(service.oneshot(request)).await`.
//!
//! With axum:
//!
//! ```
//! use axum::{Router, body::Body, middleware::{self, Next}, extract::Request, response::Response, routing::get};
//! use contextvars::{context_var, tower::ContextLayer};
//!
//! #[context_var]
//! static USER: Option<String>;
//!
//! async fn hello() -> &'static str {
//!     USER.set(Some("ada".into()));
//!     "hello"
//! }
//!
//! async fn log(request: Request, next: Next) -> Response {
//!     let response = next.run(request).await;
//!     println!("user: {:?}", USER.get()); // the handler's value, and only this request's
//!     response
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let app: Router = Router::new()
//!     .route("/", get(hello))
//!     .layer(middleware::from_fn(log))
//!     .layer(ContextLayer::new()); // outermost: wraps the logging middleware too
//!
//! // Served with `axum::serve(listener, app)`; here one request, without a socket:
//! use tower::ServiceExt;
//! let response = app.oneshot(Request::get("/").body(Body::empty()).unwrap()).await.unwrap();
//! assert!(response.status().is_success());
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll, ready};

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::{Context, Scope};

/// Marks a [`ContextLayer`] for services that answer with an [`http::Response`]: the body
/// is polled in the request's context (the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct Http;

/// Marks a [`ContextLayer`] for services with any response type: only the service's future
/// runs in the request's context (see [`ContextLayer::for_any_response`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct AnyResponse;

/// A tower [`Layer`] that runs each request in a fresh copy of a base [`Context`].
///
/// The inner service's `call`, every poll of the future it returns and every poll of the
/// response body run in that copy, so whatever the request sets lives exactly as long as the
/// request (see [the module documentation](self) for where that ends). Copying the base
/// costs O(1) whatever it holds.
///
/// ```
/// use contextvars::{ContextVar, tower::ContextLayer};
/// use http_body_util::{BodyExt, Full};
/// use hyper::body::Bytes;
/// use tower::{Layer, Service, ServiceExt, service_fn};
///
/// static HITS: ContextVar<u32> = ContextVar::new("HITS", || 0);
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let counter = service_fn(|_request: http::Request<()>| async {
///     HITS.set(HITS.get() + 1);
///     Ok::<_, std::convert::Infallible>(http::Response::new(Full::<Bytes>::from(HITS.get().to_string())))
/// });
/// let mut service = ContextLayer::new().layer(counter);
/// // Every call starts from the empty context: no request sees another's count.
/// for _ in 0..2 {
///     let response = service.ready().await.unwrap().call(http::Request::new(())).await.unwrap();
///     assert_eq!(response.into_body().collect().await.unwrap().to_bytes(), "1");
/// }
/// # }
/// ```
///
/// `M` is [`Http`] (from [`new`](ContextLayer::new) and [`with_base`](ContextLayer::with_base))
/// or [`AnyResponse`] (from [`for_any_response`](ContextLayer::for_any_response)).
pub struct ContextLayer<M = Http> {
    base: Context,
    response: PhantomData<fn() -> M>,
}

impl ContextLayer<Http> {
    /// Every request starts from the empty context: all variables at their defaults.
    ///
    /// ```
    /// use contextvars::{ContextVar, tower::ContextLayer};
    /// use tower::{Layer, ServiceExt, service_fn};
    ///
    /// static USER: ContextVar<Option<&'static str>> = ContextVar::new("USER", || None);
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// USER.set(Some("admin")); // the server's own context: no request sees it
    /// let user = service_fn(|()| async { Ok::<_, std::convert::Infallible>(USER.get()) });
    /// let service = ContextLayer::new().for_any_response().layer(user);
    /// assert_eq!(service.oneshot(()).await, Ok(None));
    /// # }
    /// ```
    pub fn new() -> ContextLayer<Http> {
        ContextLayer::with_base(Context::new())
    }

    /// Every request starts from a copy of `base`: for values all requests share, such as
    /// the server's name or a configuration read at startup.
    ///
    /// ```
    /// use contextvars::{Context, ContextVar, tower::ContextLayer};
    /// use tower::{Layer, Service, ServiceExt, service_fn};
    ///
    /// static REGION: ContextVar<&'static str> = ContextVar::new("REGION", || "unknown");
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut base = Context::new();
    /// base.run(|| REGION.set("eu-west"));
    ///
    /// let region = service_fn(|()| async { Ok::<_, std::convert::Infallible>(REGION.get()) });
    /// let mut service = ContextLayer::with_base(base).for_any_response().layer(region);
    /// assert_eq!(service.ready().await.unwrap().call(()).await, Ok("eu-west"));
    /// # }
    /// ```
    pub fn with_base(base: Context) -> ContextLayer<Http> {
        ContextLayer { base, response: PhantomData }
    }

    /// The same layer for a service whose response is not an [`http::Response`]: the
    /// service's `call` and future run in the request's context, and the response is
    /// returned as it is. Nothing polled after that future (a body, a stream in the response)
    /// is in the request's context.
    ///
    /// ```
    /// use contextvars::{ContextVar, tower::ContextLayer};
    /// use tower::{Layer, Service, ServiceExt, service_fn};
    ///
    /// static HITS: ContextVar<u32> = ContextVar::new("HITS", || 0);
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let counter = service_fn(|()| async {
    ///     HITS.set(HITS.get() + 1);
    ///     Ok::<_, std::convert::Infallible>(HITS.get())
    /// });
    /// let mut service = ContextLayer::new().for_any_response().layer(counter);
    /// assert_eq!(service.ready().await.unwrap().call(()).await, Ok(1));
    /// assert_eq!(service.ready().await.unwrap().call(()).await, Ok(1));
    /// # }
    /// ```
    pub fn for_any_response(self) -> ContextLayer<AnyResponse> {
        ContextLayer { base: self.base, response: PhantomData }
    }
}

impl Default for ContextLayer<Http> {
    fn default() -> ContextLayer<Http> {
        ContextLayer::new()
    }
}

impl<M> Clone for ContextLayer<M> {
    fn clone(&self) -> ContextLayer<M> {
        ContextLayer { base: self.base.clone(), response: PhantomData }
    }
}

impl<M> fmt::Debug for ContextLayer<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContextLayer")
            .field("base", &self.base)
            .field("response", &std::any::type_name::<M>())
            .finish()
    }
}

impl<S, M> Layer<S> for ContextLayer<M> {
    type Service = ContextService<S, M>;

    fn layer(&self, inner: S) -> ContextService<S, M> {
        ContextService { inner, base: self.base.clone(), response: PhantomData }
    }
}

/// The service made by [`ContextLayer`]: calls the inner service in a fresh copy of the
/// base context and returns its future wrapped in a [`Scope`] of that copy; with [`Http`],
/// the response body too (in a [`ScopedBody`]).
///
/// ```
/// use contextvars::{ContextVar, tower::{AnyResponse, ContextLayer, ContextService}};
/// use tower::{Layer, ServiceExt, service_fn};
///
/// static HITS: ContextVar<u32> = ContextVar::new("HITS", || 0);
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let count = service_fn(|()| async {
///     let hits = HITS.get() + 1;
///     HITS.set(hits);
///     Ok::<_, std::convert::Infallible>(hits)
/// });
/// let service: ContextService<_, AnyResponse> = ContextLayer::new().for_any_response().layer(count);
/// // Each call runs in a context of its own: none sees another's count.
/// assert_eq!(service.clone().oneshot(()).await, Ok(1));
/// assert_eq!(service.oneshot(()).await, Ok(1));
/// # }
/// ```
pub struct ContextService<S, M = Http> {
    inner: S,
    base: Context,
    response: PhantomData<fn() -> M>,
}

impl<S: Clone, M> Clone for ContextService<S, M> {
    fn clone(&self) -> ContextService<S, M> {
        ContextService { inner: self.inner.clone(), base: self.base.clone(), response: PhantomData }
    }
}

impl<S: fmt::Debug, M> fmt::Debug for ContextService<S, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContextService").field("inner", &self.inner).field("base", &self.base).finish()
    }
}

impl<S, M> ContextService<S, M> {
    /// Calls the inner service in a fresh copy of the base context.
    fn call_scoped<Request>(&mut self, request: Request) -> Scope<S::Future>
    where
        S: Service<Request>,
    {
        let mut context = self.base.clone();
        // `call` itself may read or set variables (routing, a middleware's synchronous
        // part): it runs in the request's context too, and its changes stay there.
        let future = context.run(|| self.inner.call(request));
        context.scope(future)
    }
}

impl<S, Request, B> Service<Request> for ContextService<S, Http>
where
    S: Service<Request, Response = http::Response<B>>,
{
    type Response = http::Response<ScopedBody<B>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> ResponseFuture<S::Future> {
        ResponseFuture { scope: self.call_scoped(request) }
    }
}

impl<S, Request> Service<Request> for ContextService<S, AnyResponse>
where
    S: Service<Request>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Scope<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Scope<S::Future> {
        self.call_scoped(request)
    }
}

pin_project! {
    /// The future of a [`ContextService`] for [`Http`]: the inner service's future in the
    /// request's context, then its response with the body in a [`ScopedBody`] of that
    /// context.
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<F> {
        #[pin]
        scope: Scope<F>,
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<http::Response<B>, E>>,
{
    type Output = Result<http::Response<ScopedBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let mut scope = self.project().scope;
        let response = ready!(scope.as_mut().poll(cx))?;
        // The request's context as the handler and the middleware inside the layer left it.
        let context = scope.context();
        Poll::Ready(Ok(response.map(|body| ScopedBody::new(context, body))))
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").field("scope", &self.scope).finish()
    }
}

pin_project! {
    /// A response body polled in its request's context, frame by frame, and dropped in it:
    /// a stream that reads context variables sees the request's values, and one that sets
    /// them sets them there (see [the module documentation](self)).
    ///
    /// ```
    /// use contextvars::{Context, tower::ScopedBody};
    /// use http_body_util::{BodyExt, Full};
    /// use hyper::body::Bytes;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let body = ScopedBody::new(Context::new(), Full::new(Bytes::from("chunk")));
    /// assert_eq!(body.collect().await.unwrap().to_bytes(), "chunk");
    /// # }
    /// ```
    pub struct ScopedBody<B> {
        context: Context,
        // `None` once the body has ended, or been dropped in its context.
        #[pin]
        body: Option<B>,
    }

    impl<B> PinnedDrop for ScopedBody<B> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            let mut body = this.body;
            if body.is_some() {
                this.context.run(|| body.set(None));
            }
        }
    }
}

impl<B> ScopedBody<B> {
    /// `body`, polled and dropped in `context`.
    pub fn new(context: Context, body: B) -> ScopedBody<B> {
        ScopedBody { context, body: Some(body) }
    }
}

impl<B: Body> Body for ScopedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        let mut body = this.body;
        this.context.run(|| {
            let Some(inner) = body.as_mut().as_pin_mut() else { return Poll::Ready(None) };
            let frame = inner.poll_frame(cx);
            if let Poll::Ready(None) = frame {
                // The last frame was sent: the body ends here, in its context.
                body.set(None);
            }
            frame
        })
    }

    fn is_end_stream(&self) -> bool {
        self.body.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.body.as_ref().map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

impl<B> fmt::Debug for ScopedBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopedBody").field("ended", &self.body.is_none()).finish_non_exhaustive()
    }
}
