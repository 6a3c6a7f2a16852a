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

use std::task::{Context as TaskContext, Poll};

use tower_layer::Layer;
use tower_service::Service;

use crate::{Context, Scope};

/// A tower [`Layer`] that runs each request in a fresh copy of a base [`Context`].
///
/// The inner service's `call` and every poll of the future it returns run in that copy, so
/// whatever the request sets lives exactly as long as the request. Copying the base costs
/// O(1) whatever it holds.
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
/// let mut service = ContextLayer::new().layer(counter);
/// // Every call starts from the empty context: no request sees another's count.
/// assert_eq!(service.ready().await.unwrap().call(()).await, Ok(1));
/// assert_eq!(service.ready().await.unwrap().call(()).await, Ok(1));
/// # }
/// ```
#[derive(Clone, Debug, Default)]
pub struct ContextLayer {
    base: Context,
}

impl ContextLayer {
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
    /// let service = ContextLayer::new().layer(user);
    /// assert_eq!(service.oneshot(()).await, Ok(None));
    /// # }
    /// ```
    pub fn new() -> ContextLayer {
        ContextLayer { base: Context::new() }
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
    /// let mut service = ContextLayer::with_base(base).layer(region);
    /// assert_eq!(service.ready().await.unwrap().call(()).await, Ok("eu-west"));
    /// # }
    /// ```
    pub fn with_base(base: Context) -> ContextLayer {
        ContextLayer { base }
    }
}

impl<S> Layer<S> for ContextLayer {
    type Service = ContextService<S>;

    fn layer(&self, inner: S) -> ContextService<S> {
        ContextService { inner, base: self.base.clone() }
    }
}

/// The service made by [`ContextLayer`]: calls the inner service in a fresh copy of the
/// base context and returns its future wrapped in a [`Scope`] of that copy.
///
/// ```
/// use contextvars::{ContextVar, tower::{ContextLayer, ContextService}};
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
/// let service: ContextService<_> = ContextLayer::new().layer(count);
/// // Each call runs in a context of its own: none sees another's count.
/// assert_eq!(service.clone().oneshot(()).await, Ok(1));
/// assert_eq!(service.oneshot(()).await, Ok(1));
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct ContextService<S> {
    inner: S,
    base: Context,
}

impl<S, Request> Service<Request> for ContextService<S>
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
        let mut context = self.base.clone();
        // `call` itself may read or set variables (routing, a middleware's synchronous
        // part): it runs in the request's context too, and its changes stay there.
        let future = context.run(|| self.inner.call(request));
        context.scope(future)
    }
}
