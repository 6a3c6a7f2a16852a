//! Feature `opentelemetry`: in every child form (tasks, the blocking pool, local tasks,
//! `JoinSet`, threads, scoped threads, rayon, `#[sync_endpoint]`) the OpenTelemetry API
//! itself (`Context::current()`, `get_active_span`) sees the child's `TRACE_CONTEXT`; a span
//! the spawner's code attached is the one its children follow; `untraced` children see none.

use contextvars::opentelemetry::TRACE_CONTEXT;
use contextvars::rayon::WithContextExt;
use contextvars::sync_endpoint;
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer, TracerProvider,
};
use rayon::prelude::*;

fn remote_span() -> SpanContext {
    SpanContext::new(
        TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
        SpanId::from_hex("00f067aa0ba902b7").unwrap(),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    )
}

/// The span OpenTelemetry's API sees as current here, asked both ways.
fn seen() -> SpanId {
    let current = opentelemetry::Context::current().span().span_context().span_id();
    let active = opentelemetry::trace::get_active_span(|span| span.span_context().span_id());
    assert_eq!(current, active);
    current
}

#[sync_endpoint]
fn endpoint() -> SpanId {
    seen()
}

/// Runs `f`, under `contextvars::untraced` if `untraced`.
fn start<R>(untraced: bool, f: impl FnOnce() -> R) -> R {
    if untraced { contextvars::untraced(f) } else { f() }
}

/// What one child of every form sees (rayon's iterator: four items).
async fn every_child_form(untraced: bool) -> Vec<SpanId> {
    let mut seen_by = Vec::new();
    let task = start(untraced, || {
        contextvars::spawn(async {
            let first = seen();
            tokio::task::yield_now().await; // a later poll, maybe on another thread
            [first, seen()]
        })
    });
    seen_by.extend(task.await.unwrap());
    seen_by.push(start(untraced, || contextvars::spawn_blocking(seen)).await.unwrap());
    seen_by.push(endpoint().await);
    let local = tokio::task::LocalSet::new();
    let task =
        local.run_until(async { start(untraced, || contextvars::spawn_local(async { seen() })).await });
    seen_by.push(task.await.unwrap());
    let mut set = contextvars::JoinSet::new();
    start(untraced, || set.spawn(async { seen() }));
    seen_by.push(set.join_next().await.unwrap().unwrap());
    start(untraced, || set.spawn_blocking(seen));
    seen_by.push(set.join_next().await.unwrap().unwrap());
    let local = tokio::task::LocalSet::new();
    let joined = local.run_until(async {
        let mut set = contextvars::JoinSet::new();
        start(untraced, || set.spawn_local(async { seen() }));
        set.join_next().await.unwrap()
    });
    seen_by.push(joined.await.unwrap());
    seen_by.push(start(untraced, || contextvars::thread::spawn(seen)).join().unwrap());
    seen_by.push(contextvars::thread::scope(|s| start(untraced, || s.spawn(seen)).join().unwrap()));
    let (a, b) = start(untraced, || contextvars::rayon::join(seen, seen));
    seen_by.extend([a, b]);
    let mut spawned = None;
    start(untraced, || contextvars::rayon::scope(|s| s.spawn(|_| spawned = Some(seen()))));
    seen_by.push(spawned.unwrap());
    let items: Vec<SpanId> =
        start(untraced, || (0..4).into_par_iter().with_context()).map(|_| seen()).collect();
    seen_by.extend(items);
    seen_by
}

/// How many spans `every_child_form` reports.
const CHILDREN: usize = 17;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_opentelemetry_api_sees_trace_context_in_every_child_form() {
    TRACE_CONTEXT.set(opentelemetry::Context::new().with_remote_span_context(remote_span()));
    assert_eq!(seen(), SpanId::INVALID); // not attached here: the test's body is no child
    let remote = remote_span().span_id();
    assert_eq!(every_child_form(false).await, [remote; CHILDREN]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untraced_children_see_an_empty_trace_context() {
    TRACE_CONTEXT.set(opentelemetry::Context::new().with_remote_span_context(remote_span()));
    let mut expected = [SpanId::INVALID; CHILDREN];
    expected[3] = remote_span().span_id(); // the endpoint is awaited in place: the caller's work
    assert_eq!(every_child_form(true).await, expected);
    // Their `TRACE_CONTEXT` is empty too, so what they send carries no trace.
    let sent =
        contextvars::untraced(|| contextvars::spawn_blocking(|| TRACE_CONTEXT.get().has_active_span()));
    assert!(!sent.await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_follow_the_span_their_spawner_attached() {
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let tracer = provider.tracer("children");
    TRACE_CONTEXT.set(opentelemetry::Context::new().with_remote_span_context(remote_span()));
    let parent = TRACE_CONTEXT.get();
    let work = parent.with_span(tracer.start_with_context("work", &parent));
    let work_span = work.span().span_context().clone();
    assert_eq!(work_span.trace_id(), remote_span().trace_id());

    // Spawned while the spawner's code has its own span attached: the child follows it, in
    // the OpenTelemetry API and in its `TRACE_CONTEXT` (what it would send on).
    let child = {
        let _attached = work.clone().attach();
        contextvars::spawn_blocking(|| (seen(), TRACE_CONTEXT.get().span().span_context().span_id()))
    };
    assert_eq!(child.await.unwrap(), (work_span.span_id(), work_span.span_id()));
    // A call made meanwhile has that span as its parent too.
    let traceparent = |headers: &http::HeaderMap| headers["traceparent"].to_str().unwrap().to_string();
    let mut headers = http::HeaderMap::new();
    {
        let _attached = work.clone().attach();
        contextvars::opentelemetry::inject(&mut headers);
    }
    assert_eq!(traceparent(&headers), format!("00-{}-{}-01", work_span.trace_id(), work_span.span_id()));
    contextvars::opentelemetry::inject(&mut headers);
    assert_eq!(
        traceparent(&headers),
        format!("00-{}-{}-01", remote_span().trace_id(), remote_span().span_id())
    );
    // Inside a child, code that attaches its own context sees it until its guard drops.
    let inside = contextvars::spawn(async move {
        let before = seen();
        let during = {
            let _attached = work.attach();
            seen()
        };
        (before, during, seen())
    });
    let remote = remote_span().span_id();
    assert_eq!(inside.await.unwrap(), (remote, work_span.span_id(), remote));
    // Spawned after the guard dropped: the request's trace context again.
    assert_eq!(contextvars::spawn_blocking(seen).await.unwrap(), remote);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_stays_attached_on_the_pool_threads() {
    TRACE_CONTEXT.set(opentelemetry::Context::new().with_remote_span_context(remote_span()));
    for _ in 0..8 {
        contextvars::spawn_blocking(seen).await.unwrap();
        contextvars::spawn(async { seen() }).await.unwrap();
    }
    for _ in 0..8 {
        assert_eq!(tokio::task::spawn_blocking(seen).await.unwrap(), SpanId::INVALID);
        assert_eq!(tokio::spawn(async { seen() }).await.unwrap(), SpanId::INVALID);
    }
    (0..64).into_par_iter().with_context().for_each(|_| {
        seen();
    });
    let plain: Vec<SpanId> = (0..64).into_par_iter().map(|_| seen()).collect();
    assert!(plain.iter().all(|span| *span == SpanId::INVALID));
}

/// A span of this trace with the id `id`.
fn span_numbered(id: u64) -> opentelemetry::Context {
    let span = SpanContext::new(
        remote_span().trace_id(),
        SpanId::from_bytes(id.to_be_bytes()),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    opentelemetry::Context::new().with_remote_span_context(span)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_future_with_its_own_context_keeps_it_across_awaits_in_a_task() {
    use opentelemetry::context::FutureExt;
    TRACE_CONTEXT.set(opentelemetry::Context::new().with_remote_span_context(remote_span()));
    let seen_by = contextvars::spawn(async {
        let own = async {
            let first = seen();
            tokio::task::yield_now().await; // a later poll, maybe on another thread
            [first, seen()]
        };
        (own.with_context(span_numbered(7)).await, seen())
    });
    let (own, after) = seen_by.await.unwrap();
    assert_eq!(own, [SpanId::from_bytes(7u64.to_be_bytes()); 2]);
    assert_eq!(after, remote_span().span_id());
}

/// Unwinding out of a child, with its own context attached over the carried one, detaches
/// both in order: the pool threads are left with nothing attached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_that_panics_while_attached_leaves_nothing_attached() {
    TRACE_CONTEXT.set(opentelemetry::Context::new().with_remote_span_context(remote_span()));
    for _ in 0..4 {
        let task = contextvars::spawn(async {
            let _own = span_numbered(7).attach();
            panic!("in the task");
        });
        assert!(task.await.unwrap_err().is_panic());
        let blocking = contextvars::spawn_blocking(|| {
            let _own = span_numbered(7).attach();
            panic!("in the closure");
        });
        assert!(blocking.await.unwrap_err().is_panic());
    }
    for _ in 0..8 {
        assert_eq!(tokio::task::spawn_blocking(seen).await.unwrap(), SpanId::INVALID);
        assert_eq!(tokio::spawn(async { seen() }).await.unwrap(), SpanId::INVALID);
    }
}

/// rayon runs another job on a thread that waits inside a job of its own (work stealing):
/// each job still sees its own trace context, and the waiting one gets its back.
#[test]
fn stolen_rayon_jobs_see_their_own_trace_context() {
    let items: Vec<(u64, [SpanId; 3])> = (1..=64u64)
        .into_par_iter()
        .with_context()
        .map(|id| {
            TRACE_CONTEXT.set(span_numbered(id));
            let _attached = TRACE_CONTEXT.get().attach(); // for the item's own code
            let (a, b) = contextvars::rayon::join(seen, || contextvars::rayon::join(seen, seen).0);
            (id, [a, b, seen()])
        })
        .collect();
    for (id, seen_by) in items {
        assert_eq!(seen_by, [SpanId::from_bytes(id.to_be_bytes()); 3], "item {id}");
    }
}

/// A plain rayon job that the pool runs on a thread waiting inside a carried closure's
/// `contextvars::rayon::join` or `scope` (it steals it from its own queue) is not their
/// child: it sees no trace context, as it would anywhere else.
#[test]
fn a_foreign_job_run_while_a_join_waits_sees_no_trace_context() {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    let (sent, received) = std::sync::mpsc::channel::<SpanId>();
    TRACE_CONTEXT.set(opentelemetry::Context::new().with_remote_span_context(remote_span()));
    let mut context = contextvars::Context::current();
    pool.install(|| {
        context.run(|| {
            // The outer join's closure runs with the trace context attached; in it, `a`
            // queues the plain job over `b`: the inner join pops and runs it before `b`.
            let plain = sent.clone();
            let inner_join =
                || contextvars::rayon::join(move || rayon::spawn(move || plain.send(seen()).unwrap()), || ());
            contextvars::rayon::join(inner_join, || ());
            let plain = sent.clone();
            let inner_scope = || {
                contextvars::rayon::scope(|s| {
                    rayon::spawn(move || plain.send(seen()).unwrap());
                    s.spawn(|_| ());
                })
            };
            contextvars::rayon::join(inner_scope, || ());
        })
    });
    drop(sent);
    let seen_by: Vec<SpanId> = received.iter().collect();
    assert_eq!(seen_by, [SpanId::INVALID; 2]);
}
