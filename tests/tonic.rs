//! Feature `tonic`: a real gRPC call over loopback. The client is a tonic `Channel` wrapped in
//! `OutgoingLayer` (or with `OutgoingInterceptor`), the server tonic's own with
//! `IncomingLayer` in `Server::builder().layer(..)`. No protobuf: the messages are UTF-8 text
//! through a codec written here.

#[path = "support/remote.rs"]
mod remote;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use bytes::{Buf, BufMut};
use contextvars::opentelemetry::{
    BACK_HEADER, IncomingLayer, OutgoingInterceptor, OutgoingLayer, TRACE_CONTEXT,
};
use http::uri::PathAndQuery;
use tonic::Status;
use tonic::body::Body;
use tonic::client::GrpcService;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::server::NamedService;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::transport::server::TcpIncoming;
use tower::{Layer, Service, service_fn};

use remote::{CACHE_HIT, ROWS, TRACE_ID, USER};

/// Messages as UTF-8 text.
#[derive(Clone, Copy, Debug, Default)]
struct Utf8;

impl Codec for Utf8 {
    type Encode = String;
    type Decode = String;
    type Encoder = Utf8;
    type Decoder = Utf8;

    fn encoder(&mut self) -> Utf8 {
        Utf8
    }
    fn decoder(&mut self) -> Utf8 {
        Utf8
    }
}

impl Encoder for Utf8 {
    type Item = String;
    type Error = Status;

    fn encode(&mut self, item: String, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(item.as_bytes());
        Ok(())
    }
}

impl Decoder for Utf8 {
    type Item = String;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<String>, Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        String::from_utf8(bytes.to_vec())
            .map(Some)
            .map_err(|error| Status::invalid_argument(error.to_string()))
    }
}

/// The gRPC service `test.Backend`: its one method counts rows (which go back to the
/// caller) and answers with what it saw of the caller.
#[derive(Clone, Copy, Debug, Default)]
struct Backend;

impl NamedService for Backend {
    const NAME: &'static str = "test.Backend";
}

impl Service<http::Request<Body>> for Backend {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<http::Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let count = service_fn(|_: tonic::Request<String>| async {
            remote::count_rows();
            Ok::<_, Status>(tonic::Response::new(remote::seen_by_handler()))
        });
        Box::pin(async move { Ok(tonic::server::Grpc::new(Utf8).unary(count, request).await) })
    }
}

async fn serve() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tonic::transport::Server::builder().layer(IncomingLayer::new()).add_service(Backend);
    tokio::spawn(async move { server.serve_with_incoming(TcpIncoming::from(listener)).await.unwrap() });
    addr
}

async fn channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap()
}

/// One call of `test.Backend/Count`.
async fn count<T>(client: &mut tonic::client::Grpc<T>) -> tonic::Response<String>
where
    T: GrpcService<Body>,
    T::ResponseBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    <T::ResponseBody as http_body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    T::Error: std::fmt::Debug,
{
    client.ready().await.unwrap();
    let path = PathAndQuery::from_static("/test.Backend/Count");
    client.unary(tonic::Request::new(String::new()), path, Utf8).await.unwrap()
}

/// Calls as user `ada` in a trace with 10 rows counted; checks that the handler saw the user
/// and the trace, and sent its rows back.
async fn sent_by_ada_with_10_rows<T>(client: &mut tonic::client::Grpc<T>)
where
    T: GrpcService<Body>,
    T::ResponseBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    <T::ResponseBody as http_body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    T::Error: std::fmt::Debug,
{
    USER.set(Some("ada".into()));
    TRACE_CONTEXT.set(remote::remote_trace());
    ROWS.set(10);
    let response = count(client).await;
    assert_eq!(response.get_ref(), &format!("ada|public|{TRACE_ID}"));
    assert_eq!(response.metadata().get(BACK_HEADER).unwrap(), "cache.hit=true,db.rows=13");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_layer_baggage_and_trace_reach_the_handler_and_its_changes_come_back() {
    let addr = serve().await;
    let mut client = tonic::client::Grpc::new(OutgoingLayer::new().layer(channel(addr).await));
    sent_by_ada_with_10_rows(&mut client).await;
    assert_eq!((ROWS.get(), CACHE_HIT.get()), (13, true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_interceptor_sends_the_baggage_and_brings_nothing_back() {
    let addr = serve().await;
    let mut client =
        tonic::client::Grpc::new(InterceptedService::new(channel(addr).await, OutgoingInterceptor::new()));
    sent_by_ada_with_10_rows(&mut client).await;
    // Sent, but an interceptor never sees the response: that takes `OutgoingLayer`.
    assert_eq!((ROWS.get(), CACHE_HIT.get()), (10, false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_request_does_not_see_another_requests_baggage() {
    let addr = serve().await;
    let mut with = tonic::client::Grpc::new(OutgoingLayer::new().layer(channel(addr).await));
    let mut without = tonic::client::Grpc::new(channel(addr).await);
    USER.set(Some("ada".into()));
    assert_eq!(count(&mut with).await.get_ref(), "ada|public|-");
    assert_eq!(count(&mut without).await.get_ref(), "|public|-");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_with_separators_controls_and_non_ascii_arrive_intact_in_metadata() {
    let addr = serve().await;
    let awkward = "ada, \"lovelace\"; x=1\r\ngrpc-status: 0 %41 Zürich";
    USER.set(Some(awkward.into()));
    let mut layered = tonic::client::Grpc::new(OutgoingLayer::new().layer(channel(addr).await));
    assert_eq!(count(&mut layered).await.get_ref(), &format!("{awkward}|public|-"));
    let mut intercepted =
        tonic::client::Grpc::new(InterceptedService::new(channel(addr).await, OutgoingInterceptor::new()));
    assert_eq!(count(&mut intercepted).await.get_ref(), &format!("{awkward}|public|-"));
}

#[test]
fn the_interceptor_keeps_the_baggage_metadata_a_request_already_has() {
    use tonic::service::Interceptor;

    USER.set(Some("ada".into()));
    let mut request = tonic::Request::new(());
    request.metadata_mut().insert("baggage", "kind=batch,user.id=bob,bad=%zz".parse().unwrap());
    request.metadata_mut().insert_bin("trace-bin", tonic::metadata::MetadataValue::from_bytes(b"\xff\x00"));
    let request = OutgoingInterceptor::new().call(request).unwrap();
    // The context's user wins; the invalid entry is dropped with a warning; nothing else is lost.
    assert_eq!(request.metadata().get_all("baggage").iter().count(), 1);
    assert_eq!(request.metadata().get("baggage").unwrap(), "user.id=ada,kind=batch");
    assert_eq!(request.metadata().get_bin("trace-bin").unwrap().to_bytes().unwrap().as_ref(), b"\xff\x00");
}
