//! Context variables for async Rust: Python's PEP 567 `contextvars`, copied into tasks and
//! threads like Python does, and brought **back** to the code that awaited them when you
//! ask: at the join, per function, or per variable, with a real three-way merge.
//!
//! ```
//! use contextvars::{Context, ContextVar};
//!
//! static USER: ContextVar<Option<String>> = ContextVar::new("USER", || None);
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! USER.set(Some("ada".into()));
//!
//! // Copied down: the task starts with the spawner's values.
//! let seen = contextvars::spawn(async { USER.get() }).await.unwrap();
//! assert_eq!(seen.as_deref(), Some("ada"));
//!
//! // Merged back when the join asks for it.
//! contextvars::spawn_blocking(|| USER.set(Some("bob".into()))).merge_back().await.unwrap();
//! assert_eq!(USER.get().as_deref(), Some("bob"));
//!
//! // Snapshots are O(1) and immutable.
//! let snapshot = Context::current();
//! USER.set(None);
//! assert_eq!(snapshot.get(&USER).as_deref(), Some("bob"));
//! # }
//! ```
//!
//! # The macros
//!
//! The whole attribute language on one screen: [`#[context_var]`](context_var) and
//! [`context_vars!`](context_vars) declare variables with their flow policy,
//! [`#[propagate]`](propagate) chooses per function what flows back to the awaiting code,
//! and [`#[sync_endpoint]`](sync_endpoint) runs a blocking function on the blocking pool and
//! brings all its changes back.
//!
//! ```
//! use contextvars::{context_var, context_vars, propagate, sync_endpoint};
//!
//! #[context_var]                        // default: `Default::default()`, here `None`
//! pub static USER: Option<String>;
//! #[context_var]
//! static REQUEST_ID: u64 = 0;           // default expression, evaluated lazily, at most once
//! #[context_var(name = "txn", inherit = false, back = false)]
//! static TXN: Option<u32>;              // neither copied into tasks nor brought back
//! #[context_var(merge = append_new)]    // fn(base: &T, parent: &T, child: &T) -> T
//! static AUDIT: Vec<String>;
//! # #[allow(clippy::ptr_arg)]
//! # fn append_new(_base: &Vec<String>, parent: &Vec<String>, child: &Vec<String>) -> Vec<String> {
//! #     parent.iter().chain(child.iter().filter(|entry| !parent.contains(entry))).cloned().collect()
//! # }
//!
//! context_vars! {                       // several at once
//!     pub static TENANT: String = "public".to_string();
//!     #[context_var(back = false)] static SCRATCH: u32;
//! }
//!
//! #[propagate(back)]                    // runs in a copy; its changes land when it returns,
//!                                       // and reach whoever awaits its task or thread
//! fn authenticate(token: &str) { USER.set(Some(format!("user-{token}"))); SCRATCH.set(1); }
//!
//! #[propagate(back(USER, REQUEST_ID))]  // only these variables flow back
//! async fn login(id: u64) { REQUEST_ID.set(id); AUDIT.set(vec!["login".into()]); }
//!
//! #[propagate(none)]                    // runs in a copy: its changes are discarded
//! fn dry_run() { TENANT.set("dry-run".into()); }
//!
//! #[sync_endpoint]                      // becomes `async fn profile(id: u64) -> String`
//! fn profile(id: u64) -> String { TXN.set(Some(1)); format!("{id}@{}", TENANT.get()) }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! contextvars::spawn_blocking(|| authenticate("42")).await.unwrap();
//! contextvars::spawn(login(7)).await.unwrap();
//! dry_run();
//! assert_eq!(profile(7).await, "7@public"); // ran on the blocking pool
//!
//! assert_eq!((USER.get().as_deref(), REQUEST_ID.get()), (Some("user-42"), 7));
//! assert!(AUDIT.get().is_empty());          // not in `back(USER, REQUEST_ID)`
//! assert_eq!(TENANT.get(), "public");       // `none`
//! assert_eq!((TXN.get(), SCRATCH.get()), (None, 0)); // `back = false`
//! # }
//! ```
//!
//! # Who has a context: tasks, pools and other executors
//!
//! A context belongs to the code that entered it. [`Context::run`] and every poll of a
//! [`Scope`] enter one on the thread for the tokio task running at that moment (or for the
//! thread, outside any task); [`spawn`] and [`spawn_blocking`] give each child a scope.
//!
//! * **Plain `tokio::spawn` tasks** have no context of their own, whatever polls them: a
//!   worker thread, or a runtime driven inside `ctx.run(|| runtime.block_on(..))`, or a
//!   `LocalSet` polled inside a scope. There [`ContextVar::get`] returns the default and
//!   [`ContextVar::set`] panics at your line with the fix: start the task with [`spawn`], or
//!   wrap its future in [`Context::current()`](Context::current)[`.scope(fut)`](Context::scope)
//!   (in a web service the usual cause is a missing `tower::ContextLayer`, or a middleware
//!   outside it). A [`#[propagate(back)]`](propagate) function called there works on its own
//!   copy, and panics as it returns if a change of its would land, naming the same fixes. A
//!   plain `.await` of a [`JoinHandle`] there returns the output and delivers nothing;
//!   [`merge_back`](JoinHandle::merge_back) there panics. The bodies of
//!   `#[tokio::main]` and `#[tokio::test]` are not tasks: they run in the main thread's
//!   context and can `set` freely.
//!   What a task blocks on itself (`block_in_place(|| Handle::current().block_on(fut))`,
//!   `futures::executor::block_on(fut)`) is that task's code and has its context.
//! * **rayon** (feature `rayon`): a job on a pool thread outside any context reads
//!   defaults and its `set` panics, rather than writing the pool thread's own context, which
//!   every later job on it would read. Give jobs a context with the `contextvars::rayon`
//!   adapters, or with `ctx.clone().run(..)` in each job. A worker that waits (in `join`,
//!   `scope`, a parallel iterator) runs other jobs of the pool meanwhile: the adapters put
//!   the caller's context away for the wait, but a plain `rayon::join` or `par_iter` called
//!   inside `ctx.run(..)` does not, and a job run during it reads and writes `ctx`. Inside a
//!   context, make parallel calls with the adapters.
//! * **Executors the library cannot see** (futures' `LocalPool` and `ThreadPool`, smol,
//!   async-std, glommio): their tasks are not told apart. What holds: a task wrapped in a
//!   `Scope` has its own context at every poll, whichever thread polls it. What does not: an
//!   unwrapped task reads and writes the context of the thread (or of the `Context::run`)
//!   it is polled in, shared with every other unwrapped task there, and nothing panics. So
//!   wrap each task where you spawn it (and use [`Fork`] to also bring its changes back):
//!
//! ```
//! use contextvars::{Context, ContextVar};
//! use futures::executor::LocalPool;
//! use futures::task::LocalSpawnExt;
//!
//! static USER: ContextVar<&'static str> = ContextVar::new("USER", || "nobody");
//!
//! let mut pool = LocalPool::new();
//! for user in ["ada", "bob"] {
//!     // `smol::spawn(Context::current().scope(fut))` and async-std alike.
//!     let task = Context::current().scope(async move {
//!         USER.set(user);
//!         assert_eq!(USER.get(), user);
//!     });
//!     pool.spawner().spawn_local(task).unwrap();
//! }
//! pool.run();
//! assert_eq!(USER.get(), "nobody"); // neither task wrote the thread's context
//! ```
//!
//! A context's values are dropped in a scratch context, so a value whose `Drop` sets a
//! variable works wherever a context ends (a finished, panicked or aborted task, a dropped
//! `Scope`), and never writes into the context of whoever drops it.
//!
//! # Crossing boundaries
//!
//! Tasks, the blocking pool, local tasks, [`JoinSet`], std threads and scoped threads
//! ([`thread`]), rayon (`contextvars::rayon`, feature `rayon`) and any other executor ([`Fork`]):
//! what each copies down and brings back is in one table, on the [`boundaries`] page.
//!
//! # Across services
//!
//! With the feature `opentelemetry`, a variable declared with a `baggage` key travels to the
//! services a request calls, in the W3C `baggage` header, with the W3C trace context
//! (`traceparent`, `tracestate`) beside it; [`#[context_var(baggage = "…", back_from_remote =
//! true)]`](context_var) also lets a called service send its changes back, merged into the
//! caller like a join (a non-standard response header, opt-in per variable). The server
//! reads the headers with `opentelemetry::IncomingLayer` (a `ContextLayer` that reads them,
//! for axum, hyper and tonic servers). The client writes them, and merges what comes back,
//! with:
//!
//! * `opentelemetry::OutgoingLayer`, a tower layer: hyper, and tonic around the `Channel`;
//! * `opentelemetry::OutgoingMiddleware` (feature `reqwest`), for a `reqwest-middleware`
//!   client;
//! * `opentelemetry::OutgoingInterceptor` (feature `tonic`), a tonic interceptor: it writes
//!   them but brings nothing back;
//! * `opentelemetry::inject` into any `http::HeaderMap`.
//!
//! ```
//! # #[cfg(feature = "reqwest")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), reqwest_middleware::Error> {
//! use contextvars::context_var;
//! use contextvars::opentelemetry::{IncomingLayer, OutgoingMiddleware};
//! use reqwest_middleware::{ClientBuilder, reqwest};
//!
//! #[context_var(baggage = "user.id")]                          // travels to every callee
//! static USER: Option<String>;
//! #[context_var(baggage = "db.rows", back_from_remote = true)] // and comes back from them
//! static ROWS: u64;
//!
//! async fn rows() -> String {
//!     ROWS.set(ROWS.get() + 3);
//!     format!("rows of {}", USER.get().unwrap_or_default())
//! }
//!
//! // A backend on loopback, serving each request in a context that holds the caller's baggage.
//! let backend = axum::Router::new().route("/rows", axum::routing::get(rows)).layer(IncomingLayer::new());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
//! let url = format!("http://{}/rows", listener.local_addr().unwrap());
//! tokio::spawn(async move { axum::serve(listener, backend).await });
//!
//! // A reqwest client: the caller's context goes out, the backend's changes come back.
//! let reqwest = reqwest::Client::builder().no_proxy().build()?;
//! let client = ClientBuilder::new(reqwest).with(OutgoingMiddleware::new()).build();
//! USER.set(Some("ada".into()));
//! assert_eq!(client.get(&url).send().await?.text().await?, "rows of ada");
//! assert_eq!(ROWS.get(), 3); // what the backend counted came back
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "reqwest"))]
//! # fn main() {}
//! ```
//!
//! Entries no variable declares are forwarded, never turned into variables; a value sent
//! back for a variable not declared `back_from_remote = true` is ignored. See the module
//! `opentelemetry` for the limits, the encoding and the interop with `opentelemetry_sdk`, and
//! `examples/services.rs` for a gateway and a backend that use all of it.
//!
//! The trace context read from the headers is the variable `opentelemetry::TRACE_CONTEXT`,
//! and OpenTelemetry's own API (`opentelemetry::Context::current()`, `get_active_span`)
//! sees it in the request's future and in every child form, with no `.with_context()` at
//! each spawn; `opentelemetry::ContextAttributes` records chosen variables as attributes of
//! every span the SDK starts.
//!
//! # Features
//!
//! * `tokio` (default): [`spawn`], [`spawn_blocking`], [`spawn_local`], [`JoinSet`],
//!   [`block_on`], [`JoinHandle`] and `#[sync_endpoint]`.
//! * `tower`: `tower::ContextLayer`, a fresh context for every request.
//! * `tracing`: `tracing::ContextFields`, context variables on every log event (text or
//!   JSON); every child form ([`spawn`], [`spawn_blocking`], [`spawn_local`], [`JoinSet`],
//!   [`thread`], the `rayon` adapters, `#[sync_endpoint]`) runs the child inside the
//!   spawner's tracing span (opt out with [`untraced`], for every form alike).
//! * `rayon`: `rayon::join`, `rayon::scope` and `.with_context()` on parallel iterators, whose
//!   closures run in copies of the caller's context.
//! * `opentelemetry`: `opentelemetry`, variables across services in the W3C `baggage`
//!   header, the trace context with them, and values back over the wire (see
//!   [Across services](#across-services)).
//! * `reqwest`: `opentelemetry` plus `opentelemetry::OutgoingMiddleware` for
//!   `reqwest-middleware` clients (reqwest without default features: the application's own
//!   reqwest dependency chooses TLS and HTTP/2).
//! * `tonic`: `opentelemetry` plus `opentelemetry::OutgoingInterceptor`, a tonic interceptor
//!   (tonic without its transport). A tonic `Channel` needs no feature beyond `opentelemetry`:
//!   `opentelemetry::OutgoingLayer` wraps it.
//! * `services-example`: only builds `examples/services.rs` (it adds SQLite); not for
//!   library users.
#![forbid(unsafe_code)]
// Examples compile without a warning, so that what users paste stays clean.
#![doc(test(attr(deny(warnings))))]
#![warn(missing_docs, unreachable_pub, rust_2018_idioms)]

#[doc(inline)]
pub use contextvars_runtime::{
    AnyVar, Changes, Context, ContextVar, Error, Fork, PropagateBack, Scope, Token, propagate_back,
    propagate_back_async,
};
#[cfg(feature = "tokio")]
#[doc(inline)]
pub use contextvars_runtime::{JoinError, JoinHandle, MergeBack, block_on};

mod carry;
pub use carry::untraced;
#[cfg(feature = "tokio")]
mod joinset;
#[cfg(feature = "tokio")]
pub use joinset::JoinSet;
#[cfg(feature = "tokio")]
mod tasks;
#[cfg(feature = "tokio")]
pub use tasks::{spawn, spawn_blocking, spawn_local};
pub mod thread;

pub mod boundaries;
#[cfg(feature = "rayon")]
pub mod rayon;

#[cfg(feature = "opentelemetry")]
pub mod opentelemetry;
#[cfg(feature = "tower")]
pub mod tower;
#[cfg(feature = "tracing")]
pub mod tracing;

#[cfg(any(feature = "tracing", feature = "opentelemetry"))]
mod fields;
mod macros;
#[doc(inline)]
pub use macros::{context_var, context_vars, propagate, sync_endpoint};

/// What the macros expand to. Not public API: anything here may change in any release.
#[doc(hidden)]
pub mod __private {
    #[cfg(not(feature = "opentelemetry"))]
    pub use crate::__contextvars_baggage_needs_opentelemetry as baggage_var;
    #[cfg(feature = "opentelemetry")]
    pub use crate::opentelemetry::Registered as RegisteredBaggage;
    #[cfg(feature = "opentelemetry")]
    pub use crate::register_baggage as baggage_var;
    #[cfg(feature = "tokio")]
    pub use crate::tasks::run_sync_endpoint;
    pub use contextvars_runtime::{
        AnyVar, Context, ContextVar, InlineCopy, ThreadSafeValue, assert_send_argument,
        assert_send_argument_type, new_context_var, propagate_back, propagate_back_async,
    };
    #[cfg(feature = "opentelemetry")]
    pub use inventory;
}

/// What `#[context_var(baggage = "…")]` expands to without the feature: one error that
/// names it.
#[cfg(not(feature = "opentelemetry"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __contextvars_baggage_needs_opentelemetry {
    ($($var:tt)*) => {
        ::core::compile_error!(
            "`baggage = \"…\"` needs the feature `opentelemetry` of `contextvars`: \
             `contextvars = { version = \"…\", features = [\"opentelemetry\"] }`"
        );
    };
}
