//! Two services on loopback: a gateway calls a backend, and context travels both ways.
//!
//! `cargo run --example services --features services-example` starts both axum servers on
//! 127.0.0.1, sends the gateway real HTTP requests, prints both logs and exits.
//!
//! * The gateway authenticates the user from the path and sets `USER`. It calls the backend
//!   through [`OutgoingLayer`], which sends `USER` in the W3C `baggage` header.
//! * The backend runs every request in a fresh context filled from the headers
//!   ([`IncomingLayer`]). Its handler is a `#[sync_endpoint]` that reads a real SQLite
//!   database (a file in a temporary directory) on the blocking pool, with a small cache in
//!   front; it sets `ROWS` and `CACHE_HIT`. Its log line names the user the gateway set,
//!   read from `USER`: no argument carries it.
//! * `ROWS` and `CACHE_HIT` are declared `back_from_remote = true`: the backend's response
//!   carries them back, the gateway's client merges them into the gateway's request, and the
//!   gateway's access log (a middleware that only reads context variables) shows them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use contextvars::opentelemetry::{IncomingLayer, OutgoingLayer};
use contextvars::{context_var, sync_endpoint};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tower::{Layer, Service, ServiceExt, service_fn};

/// Who is asking: set by the gateway, read by the backend.
#[context_var(baggage = "user.id")]
pub static USER: Option<String>;

/// How many rows the backend's query read: set by the backend, read by the gateway.
#[context_var(baggage = "db.rows", back_from_remote = true)]
pub static ROWS: u64;

/// Whether the backend answered from its cache.
#[context_var(baggage = "cache.hit", back_from_remote = true)]
pub static CACHE_HIT: bool;

/// A log both servers write lines to, shared with whoever prints or checks it.
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    pub fn write(&self, line: String) {
        self.0.lock().unwrap().push(line);
    }

    pub fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

/// The backend's state: the database and the cache in front of it.
#[derive(Clone)]
pub struct Backend {
    db: Arc<Mutex<rusqlite::Connection>>,
    cache: Arc<Mutex<HashMap<String, String>>>,
    log: Log,
}

impl Backend {
    /// Creates the database file in `dir` with a few orders.
    pub fn open(dir: &Path, log: Log) -> rusqlite::Result<Backend> {
        let db = rusqlite::Connection::open(dir.join("orders.sqlite"))?;
        db.execute_batch(
            "CREATE TABLE orders (user TEXT NOT NULL, item TEXT NOT NULL);
             INSERT INTO orders VALUES ('ada', 'analytical engine'), ('ada', 'punched cards'),
                                       ('grace', 'compiler');",
        )?;
        Ok(Backend { db: Arc::new(Mutex::new(db)), cache: Arc::default(), log })
    }
}

/// The backend's handler: blocking database work on the blocking pool. The user comes
/// from the caller's baggage; what it sets goes back to the caller.
#[sync_endpoint]
fn orders(State(backend): State<Backend>) -> String {
    let user = USER.get().unwrap_or_else(|| "anonymous".to_string());
    if let Some(items) = backend.cache.lock().unwrap().get(&user).cloned() {
        CACHE_HIT.set(true);
        backend.log.write(format!("backend: orders of {user} from the cache"));
        return items;
    }
    let db = backend.db.lock().unwrap();
    let mut query = db.prepare("SELECT item FROM orders WHERE user = ?1 ORDER BY item").unwrap();
    let items: Vec<String> =
        query.query_map([&user], |row| row.get(0)).unwrap().collect::<Result<_, _>>().unwrap();
    ROWS.set(items.len() as u64);
    CACHE_HIT.set(false);
    backend.log.write(format!("backend: orders of {user} from SQLite, {} row(s)", items.len()));
    let items = items.join(", ");
    backend.cache.lock().unwrap().insert(user, items.clone());
    items
}

pub fn backend(backend: Backend) -> Router {
    Router::new().route("/orders", get(orders)).with_state(backend).layer(IncomingLayer::new())
}

/// The gateway's state: where the backend is, and its own log.
#[derive(Clone)]
pub struct Gateway {
    backend: SocketAddr,
    log: Log,
}

/// The gateway's handler: authenticates the user, then asks the backend.
async fn gateway_orders(
    State(gateway): State<Gateway>,
    axum::extract::Path(user): axum::extract::Path<String>,
) -> String {
    USER.set(Some(user));
    let mut client = OutgoingLayer::new().layer(http_client(gateway.backend));
    let request = http::Request::get("/orders").body(Empty::new()).unwrap();
    let response = client.ready().await.unwrap().call(request).await.unwrap();
    response.into_body()
}

/// The gateway's access log: names no user, no row count; reads them from the context.
async fn access_log(State(gateway): State<Gateway>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    gateway.log.write(format!(
        "gateway: GET {path} {} user={} db.rows={} cache.hit={}",
        response.status().as_u16(),
        USER.get().unwrap_or_default(),
        ROWS.get(),
        CACHE_HIT.get(),
    ));
    response
}

pub fn gateway(gateway: Gateway) -> Router {
    Router::new()
        .route("/orders/{user}", get(gateway_orders))
        .layer(middleware::from_fn_with_state(gateway.clone(), access_log))
        .with_state(gateway)
        .layer(IncomingLayer::new())
}

/// A hyper client, one connection per request, as a tower service.
fn http_client(
    addr: SocketAddr,
) -> impl Service<
    http::Request<Empty<Bytes>>,
    Response = http::Response<String>,
    Error = hyper::Error,
    Future: Send,
> + Clone {
    service_fn(move |request: http::Request<Empty<Bytes>>| async move {
        let stream = tokio::net::TcpStream::connect(addr).await.expect("the server listens");
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        let response = sender.send_request(request).await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(http::Response::from_parts(parts, String::from_utf8_lossy(&body).into_owned()))
    })
}

async fn serve(app: Router) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

/// Both servers' logs after the requests, and the bodies the gateway answered.
pub struct Run {
    pub bodies: Vec<String>,
    pub gateway_log: Vec<String>,
    pub backend_log: Vec<String>,
}

/// Starts the backend (its database in `dir`) and the gateway, sends the gateway a request
/// for ada, one for grace and ada's again (answered from the cache).
pub async fn run(dir: &Path) -> Result<Run, Box<dyn std::error::Error + Send + Sync>> {
    let (gateway_log, backend_log) = (Log::default(), Log::default());
    let backend_addr = serve(backend(Backend::open(dir, backend_log.clone())?)).await?;
    let gateway_addr = serve(gateway(Gateway { backend: backend_addr, log: gateway_log.clone() })).await?;
    let mut bodies = Vec::new();
    for user in ["ada", "grace", "ada"] {
        let request = http::Request::get(format!("/orders/{user}")).body(Empty::new())?;
        let response = http_client(gateway_addr).oneshot(request).await?;
        bodies.push(response.into_body());
    }
    Ok(Run { bodies, gateway_log: gateway_log.lines(), backend_log: backend_log.lines() })
}

/// A directory of its own under the system's temporary directory, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> std::io::Result<TempDir> {
        let unique = format!(
            "contextvars-services-{}-{}",
            std::process::id(),
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos()
        );
        let path = std::env::temp_dir().join(unique);
        std::fs::create_dir(&path)?;
        Ok(TempDir(path))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let dir = TempDir::new()?;
    let run = run(dir.path()).await?;
    for body in &run.bodies {
        println!("answer: {body}");
    }
    println!("\nbackend log:");
    run.backend_log.iter().for_each(|line| println!("  {line}"));
    println!("\ngateway log:");
    run.gateway_log.iter().for_each(|line| println!("  {line}"));
    Ok(())
}
