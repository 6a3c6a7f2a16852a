//! The client side for `reqwest` (feature `reqwest`): a `reqwest-middleware` middleware.

use reqwest_middleware::reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next};

use super::call::{self, Call};

/// A [`reqwest_middleware::Middleware`] that does for a `reqwest` client what
/// [`OutgoingLayer`](super::OutgoingLayer) does for a tower one: it
/// [`inject`](super::inject)s the caller's context into every request (`baggage`,
/// `traceparent`, `tracestate`), and merges the [`BACK_HEADER`](super::BACK_HEADER) of the
/// response into the caller's context like a join merges a child, the caller's context when
/// the request left being the base. Feature `reqwest`.
///
/// The request runs in the code that awaits `send()`: called from a task spawned with
/// `contextvars::spawn`, it sends that task's values and what comes back lands there. In a
/// plain `tokio::spawn` task (no context of its own) it sends no variable, and a response
/// that brings one back panics, naming the fix, as [`ContextVar::set`](crate::ContextVar::set)
/// does there. A request dropped before its response (a timeout, a `select!`) lands nothing.
/// What comes back is merged as soon as the response's head arrives, before its body is read.
///
/// With a retry middleware, where it stands decides what merges. Inside the retry
/// (`.with(retry).with(OutgoingMiddleware::new())`) each attempt is a call of its own: it
/// leaves with the values of its moment, and every attempt that gets a response, whatever
/// its status, merges what that response brought back (a counter with a merge function
/// counts the work of every attempt the server answered). Outside it
/// (`.with(OutgoingMiddleware::new()).with(retry)`) every attempt carries the first one's
/// headers and only the response the retry returns merges. Either way each request has one
/// `baggage` header: one set on the request itself is kept in it (see
/// [`inject`](super::inject)).
///
/// Redirects are followed inside reqwest, below every middleware: the request to the
/// redirect's target carries the same `baggage` and `traceparent` headers, also to another
/// host (reqwest removes only headers such as `Authorization` there), and only the final
/// response's [`BACK_HEADER`](super::BACK_HEADER) merges. If baggage must not leave your
/// own hosts, build the client with `redirect::Policy::none()` or a policy that stays on them.
///
/// reqwest's blocking client takes no middleware. From blocking code, run this client with
/// `contextvars::block_on` in a `contextvars::spawn_blocking` closure (feature `tokio`): the
/// call sends and merges into that thread's context, which the join merges back.
///
/// ```
/// use axum::{Router, routing::get};
/// use contextvars::context_var;
/// use contextvars::opentelemetry::{IncomingLayer, OutgoingMiddleware};
/// use reqwest_middleware::{ClientBuilder, reqwest};
///
/// #[context_var(baggage = "user.id")]
/// static USER: Option<String>;
/// #[context_var(baggage = "db.rows", back_from_remote = true)]
/// static ROWS: u64;
///
/// /// The backend's handler: sees the caller's user, counts rows that go back to the caller.
/// async fn orders() -> String {
///     ROWS.set(ROWS.get() + 3);
///     format!("orders of {}", USER.get().unwrap_or_default())
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), reqwest_middleware::Error> {
/// let backend = Router::new().route("/orders", get(orders)).layer(IncomingLayer::new());
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
/// let url = format!("http://{}/orders", listener.local_addr().unwrap());
/// tokio::spawn(async move { axum::serve(listener, backend).await });
///
/// let reqwest = reqwest::Client::builder().no_proxy().build()?; // loopback: no proxy
/// let client = ClientBuilder::new(reqwest).with(OutgoingMiddleware::new()).build();
/// USER.set(Some("ada".into())); // sent as `baggage: user.id=ada`
/// ROWS.set(1);
/// let reply = client.get(url).send().await?.text().await?;
/// assert_eq!(reply, "orders of ada");
/// assert_eq!(ROWS.get(), 4); // the backend's 3 rows came back, merged like a join
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct OutgoingMiddleware {
    _private: (),
}

impl OutgoingMiddleware {
    /// The middleware.
    ///
    /// ```
    /// use contextvars::opentelemetry::OutgoingMiddleware;
    /// use reqwest_middleware::{ClientBuilder, reqwest};
    ///
    /// let client = ClientBuilder::new(reqwest::Client::new()).with(OutgoingMiddleware::new()).build();
    /// # let _ = client;
    /// ```
    pub fn new() -> OutgoingMiddleware {
        OutgoingMiddleware::default()
    }
}

#[async_trait::async_trait]
impl Middleware for OutgoingMiddleware {
    async fn handle(
        &self,
        mut request: Request,
        extensions: &mut http::Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        // The body of this future runs when the caller first polls it: in the caller's code.
        let call = Call::start(request.headers_mut());
        let mut response = next.run(request, extensions).await?;
        if call::first_merge(response.extensions_mut()) {
            call.finish(response.headers());
        }
        Ok(response)
    }
}
