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

fn recorder() -> SpanOfEvents {
    static RECORDER: std::sync::OnceLock<SpanOfEvents> = std::sync::OnceLock::new();
    RECORDER
        .get_or_init(|| {
            let recorder = SpanOfEvents::default();
            // Global: the children run on other threads.
            tracing::subscriber::set_global_default(tracing_subscriber::registry().with(recorder.clone()))
                .unwrap();
            recorder
        })
        .clone()
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
