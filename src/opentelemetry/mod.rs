//! Context variables across services: W3C Baggage and Trace Context (feature
//! `opentelemetry`).
//!
//! A variable declared with a `baggage` key travels with every call the integrations make:
//!
//! ```
//! use contextvars::context_var;
//!
//! #[context_var(baggage = "user.id")]
//! static USER: Option<String>;
//! #[context_var(baggage = "db.rows", back_from_remote = true)]
//! static ROWS: u64;
//! ```
//!
//! * **Incoming**: [`IncomingLayer`] (a [`ContextLayer`](crate::tower::ContextLayer) that also
//!   reads the headers) sets, in the request's fresh context, every declared variable the
//!   `baggage` header names; entries no variable declares are kept in [`FORWARDED`] and sent
//!   on, never turned into variables. `traceparent`/`tracestate` are read by
//!   `opentelemetry_sdk`'s `TraceContextPropagator` into [`TRACE_CONTEXT`].
//! * **Outgoing**: [`inject`] writes the declared variables' current values, the forwarded
//!   entries and the trace context into an `http::HeaderMap`; the client integrations do it
//!   for every request (see [Clients](#clients)).
//! * **Back over the wire** (not a W3C standard): a server answers with the
//!   `back_from_remote` variables its handler changed in the [`BACK_HEADER`] response header,
//!   encoded like a `baggage` header (`key=percent-encoded-value`, comma-separated);
//!   [`OutgoingLayer`] and `OutgoingMiddleware` merge them into the caller by the three-way
//!   merge of a join. A key
//!   the caller did not declare with `back_from_remote = true` is ignored: a remote service
//!   never sets any other variable. What does come back is the remote's word: a `merge`
//!   function receives it as the child's value, so it must take any value of the type (a
//!   counter adds with `saturating_add`, not `+`, which a huge value would overflow). A
//!   value that sends nothing (a `None`) does not come back.
//!
//! Both ways, what arrives is what the other side chose to send: a `user.id` read from an
//! incoming `baggage` header is the caller's claim, not an authenticated identity.
//!
//! The `baggage` header is parsed leniently and written strictly (see [`Baggage`]): at least
//! [`MAX_ENTRIES`] entries and [`MAX_BYTES`] bytes travel, entries past them or invalid are
//! dropped with a `tracing` warning, the request never fails, and no output header holds a
//! CR or LF.
//!
//! # Clients
//!
//! | client | integration | what the server sends back |
//! | --- | --- | --- |
//! | hyper, any tower `Service` of `http::Request`s | [`OutgoingLayer`] | merged into the caller |
//! | tonic: a `Channel`, so any generated client | [`OutgoingLayer`] around the channel | merged into the caller |
//! | reqwest, through `reqwest-middleware` | `OutgoingMiddleware` (feature `reqwest`) | merged into the caller |
//! | tonic, as an interceptor | `OutgoingInterceptor` (feature `tonic`) | ignored: an interceptor never sees the response |
//! | any other | [`inject`] into the request's headers | ignored |
//!
//! They all send the values of the code that makes the call and merge into it when it awaits
//! the response: called from a task spawned with `contextvars::spawn`, that task's. From a
//! plain `tokio::spawn` task (no context of its own) a request carries no variable, and a
//! value sent back panics, naming the fix, as [`ContextVar::set`] does there. A request
//! dropped before its response (a timeout, a `select!`) lands nothing. Requests in flight
//! together each merge their own response, as sibling tasks do at their joins. A `baggage`
//! header already on the request is kept in the one sent (see [`inject`]). Behind a retry,
//! each attempt that gets a response merges it; in front of one, only the last (see
//! `OutgoingMiddleware`). A response is merged once, however many of these integrations
//! wrap the call (a library's client with the middleware, to which the application adds
//! its own). On the server, put [`IncomingLayer`] outermost: in axum's
//! `Router::layer`, in tonic's `Server::builder().layer(..)`; on the client,
//! [`OutgoingLayer`] outside any tower `Buffer`.
//!
//! tonic, both sides (the generated `GreeterClient::new(channel)` takes the wrapped channel as
//! it takes the channel itself):
//!
//! ```no_run
//! use contextvars::opentelemetry::{IncomingLayer, OutgoingLayer};
//! use tonic::transport::{Channel, Server};
//! use tower::Layer;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tonic::transport::Error> {
//! // The server: every call runs in a fresh context holding the caller's baggage.
//! let server = Server::builder().layer(IncomingLayer::new());
//! // then `server.add_service(GreeterServer::new(MyGreeter)).serve(addr)`, as usual.
//! # let _ = server;
//!
//! // The client: the caller's context goes out, what the server changed comes back.
//! let channel = Channel::from_static("http://127.0.0.1:50051").connect().await?;
//! let client = tonic::client::Grpc::new(OutgoingLayer::new().layer(channel));
//! # let _ = client;
//! # Ok(())
//! # }
//! ```
//!
//! reqwest (feature `reqwest`; a whole round trip is in `OutgoingMiddleware`'s docs):
//!
//! ```no_run
//! # #[cfg(feature = "reqwest")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), reqwest_middleware::Error> {
//! use contextvars::opentelemetry::OutgoingMiddleware;
//! use reqwest_middleware::{ClientBuilder, reqwest};
//!
//! let client = ClientBuilder::new(reqwest::Client::new()).with(OutgoingMiddleware::new()).build();
//! let orders = client.get("http://127.0.0.1:3000/orders").send().await?.text().await?;
//! # let _ = orders;
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "reqwest"))]
//! # fn main() {}
//! ```
//!
//! A tonic interceptor (feature `tonic`), for a client built with `with_interceptor`; it
//! sends, but brings nothing back:
//!
//! ```no_run
//! # #[cfg(feature = "tonic")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tonic::transport::Error> {
//! use contextvars::opentelemetry::OutgoingInterceptor;
//! use tonic::service::interceptor::InterceptedService;
//!
//! let channel = tonic::transport::Channel::from_static("http://127.0.0.1:50051").connect().await?;
//! // What `GreeterClient::with_interceptor(channel, OutgoingInterceptor::new())` builds.
//! let client = tonic::client::Grpc::new(InterceptedService::new(channel, OutgoingInterceptor::new()));
//! # let _ = client;
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "tonic"))]
//! # fn main() {}
//! ```

mod attributes;
mod baggage;
mod call;
mod incoming;
#[cfg(feature = "tonic")]
mod interceptor;
#[cfg(feature = "reqwest")]
mod middleware;
mod outgoing;
mod registry;
mod value;

use std::sync::Arc;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;

pub use attributes::ContextAttributes;
pub use baggage::{Baggage, Entry, InvalidKey, MAX_BYTES, MAX_ENTRIES};
pub use incoming::{IncomingLayer, IncomingService};
#[cfg(feature = "tonic")]
pub use interceptor::OutgoingInterceptor;
#[cfg(feature = "reqwest")]
pub use middleware::OutgoingMiddleware;
pub use outgoing::{OutgoingFuture, OutgoingLayer, OutgoingService};
#[doc(hidden)]
pub use registry::Registered;
pub use registry::{BaggageVar, declared};
pub use value::BaggageValue;

/// The variables [`ContextAttributes`] records (the same trait as
/// `contextvars::tracing::LogVar` with the feature `tracing`).
pub use crate::fields::LogVar;

use crate::{Changes, Context, ContextVar};

/// The W3C Baggage header.
pub const BAGGAGE_HEADER: &str = "baggage";

/// The response header that carries `back_from_remote` variables to the caller. Not a W3C
/// standard: encoded like `baggage` (`key=percent-encoded-value`, comma-separated).
pub const BACK_HEADER: &str = "contextvars-back";

/// The OpenTelemetry [`Context`](opentelemetry::Context) of the current request as a
/// context variable: set by [`IncomingLayer`] from `traceparent`/`tracestate`, copied into
/// every task and thread spawned with `contextvars` (no `.with_context()` at each spawn),
/// read by [`inject`]. Never flows back: a child's trace context is its own.
///
/// The OpenTelemetry API sees it wherever `contextvars` runs a child: every poll of a task
/// started with [`spawn`](crate::spawn), [`spawn_local`](crate::spawn_local) or a
/// [`JoinSet`](crate::JoinSet), the closure of [`spawn_blocking`](crate::spawn_blocking),
/// `#[sync_endpoint]`, [`thread`](crate::thread) and the `rayon` adapters run with the
/// child's `TRACE_CONTEXT` attached (when it is set), so `opentelemetry::Context::current()`
/// and `get_active_span` return it, and a tracer starts its spans under it. The request's
/// own future has it attached by [`IncomingLayer`].
///
/// Code that attaches a context of its own (`cx.attach()`, `tracer.in_span(..)`,
/// `FutureExt::with_context`) makes it current for as long as OpenTelemetry says, nested
/// over this one; a child spawned meanwhile starts with that context as its
/// `TRACE_CONTEXT`, so it follows the span its spawner was in. To change the trace context
/// for the rest of a task, set this variable: it is attached from the task's next poll (and
/// from the start of any child), and attach it yourself for the code that runs before.
/// [`untraced`](crate::untraced) children start with an empty one.
///
/// In a task, make a context of your own current for a future with
/// `opentelemetry::context::FutureExt::with_context`: it is attached at each of the
/// future's polls, over this one. A `ContextGuard` held across an `.await` (only a `!Send`
/// future can, as in [`spawn_local`](crate::spawn_local)) is not current after the
/// `.await`, because the task's next poll attaches its `TRACE_CONTEXT` over it; and between
/// the polls it stays current on the thread, for whatever else runs there.
///
/// ```
/// use contextvars::opentelemetry::TRACE_CONTEXT;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// TRACE_CONTEXT.set(opentelemetry::Context::new().with_value(7u8));
/// let seen = contextvars::spawn(async { TRACE_CONTEXT.get().get::<u8>().copied() }).await.unwrap();
/// assert_eq!(seen, Some(7));
/// // The OpenTelemetry API sees it in the child too.
/// let seen = contextvars::spawn_blocking(|| opentelemetry::Context::current().get::<u8>().copied());
/// assert_eq!(seen.await.unwrap(), Some(7));
/// # }
/// ```
pub static TRACE_CONTEXT: ContextVar<opentelemetry::Context> =
    ContextVar::new("opentelemetry.context", opentelemetry::Context::new).back(false);

/// The received `baggage` entries no variable declares, sent on with every outgoing call.
/// Never flows back.
///
/// ```
/// use contextvars::opentelemetry::FORWARDED;
/// assert!(FORWARDED.get().is_empty());
/// ```
pub static FORWARDED: ContextVar<Arc<Baggage>> =
    ContextVar::new("baggage.forwarded", Arc::default).back(false);

/// Reads the `baggage`, `traceparent` and `tracestate` headers into the current context:
/// declared variables are set, undeclared entries go to [`FORWARDED`], the trace context to
/// [`TRACE_CONTEXT`]. [`IncomingLayer`] calls it for every request.
///
/// ```
/// use contextvars::context_var;
/// #[context_var(baggage = "user.id")]
/// static USER: Option<String>;
///
/// let mut headers = http::HeaderMap::new();
/// headers.insert("baggage", "user.id=ada,other=1".parse().unwrap());
/// contextvars::opentelemetry::extract(&headers);
/// assert_eq!(USER.get().as_deref(), Some("ada"));
/// assert_eq!(contextvars::opentelemetry::FORWARDED.get().get("other"), Some("1"));
/// ```
///
/// # Panics
///
/// Where [`ContextVar::set`] panics: in a tokio task without a context of its own.
pub fn extract(headers: &http::HeaderMap) {
    // What is left once the declared variables took their entries is forwarded.
    let mut forwarded = Baggage::from_headers(headers);
    forwarded.retain(|entry| {
        let vars = registry::find(entry.key());
        for var in vars {
            if !var.set_text(entry.value()) {
                tracing::warn!(
                    target: "contextvars::baggage",
                    key = entry.key(),
                    "dropped a baggage entry: its value is not one of the variable's type"
                );
            }
        }
        vars.is_empty()
    });
    if !forwarded.is_empty() {
        FORWARDED.set(Arc::new(forwarded));
    }
    if headers.contains_key("traceparent") {
        let trace = TraceContextPropagator::new()
            .extract_with_context(&opentelemetry::Context::new(), &Headers(headers));
        if trace.span().span_context().is_valid() {
            TRACE_CONTEXT.set(trace);
        }
    }
}

/// Writes the current context into `headers`: the declared variables that are set and the
/// [`FORWARDED`] entries as `baggage`, the trace context as `traceparent`/`tracestate`:
/// OpenTelemetry's current context when the caller's code attached one with a span of its
/// own (`tracer.in_span(..)`, `cx.attach()`), else [`TRACE_CONTEXT`].
///
/// The entries of a `baggage` header already in `headers` (one the caller added to this
/// request) are kept, in the one `baggage` header written. On a key, and for the room
/// within [`MAX_ENTRIES`] and [`MAX_BYTES`], the declared variables come first, then those
/// entries, then the [`FORWARDED`] ones: an upstream caller's entries never crowd out this
/// service's own. A `traceparent`/`tracestate` already there is replaced only when the
/// context has a trace. Injecting twice (two integrations, or one around a retry) writes
/// the same headers.
///
/// ```
/// use contextvars::context_var;
/// #[context_var(baggage = "user.id")]
/// static USER: Option<String>;
///
/// USER.set(Some("ada lovelace".into()));
/// let mut headers = http::HeaderMap::new();
/// headers.insert("baggage", "request.kind=batch,user.id=bob".parse().unwrap());
/// contextvars::opentelemetry::inject(&mut headers);
/// assert_eq!(headers["baggage"], "user.id=ada%20lovelace,request.kind=batch");
/// ```
pub fn inject(headers: &mut http::HeaderMap) {
    // In order of precedence, which is also the order in which entries past the limits are
    // left out: the service's own variables, then what the caller put on this request, then
    // what an upstream caller sent (who could otherwise fill the header and crowd them out).
    let mut baggage = Baggage::new();
    for var in declared() {
        if let Some(text) = var.text() {
            baggage.put_var(var.key(), text);
        }
    }
    let own = headers.contains_key(BAGGAGE_HEADER).then(|| Baggage::from_headers(headers));
    for entry in own.iter().flat_map(Baggage::iter).chain(FORWARDED.get().iter()) {
        if baggage.get(entry.key()).is_none() {
            baggage.put(entry.clone());
        }
    }
    headers.remove(BAGGAGE_HEADER);
    if let Some(value) = baggage.to_header_value() {
        headers.insert(BAGGAGE_HEADER, value);
    }
    // A span the caller's code attached itself is the parent of the call, as of its children.
    let trace = crate::carry::attached_trace().unwrap_or_else(|| TRACE_CONTEXT.get());
    if trace.span().span_context().is_valid() {
        headers.remove("traceparent");
        headers.remove("tracestate");
        TraceContextPropagator::new().inject_context(&trace, &mut HeadersMut(headers));
    }
}

/// The `back_from_remote` variables changed between `start` and the current context, as a
/// [`BACK_HEADER`] value.
fn back_header(start: &Context) -> Option<http::HeaderValue> {
    let (vars, any) = registry::back_from_remote();
    if vars.is_empty() {
        return None;
    }
    let changes = Changes::between(start, &Context::current()).only(any);
    let mut back = Baggage::new();
    for var in
        vars.iter().filter(|var| changes.vars().any(|changed| changed.var_key() == var.any_var().var_key()))
    {
        if let Some(text) = var.text() {
            back.put_var(var.key(), text);
        }
    }
    back.to_header_value()
}

struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct HeadersMut<'a>(&'a mut http::HeaderMap);

impl Injector for HeadersMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        // The propagator writes its own two headers with visible-ASCII values.
        if let (Ok(name), Ok(value)) = (http::HeaderName::try_from(key), http::HeaderValue::try_from(value)) {
            self.0.insert(name, value);
        }
    }
}
