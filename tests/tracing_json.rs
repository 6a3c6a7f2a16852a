//! `ContextFields` around tracing-subscriber's JSON format: the chosen variables become
//! members of each event's object, typed (strings, numbers, booleans, `null`), escaped so
//! that every line parses, also for events of a child task.

use std::sync::OnceLock;
use std::time::Duration;

use contextvars::ContextVar;
use contextvars::tracing::ContextFields;
use serde_json::{Value, json};
use tracing_subscriber::fmt::format;

mod support;
use support::LogBuffer;

static USER: ContextVar<String> = ContextVar::new("user", String::new);
static REQUEST_ID: ContextVar<u64> = ContextVar::new("request_id", || 0);
static ADMIN: ContextVar<bool> = ContextVar::new("admin", || false);
static SCORE: ContextVar<f64> = ContextVar::new("score", || 0.0);
static NICK: ContextVar<Option<String>> = ContextVar::new("nick", || None);
static TIMEOUT: ContextVar<Duration> = ContextVar::new("timeout", Duration::default);
static UNSET: ContextVar<u32> = ContextVar::new("unset", || 0);
/// A value whose `Debug` logs an event itself.
#[derive(Clone)]
struct Chatty;
impl std::fmt::Debug for Chatty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        tracing::info!("from inside a Debug");
        f.write_str("chatty")
    }
}
static CHATTY: ContextVar<Chatty> = ContextVar::new("chatty", || Chatty);
/// Named like a member of every JSON event.
static LEVEL: ContextVar<String> = ContextVar::new("level", String::new);

/// Two global subscribers cannot coexist: the JSON lines go to `NESTED`, unless the event's
/// target says `flat`, then to `FLAT` (an event format with `flatten_event(true)`).
fn logs() -> &'static (LogBuffer, LogBuffer) {
    static LOGS: OnceLock<(LogBuffer, LogBuffer)> = OnceLock::new();
    LOGS.get_or_init(|| {
        use tracing_subscriber::Layer;
        use tracing_subscriber::layer::SubscriberExt;
        let (nested, flat) = (LogBuffer::default(), LogBuffer::default());
        let vars: [&'static dyn contextvars::tracing::LogVar; 9] =
            [&USER, &REQUEST_ID, &ADMIN, &SCORE, &NICK, &TIMEOUT, &UNSET, &LEVEL, &CHATTY];
        let (writer, flat_writer) = (nested.clone(), flat.clone());
        let nested_layer = tracing_subscriber::fmt::layer()
            .event_format(ContextFields::new(&vars).format(format().json()))
            .with_writer(move || writer.clone())
            .with_filter(tracing_subscriber::filter::filter_fn(|meta| meta.target() != "flat"));
        let flat_layer = tracing_subscriber::fmt::layer()
            .event_format(ContextFields::new(&vars).format(format().json().flatten_event(true)))
            .with_writer(move || flat_writer.clone())
            .with_filter(tracing_subscriber::filter::filter_fn(|meta| meta.target() == "flat"));
        let subscriber = tracing_subscriber::registry().with(nested_layer).with(flat_layer);
        tracing::subscriber::set_global_default(subscriber).unwrap();
        (nested, flat)
    })
}

/// The lines of `buffer` whose message is `message`, parsed.
fn events(buffer: &LogBuffer, message: &str) -> Vec<Value> {
    let text = buffer.text();
    text.lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap_or_else(|error| panic!("{error}: {line}")))
        .filter(|event| event["fields"]["message"] == message || event["message"] == message)
        .collect()
}

fn set_values(user: &str) {
    USER.set(user.into());
    REQUEST_ID.set(u64::MAX);
    ADMIN.set(true);
    SCORE.set(-1.5);
    NICK.set(None);
    TIMEOUT.set(Duration::from_millis(1500)); // no JSON type: its `Debug` text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_variables_are_typed_members_of_each_json_event() {
    let (nested, _) = logs();
    let user = "ada \"the\" \\ lovelace\n\t\u{1}é";
    set_values(user);
    tracing::info!(status = 200, "served");
    contextvars::spawn_blocking(|| tracing::info!("from a worker")).await.unwrap();

    for message in ["served", "from a worker"] {
        let events = events(nested, message);
        assert_eq!(events.len(), 1, "{message}");
        let event = &events[0];
        assert_eq!(event["user"], json!(user));
        assert_eq!(event["request_id"], json!(u64::MAX));
        assert_eq!(event["admin"], json!(true));
        assert_eq!(event["score"], json!(-1.5));
        assert_eq!(event["nick"], Value::Null);
        assert_eq!(event["timeout"], json!("1.5s"));
        assert!(event.get("unset").is_none(), "a variable that is not set is left out");
        assert_eq!(event["level"], "INFO"); // the format's own members are untouched
    }
    assert_eq!(events(nested, "served")[0]["fields"]["status"], json!(200));
}

#[test]
fn flattened_events_get_them_beside_their_own_fields() {
    let (_, flat) = logs();
    NICK.set(Some("ada".into()));
    SCORE.set(f64::NAN); // not a JSON number
    tracing::info!(target: "flat", status = 201, "created");
    let events = events(flat, "created");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["status"], json!(201));
    assert_eq!(events[0]["nick"], json!("ada"));
    assert_eq!(events[0]["score"], Value::Null);
    assert!(events[0].get("user").is_none());
}

#[test]
fn a_variable_named_like_a_member_of_the_event_leaves_the_event_its_own() {
    let (nested, flat) = logs();
    USER.set("from the context".into());
    LEVEL.set("from the context".into());
    tracing::info!(target: "flat", user = "from the event", "collides");
    tracing::info!("collides at the top");
    for (buffer, message) in [(flat, "collides"), (nested, "collides at the top")] {
        let lines = lines(buffer, message);
        assert_eq!(lines.len(), 1, "{message}");
        // One member per name: a duplicate key is read as the last one by most parsers.
        let line = &lines[0];
        for key in ["\"user\":", "\"level\":"] {
            assert_eq!(line.matches(key).count(), 1, "{key} in {line}");
        }
        let event: Value = serde_json::from_str(line).unwrap();
        assert_eq!(event["level"], "INFO");
        if message == "collides" {
            assert_eq!(event["user"], "from the event");
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Any string (control characters, quotes, backslashes, U+2028, U+FFFF, emoji) is one
    /// JSON string that parses back to itself.
    #[test]
    fn any_string_value_parses_back(user in "(?s).{0,40}|[\\x00-\\x1f\"\\\\\u{2028}\u{ffff}\u{1f600}é]{0,16}") {
        let (nested, _) = logs();
        USER.set(user.clone());
        let message = format!("fuzz {}", REQUEST_ID.get());
        REQUEST_ID.set(REQUEST_ID.get() + 1);
        tracing::info!(user_field = %user, "{message}");
        let events = events(nested, &message);
        proptest::prop_assert_eq!(events.len(), 1);
        proptest::prop_assert_eq!(&events[0]["user"], &json!(user));
    }
}

/// The raw lines of `buffer` that contain `message`.
fn lines(buffer: &LogBuffer, message: &str) -> Vec<String> {
    let text = buffer.text();
    text.lines().filter(|line| line.contains(&format!("\"{message}\""))).map(str::to_string).collect()
}

/// A variable whose `Debug` logs: the event it logs goes out without the variables (else
/// each would log another, until the stack overflows), and both lines parse.
#[test]
fn a_value_whose_debug_logs_is_written_once() {
    let (nested, _) = logs();
    let token = CHATTY.set(Chatty);
    tracing::info!("chatty event");
    CHATTY.reset(token).unwrap();
    let events = events(nested, "chatty event");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["chatty"], json!("chatty"));
    // Once per time a layer wrote the value (tracing-subscriber's per-layer filters may
    // have the other layer look at the outer event too, on a re-entered dispatch).
    let inner = self::events(nested, "from inside a Debug");
    assert!(!inner.is_empty());
    assert!(inner.iter().all(|event| event.get("chatty").is_none()), "{inner:?}");
}
