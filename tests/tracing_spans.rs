//! Feature `tracing`: `spawn`, `spawn_blocking` and `#[sync_endpoint]` run the child inside
//! the spawner's tracing span; the `*_without_span` forms do not.

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_run_in_the_spawners_span_unless_told_not_to() {
    let recorder = recorder();
    let span = tracing::info_span!("request");
    async {
        contextvars::spawn(async { tracing::info!("task") }).await.unwrap();
        contextvars::spawn_blocking(|| tracing::info!("blocking")).await.unwrap();
        endpoint().await;
        contextvars::tracing::spawn_without_span(async { tracing::info!("task") }).await.unwrap();
        contextvars::tracing::spawn_blocking_without_span(|| tracing::info!("blocking")).await.unwrap();
    }
    .instrument(span)
    .await;
    let spans = recorder.0.lock().unwrap().clone();
    assert_eq!(spans, ["request", "request", "request", "-", "-"]);
}
