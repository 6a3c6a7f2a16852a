//! A rayon pool thread outside any context (feature `rayon`): a job reads defaults and its
//! `set` panics naming the adapters, instead of writing the thread's own context, which
//! every later job on that thread would read.

use std::panic::catch_unwind;

use contextvars_runtime::{Context, ContextVar};

static USER: ContextVar<&'static str> = ContextVar::new("USER", || "nobody");

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(message) => *message,
        Err(payload) => payload.downcast_ref::<&str>().map(|s| s.to_string()).unwrap_or_default(),
    }
}

/// One worker thread, so that every job runs on the same thread.
fn pool() -> rayon_core::ThreadPool {
    rayon_core::ThreadPoolBuilder::new().num_threads(1).build().unwrap()
}

#[test]
fn a_job_outside_any_context_cannot_set_and_the_next_job_sees_nothing() {
    let pool = pool();
    let first = pool.install(|| catch_unwind(|| USER.set("ada")).map(drop).map_err(panic_message));
    let message = first.expect_err("a job's `set` on the pool thread's own context must panic");
    assert!(message.contains("contextvars::rayon::join"), "{message}");
    assert!(message.contains("contextvars::rayon::scope"), "{message}");
    assert!(message.contains("`USER.set()`"), "{message}");

    let (thread, seen) = pool.install(|| (std::thread::current().id(), USER.get()));
    assert_eq!(seen, "nobody");
    let again = pool.install(|| std::thread::current().id());
    assert_eq!(thread, again, "both jobs ran on the one worker");
}

#[test]
fn a_job_inside_a_context_of_its_own_sets_and_reads_it() {
    let pool = pool();
    let mut base = Context::new();
    base.run(|| USER.set("base"));
    let (seen, after) = pool.install(|| {
        let mut ctx = base.clone();
        let seen = ctx.run(|| {
            let before = USER.get();
            USER.set("job");
            (before, USER.get())
        });
        (seen, ctx.get(&USER))
    });
    assert_eq!((seen, after), (("base", "job"), "job"));
    // The worker's own context is untouched: a later job outside any context sees nothing.
    assert_eq!(pool.install(|| USER.get()), "nobody");
}

#[test]
fn a_thread_that_is_not_a_pool_worker_keeps_its_own_context() {
    let seen = std::thread::spawn(|| {
        USER.set("mine");
        USER.get()
    })
    .join()
    .unwrap();
    assert_eq!(seen, "mine");
}

#[test]
fn a_job_without_a_context_gains_none_from_a_nested_delivery() {
    let pool = pool();
    let outcome = pool.install(|| {
        contextvars_runtime::without_context(|| {
            contextvars_runtime::as_caller(|| {
                catch_unwind(|| USER.set("leak")).map(drop).map_err(panic_message)
            })
        })
    });
    let message = outcome.expect_err("the worker's own context stays out of reach");
    assert!(message.contains("contextvars::rayon::join"), "{message}");
    assert_eq!(pool.install(|| USER.get()), "nobody");
}
