//! The client side for tonic's interceptors (feature `tonic`).

use tonic::metadata::MetadataMap;
use tonic::service::Interceptor;

/// A tonic [`Interceptor`] that [`inject`](super::inject)s the caller's context into every
/// gRPC request's metadata (`baggage`, `traceparent`, `tracestate`). Feature `tonic`.
///
/// A `baggage` entry the request's metadata already holds is kept (see
/// [`inject`](super::inject)); the metadata values written are visible ASCII, so they are
/// always valid tonic ASCII metadata.
///
/// An interceptor sees only the request: nothing comes **back** through it. For the
/// `back_from_remote` variables of the response, wrap the channel in
/// [`OutgoingLayer`](super::OutgoingLayer) instead (no feature needed: a tonic `Channel` is a
/// tower service), which injects the same headers and merges what comes back.
///
/// ```
/// use contextvars::{context_var, opentelemetry::OutgoingInterceptor};
/// use tonic::service::Interceptor;
///
/// #[context_var(baggage = "user.id")]
/// static USER: Option<String>;
///
/// USER.set(Some("ada".into()));
/// let request = OutgoingInterceptor::new().call(tonic::Request::new(())).unwrap();
/// assert_eq!(request.metadata().get("baggage").unwrap(), "user.id=ada");
/// ```
///
/// On a channel: see [Clients](super#clients).
#[derive(Clone, Copy, Debug, Default)]
pub struct OutgoingInterceptor {
    _private: (),
}

impl OutgoingInterceptor {
    /// The interceptor.
    ///
    /// ```
    /// let interceptor = contextvars::opentelemetry::OutgoingInterceptor::new();
    /// # let _ = interceptor;
    /// ```
    pub fn new() -> OutgoingInterceptor {
        OutgoingInterceptor::default()
    }
}

impl Interceptor for OutgoingInterceptor {
    /// Called by tonic where the request leaves, in the caller's code.
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let mut headers = std::mem::take(request.metadata_mut()).into_headers();
        super::inject(&mut headers);
        *request.metadata_mut() = MetadataMap::from_headers(headers);
        Ok(request)
    }
}
