//! Feature `tracing`: every child form (tasks, the blocking pool, local tasks, `JoinSet`,
//! threads, scoped threads, rayon, `#[sync_endpoint]`) runs inside the spawner's tracing
//! span; under `contextvars::untraced` none does.

use std::sync::{Arc, Mutex};

use contextvars::sync_endpoint;
use tracing::{Instrument, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// Records, for every event, the name of the span it happened in (or `-`).
#[derive(Clone, Default)]
struct SpanOfEvents(Arc<Mutex<Vec<String>>>);

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for SpanOfEvents {
    fn on_event(&self, event: &tracing::Event<'_>, context: Context<'_, S>) {
        let span = context.event_span(event).map_or("-".to_string(), |span| span.name().to_string());
        self.0.lock().unwrap().push(span);
    }
}

/// Records the name of every span that closed.
#[derive(Clone, Default)]
struct Closed(Arc<Mutex<Vec<String>>>);

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Closed {
    fn on_close(&self, id: tracing::span::Id, context: Context<'_, S>) {
        let name = context.span(&id).map_or("-".to_string(), |span| span.name().to_string());
        self.0.lock().unwrap().push(name);
    }
}

fn recorders() -> &'static (SpanOfEvents, Closed) {
    static RECORDERS: std::sync::OnceLock<(SpanOfEvents, Closed)> = std::sync::OnceLock::new();
    RECORDERS.get_or_init(|| {
        let (recorder, closed) = (SpanOfEvents::default(), Closed::default());
        // Global: the children run on other threads.
        let subscriber = tracing_subscriber::registry().with(recorder.clone()).with(closed.clone());
        tracing::subscriber::set_global_default(subscriber).unwrap();
        (recorder, closed)
    })
}

fn recorder() -> SpanOfEvents {
    recorders().0.clone()
}

#[sync_endpoint]
fn endpoint() {
    tracing::info!("in the endpoint");
}

/// Runs `f`, under `contextvars::untraced` if `untraced`.
fn start<R>(untraced: bool, f: impl FnOnce() -> R) -> R {
    if untraced { contextvars::untraced(f) } else { f() }
}

/// Starts one child of every form (under `untraced` if asked), each emitting one event
/// (rayon's iterator: four), and waits for them all.
async fn every_child_form(untraced: bool) {
    start(untraced, || {
        contextvars::spawn(async {
            tokio::task::yield_now().await; // a later poll too
            tracing::info!("task");
        })
    })
    .await
    .unwrap();
    start(untraced, || contextvars::spawn_blocking(|| tracing::info!("blocking"))).await.unwrap();
    endpoint().await; // awaited in place: the caller's own work, always in its span
    tokio::task::LocalSet::new()
        .run_until(async {
            start(untraced, || contextvars::spawn_local(async { tracing::info!("local") })).await.unwrap()
        })
        .await;
    let mut set = contextvars::JoinSet::new();
    start(untraced, || set.spawn(async { tracing::info!("set task") }));
    start(untraced, || set.spawn_blocking(|| tracing::info!("set blocking")));
    while let Some(joined) = set.join_next().await {
        joined.unwrap();
    }
    tokio::task::LocalSet::new()
        .run_until(async {
            let mut set = contextvars::JoinSet::new();
            start(untraced, || set.spawn_local(async { tracing::info!("set local") }));
            set.join_next().await.unwrap().unwrap();
        })
        .await;
    start(untraced, || contextvars::thread::spawn(|| tracing::info!("thread"))).join().unwrap();
    contextvars::thread::scope(|s| {
        start(untraced, || s.spawn(|| tracing::info!("scoped thread"))).join().unwrap();
    });
    start(untraced, || contextvars::rayon::join(|| tracing::info!("rayon a"), || tracing::info!("rayon b")));
    // The scope's spawn is made in its body, which runs in the span the scope carried.
    start(untraced, || contextvars::rayon::scope(|s| s.spawn(|_| tracing::info!("rayon spawn"))));
    {
        use contextvars::rayon::WithContextExt;
        use rayon::prelude::*;
        start(untraced, || (0..4).into_par_iter().with_context()).for_each(|_| tracing::info!("rayon item"));
    }
}

/// How many events `every_child_form` emits.
const CHILD_EVENTS: usize = 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_child_form_runs_in_the_spawners_span_unless_untraced() {
    let recorder = recorder();
    let span = tracing::info_span!("request");
    let before = recorder.0.lock().unwrap().len();
    every_child_form(false).instrument(span.clone()).await;
    let spans = recorder.0.lock().unwrap()[before..].to_vec();
    assert_eq!(spans, ["request"; CHILD_EVENTS]);

    let before = recorder.0.lock().unwrap().len();
    every_child_form(true).instrument(span.clone()).await;
    let spans = recorder.0.lock().unwrap()[before..].to_vec();
    // Untraced children enter no span. Local tasks are polled by the `LocalSet`, itself
    // polled here inside the span: there they see it, as tokio's own local tasks would.
    let mut expected = ["-"; CHILD_EVENTS];
    // The endpoint (2), the local task (3) and the set's local task (6).
    for index in [2, 3, 6] {
        expected[index] = "request";
    }
    assert_eq!(spans, expected);

    // What an aborted task drops is dropped inside its span too.
    struct LogOnDrop;
    impl Drop for LogOnDrop {
        fn drop(&mut self) {
            tracing::info!("dropped");
        }
    }
    let (started, wait) = tokio::sync::oneshot::channel();
    let task = span.in_scope(|| {
        contextvars::spawn(async move {
            let _guard = LogOnDrop;
            started.send(()).unwrap();
            std::future::pending::<()>().await
        })
    });
    wait.await.unwrap();
    let before = recorder.0.lock().unwrap().len();
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    let spans = recorder.0.lock().unwrap()[before..].to_vec();
    assert_eq!(spans, ["request"]);
}

/// A child holds its spawner's span: the span closes when the last of them ends, not when
/// the spawner leaves it (as with `Instrument`). An `untraced` child holds none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_keeps_its_spawners_span_open_until_it_ends() {
    let closed = &recorders().1;
    let was_closed = |name: &str| closed.0.lock().unwrap().iter().any(|closed| closed == name);
    let mut set = contextvars::JoinSet::new();
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let (release_untraced, released_untraced) = tokio::sync::oneshot::channel::<()>();
    {
        let span = tracing::info_span!("outlived request");
        let _entered = span.enter();
        set.spawn(async move { released.await.unwrap() });
        let untraced_span = tracing::info_span!("untraced request");
        let _entered = untraced_span.enter();
        contextvars::untraced(|| set.spawn(async move { released_untraced.await.unwrap() }));
    }
    assert!(!was_closed("outlived request"), "the child still runs in it");
    assert!(was_closed("untraced request"));
    release.send(()).unwrap();
    release_untraced.send(()).unwrap();
    while let Some(joined) = set.join_next().await {
        joined.unwrap();
    }
    assert!(was_closed("outlived request"));
}

/// The name of the span a child spawned with `spawn_blocking` runs in (or `-`). Asks the
/// subscriber without an event, so the other tests' event records are left alone.
async fn child_span() -> String {
    recorder();
    let name = || tracing::Span::current().metadata().map_or("-", |span| span.name()).to_string();
    contextvars::spawn_blocking(name).await.unwrap()
}

/// `untraced` nests, ends with its closure even when that panics, and reaches the
/// descendants of an untraced child; a child's own `untraced` leaves its spawner traced.
#[tokio::test(flavor = "current_thread")]
async fn untraced_nests_and_ends_with_its_closure_even_on_a_panic() {
    let span = tracing::info_span!("untraced probe");
    async {
        assert_eq!(child_span().await, "untraced probe");
        let nested = contextvars::untraced(|| contextvars::untraced(|| contextvars::spawn(child_span())));
        assert_eq!(nested.await.unwrap(), "-");
        let after_inner = contextvars::untraced(|| {
            contextvars::untraced(|| ());
            contextvars::spawn(child_span())
        });
        assert_eq!(after_inner.await.unwrap(), "-", "the outer call still applies");
        let panicked = std::panic::catch_unwind(|| contextvars::untraced(|| panic!("in untraced")));
        assert!(panicked.is_err());
        assert_eq!(child_span().await, "untraced probe", "traced again after the panic");
        let grandchild = contextvars::untraced(|| contextvars::spawn(async { child_span().await }));
        assert_eq!(grandchild.await.unwrap(), "-", "an untraced child's children are untraced");
        let child =
            contextvars::spawn(async { contextvars::untraced(|| contextvars::spawn(child_span())).await });
        assert_eq!(child.await.unwrap().unwrap(), "-");
        assert_eq!(child_span().await, "untraced probe");
    }
    .instrument(span)
    .await;
}
