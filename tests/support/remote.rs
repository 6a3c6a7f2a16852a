//! What the client-integration tests share (`#[path = "support/remote.rs"] mod remote;`): the
//! variables that travel, a trace to send, and a gate that holds a handler mid-request.

// Each test file uses only some of these.
#![allow(dead_code)]

use std::sync::Arc;

use contextvars::context_var;
use contextvars::opentelemetry::TRACE_CONTEXT;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tokio::sync::Notify;

#[context_var(baggage = "user.id")]
pub static USER: Option<String>;

fn sum(base: &u64, parent: &u64, child: &u64) -> u64 {
    parent + child - base
}

#[context_var(baggage = "db.rows", back_from_remote = true, merge = sum)]
pub static ROWS: u64;

#[context_var(baggage = "cache.hit", back_from_remote = true)]
pub static CACHE_HIT: bool;

#[context_var(baggage = "tenant")]
pub static TENANT: String = "public".to_string();

/// The trace id [`remote_trace`] carries.
pub const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// An OpenTelemetry context whose span came from another service.
pub fn remote_trace() -> opentelemetry::Context {
    opentelemetry::Context::new().with_remote_span_context(SpanContext::new(
        TraceId::from_hex(TRACE_ID).unwrap(),
        SpanId::from_hex("00f067aa0ba902b7").unwrap(),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    ))
}

/// What a handler sees of the caller: `user|tenant|trace id` (`-` for none).
pub fn seen_by_handler() -> String {
    let trace_id = TRACE_CONTEXT.get().span().span_context().trace_id();
    format!(
        "{}|{}|{}",
        USER.get().unwrap_or_default(),
        TENANT.get(),
        if trace_id == TraceId::INVALID { "-".to_string() } else { trace_id.to_string() },
    )
}

/// The work of a backend: counts rows and a cache hit, which go back to the caller.
pub fn count_rows() {
    ROWS.set(ROWS.get() + 3);
    CACHE_HIT.set(true);
}

/// Holds a handler mid-request: it says it has [`arrived`](Gate::arrived) and waits for the
/// test to [`release`](Gate::release) it.
#[derive(Clone, Default)]
pub struct Gate {
    arrived: Arc<Notify>,
    released: Arc<Notify>,
}

impl Gate {
    /// In the handler: tell the test, then wait for it.
    pub async fn pass(&self) {
        self.arrived.notify_one();
        self.released.notified().await;
    }

    /// In the test: until a handler waits at the gate.
    pub async fn arrived(&self) {
        self.arrived.notified().await;
    }

    /// In the test: lets the waiting handler go on.
    pub fn release(&self) {
        self.released.notify_one();
    }
}
