//! The client side for `reqwest` (feature `reqwest`): a `reqwest-middleware` middleware.

use reqwest_middleware::reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next};

use super::call::Call;

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
/// Put it after a retry middleware (`.with(retry).with(OutgoingMiddleware::new())`) so that
/// every attempt carries the headers and only the answered one merges.
///
/// ```no_run
/// use contextvars::{context_var, opentelemetry::OutgoingMiddleware};
/// use reqwest_middleware::{ClientBuilder, reqwest};
///
/// #[context_var(baggage = "user.id")]
/// static USER: Option<String>;
/// #[context_var(baggage = "db.rows", back_from_remote = true)]
/// static ROWS: u64;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), reqwest_middleware::Error> {
/// let client = ClientBuilder::new(reqwest::Client::new()).with(OutgoingMiddleware::new()).build();
///
/// USER.set(Some("ada".into())); // sent as `baggage: user.id=ada`
/// let response = client.get("http://127.0.0.1:3000/orders").send().await?;
/// // What the server's handler set in `ROWS` (an `IncomingLayer` sends it back) is here now.
/// println!("{} rows, {}", ROWS.get(), response.text().await?);
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
        let response = next.run(request, extensions).await?;
        call.finish(response.headers());
        Ok(response)
    }
}
