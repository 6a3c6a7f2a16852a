//! The examples, run as tests: the demo's server and client over real HTTP with its log
//! checked line by line, and the dependency-injection example step by step. (The seed
//! scenario has its own file, `tests/seed_scenario.rs`.)

#[allow(dead_code)]
#[path = "../examples/demo.rs"]
mod demo;

#[allow(dead_code)]
#[path = "../examples/dependencies.rs"]
mod dependencies;

#[cfg(feature = "services-example")]
#[allow(dead_code)]
#[path = "../examples/services.rs"]
mod services;

use std::sync::OnceLock;

/// The demo's log, written by a global subscriber (events come from worker threads too).
fn demo_log() -> &'static demo::LogBuffer {
    static LOG: OnceLock<demo::LogBuffer> = OnceLock::new();
    LOG.get_or_init(|| {
        let log = demo::LogBuffer::default();
        let writer = log.clone();
        tracing::subscriber::set_global_default(demo::subscriber(move || writer.clone())).unwrap();
        log
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_serves_every_request_and_logs_each_with_its_own_context() {
    let log = demo_log();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, demo::app()).await });

    let exchanges = demo::requests(addr).await.unwrap();
    assert_eq!(exchanges.len(), 9);
    let log = log.contents();

    for exchange in &exchanges {
        let reply = &exchange.reply;
        let handler = exchange.path.trim_start_matches('/');
        let id = reply.request_id.as_deref().expect("every response carries its request id");
        let expected_status = if handler == "crash" { 500 } else { 200 };
        assert_eq!(reply.status.as_u16(), expected_status, "{exchange:?}");

        let name = exchange.user.unwrap_or("anonymous");
        let expected_body = match handler {
            "hello" => format!("hello, {name}"),
            "report" => format!("report for {name}"),
            "audit" => format!("audited {name}"),
            _ => String::new(),
        };
        if handler != "crash" {
            assert_eq!(reply.body, expected_body);
        }

        // The access line: written by the middleware, which names no user and no handler;
        // the fields come from the request's context.
        let user_field = exchange.user.map(|user| format!(" user=\"{user}\"")).unwrap_or_default();
        let access = format!(
            " INFO access: GET {} {expected_status}{user_field} request_id={id} handler=\"{handler}\"",
            exchange.path
        );
        assert_eq!(log.lines().filter(|line| *line == access).count(), 1, "{access}\nin:\n{log}");
    }

    // Events from a blocking-pool worker and from a spawned task carry their request's values.
    for (user, handler, message) in
        [("bob", "report", "rendering the report"), ("cy", "audit", "audit task checked the credentials")]
    {
        let line = log
            .lines()
            .find(|line| line.contains(message) && line.contains(&format!("user=\"{user}\"")))
            .unwrap_or_else(|| panic!("no {message:?} line for {user} in:\n{log}"));
        assert!(line.ends_with(&format!("handler=\"{handler}\"")), "{line}");
    }
    // The panic was logged with the crashing request's user.
    assert!(log.lines().any(|line| line.starts_with("ERROR") && line.contains("user=\"mallory\"")), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_dependency_sets_the_session_for_the_request_and_its_cleanup_resets_it() {
    let (ada, bob) = tokio::join!(dependencies::handle("ada"), dependencies::handle("bob"));
    for (user, trace) in [("ada", ada), ("bob", bob)] {
        let saw: Vec<&str> = trace.iter().map(|(_, what)| what.as_str()).collect();
        let session = saw[1].strip_prefix("set session ").expect("the session was set");
        assert!(session.starts_with('#') && session.ends_with(&format!(" of {user}")), "{session}");
        assert_eq!(saw[0], format!("set user {user}"));
        assert!(saw[2].starts_with(&format!("profile of {user} loaded through session #")), "{saw:?}");
        assert_eq!(saw[3], format!("user {user}, session {session}, {}", saw[2]));
        assert_eq!(saw[4], format!("closed session {session}, reset with its token"));
        assert_eq!(saw[5], format!("user {user}, session none"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_made_on_the_blocking_pool_does_not_reset_in_the_request() {
    let error = dependencies::reset_in_the_wrong_context().await.unwrap_err();
    assert!(matches!(error, contextvars::Error::TokenFromOtherContext { var: "session" }), "{error:?}");
}

/// The gateway sets the user, the backend's log names it; what the backend's SQLite query
/// set comes back over the wire into the gateway's access log.
#[cfg(feature = "services-example")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_services_example_carries_the_user_to_the_backend_and_the_query_back() {
    let dir = services::TempDir::new().unwrap();
    let run = services::run(dir.path()).await.unwrap();
    assert_eq!(
        run.bodies,
        ["analytical engine, punched cards", "compiler", "analytical engine, punched cards"]
    );
    assert_eq!(
        run.backend_log,
        [
            "backend: orders of ada from SQLite, 2 row(s)",
            "backend: orders of grace from SQLite, 1 row(s)",
            "backend: orders of ada from the cache",
        ]
    );
    assert_eq!(
        run.gateway_log,
        [
            "gateway: GET /orders/ada 200 user=ada db.rows=2 cache.hit=false",
            "gateway: GET /orders/grace 200 user=grace db.rows=1 cache.hit=false",
            "gateway: GET /orders/ada 200 user=ada db.rows=0 cache.hit=true",
        ]
    );
    let path = dir.path().to_owned();
    drop(dir);
    assert!(!path.exists(), "the temporary directory is removed");
}
