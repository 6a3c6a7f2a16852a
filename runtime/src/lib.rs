//! The runtime of [`contextvars`](https://docs.rs/contextvars): context variables for async
//! Rust, copied into tasks and threads, and merged back when the caller asks.
//!
//! Most users depend on the `contextvars` facade crate, which re-exports everything here
//! together with the `#[context_var]`, `#[propagate]` and `#[sync_endpoint]` macros.
//!
//! The pieces, and how data flows between them:
//!
//! * [`ContextVar<T>`] is a `static` key with a lazily computed default and a flow policy
//!   (`inherit`, `back`, `merge`).
//! * [`Context`] is an immutable snapshot: a persistent map from variables to values. Taking
//!   one ([`Context::current`]) costs one reference-count increment.
//! * Every thread has a current context. [`Context::run`] enters a context for a closure and
//!   [`Scope`] enters one for every poll of a future.
//! * [`Changes`] is the difference between two contexts; [`Changes::apply`] merges it into the
//!   current context with a three-way merge (fork point, parent, child).
//! * [`propagate_back`] and [`propagate_back_async`] (what `#[propagate(back)]` expands to)
//!   run a function in an O(1) copy of the current context and, when it completes, merge its
//!   changes into the context it returns into and mark them there; a panic or a cancellation
//!   lands nothing.
//! * With the `tokio` feature, [`spawn`] and [`spawn_blocking`] copy the current context into
//!   the child. Awaiting the [`JoinHandle`] delivers the final values of the variables marked
//!   in the child (and marks them, so they flow on up); [`JoinHandle::merge_back`] brings all
//!   the child's changes back; [`spawn_local`] and [`JoinSet`] do the same for local tasks and
//!   sets of tasks.
//! * [`thread::spawn`] and [`thread::scope`] do it for `std` threads, and [`Fork`] for any
//!   other executor or pool: the copy taken at a boundary, and the join that brings a child's
//!   changes back.
// `unsafe` is denied everywhere but in the two downcasts of `value.rs`, each with its SAFETY
// argument (see BENCHMARKS.md for the measurement that asked for them).
#![deny(unsafe_code)]
// Examples compile without a warning, so that what users paste stays clean.
#![doc(test(attr(deny(warnings))))]
#![warn(missing_docs, unreachable_pub, rust_2018_idioms)]

mod changes;
mod context;
mod current;
mod error;
mod fork;
mod inline_copy;
mod join;
#[cfg(feature = "tokio")]
mod joinset;
mod map;
mod propagate;
#[cfg(test)]
mod scenarios;
mod scope;
mod support;
#[cfg(feature = "tokio")]
mod task;
pub mod thread;
mod token;
mod value;
mod var;

pub use changes::Changes;
pub use context::Context;
#[doc(hidden)]
pub use current::{as_caller, without_context};
pub use error::Error;
pub use fork::Fork;
#[doc(hidden)]
pub use inline_copy::InlineCopy;
#[cfg(feature = "tokio")]
pub use joinset::JoinSet;
pub use propagate::{PropagateBack, propagate_back, propagate_back_async};
pub use scope::Scope;
#[doc(hidden)]
pub use support::{ThreadSafeValue, assert_send_argument, assert_send_argument_type, new_context_var};
#[cfg(feature = "tokio")]
pub use task::{
    JoinError, JoinHandle, MergeBack, block_on, run_sync_endpoint, spawn, spawn_blocking, spawn_local,
};
pub use token::Token;
/// What `JoinSet`'s spawns return (tokio's own type), for the facade's `JoinSet`.
#[cfg(feature = "tokio")]
#[doc(hidden)]
pub use tokio::task::AbortHandle;
pub use var::{AnyVar, ContextVar};
