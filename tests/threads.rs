//! `contextvars::thread`: std threads and scoped threads start with a copy of the spawner's
//! context; `join` delivers the recorded changes, `merge_back` all of them, into the context
//! current on the joining thread; a panicked thread delivers nothing.

mod support;

use std::sync::Barrier;

use contextvars::{Context, ContextVar, propagate, thread};
use support::{fault, is_fault, quiet_injected_panics};

fn sum(base: &u32, parent: &u32, child: &u32) -> u32 {
    parent + child - base
}

static ROWS: ContextVar<u32> = ContextVar::new("ROWS", || 0).merge(sum);
static N: ContextVar<u32> = ContextVar::new("N", || 0);
static USER: ContextVar<&'static str> = ContextVar::new("USER", || "nobody");
static TXN: ContextVar<Option<u32>> = ContextVar::new("TXN", || None).inherit(false);

#[propagate(back)]
fn log_in(user: &'static str) {
    USER.set(user);
}

#[test]
fn a_thread_starts_with_a_copy_of_the_spawners_context() {
    USER.set("ada");
    TXN.set(Some(1));
    let seen = thread::spawn(|| (USER.get(), TXN.get())).join().unwrap();
    assert_eq!(seen, ("ada", None));
    // What a plain std thread sees, for contrast.
    assert_eq!(std::thread::spawn(|| USER.get()).join().unwrap(), "nobody");
}

#[test]
fn join_delivers_what_propagate_back_recorded_and_merge_back_everything() {
    thread::spawn(|| {
        N.set(1);
        log_in("ada");
    })
    .join()
    .unwrap();
    assert_eq!((N.get(), USER.get()), (0, "ada"));

    thread::spawn(|| N.set(2)).merge_back().unwrap();
    assert_eq!(N.get(), 2);
}

#[test]
fn recorded_changes_keep_flowing_up_through_nested_threads() {
    thread::spawn(|| thread::spawn(|| log_in("ada")).join().unwrap()).join().unwrap();
    assert_eq!(USER.get(), "ada");
}

#[test]
fn a_panicked_thread_delivers_nothing() {
    quiet_injected_panics();
    let joined = thread::spawn(|| {
        N.set(1);
        log_in("mallory");
        fault();
    })
    .merge_back();
    assert!(is_fault(joined));
    assert_eq!((N.get(), USER.get()), (0, "nobody"));
}

#[test]
fn changes_land_in_the_context_current_on_the_joining_thread() {
    let handle = thread::spawn(|| N.set(7));
    let mut other = Context::new();
    other.run(|| handle.merge_back().unwrap());
    assert_eq!((other.get(&N), N.get()), (7, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_can_join_a_thread_from_its_own_context() {
    let seen = contextvars::spawn(async {
        N.set(1);
        thread::spawn(|| N.set(N.get() + 1)).merge_back().unwrap();
        N.get()
    })
    .await
    .unwrap();
    assert_eq!((seen, N.get()), (2, 0));
}

#[test]
fn siblings_are_isolated_and_merge_back_sums_them_exactly() {
    let barrier = std::sync::Arc::new(Barrier::new(34));
    let handles: Vec<_> = (0..34)
        .map(|_| {
            let barrier = barrier.clone();
            thread::spawn(move || {
                ROWS.set(ROWS.get() + 1);
                barrier.wait(); // every sibling has counted: none sees another's row
                ROWS.get()
            })
        })
        .collect();
    for handle in handles {
        assert_eq!(handle.merge_back().unwrap(), 1);
    }
    assert_eq!(ROWS.get(), 34);

    let handles: Vec<_> = (0..34).map(|_| thread::spawn(|| ROWS.set(ROWS.get() + 1))).collect();
    for handle in handles {
        handle.join().unwrap();
    }
    assert_eq!(ROWS.get(), 34, "join without propagate(back) brings nothing");
}

#[test]
fn handles_tell_their_thread_and_whether_it_finished() {
    let (go, wait) = std::sync::mpsc::channel::<()>();
    let handle = thread::spawn(move || {
        wait.recv().unwrap();
        std::thread::current().id()
    });
    assert!(!handle.is_finished());
    let id = handle.thread().id();
    go.send(()).unwrap();
    assert_eq!(handle.join().unwrap(), id);
}

#[test]
fn scoped_threads_copy_down_borrow_and_merge_back() {
    let shards = [3, 4, 5];
    USER.set("ada");
    let users = thread::scope(|s| {
        let handles: Vec<_> = shards
            .iter()
            .map(|n| {
                s.spawn(move || {
                    ROWS.set(ROWS.get() + n);
                    USER.get()
                })
            })
            .collect();
        handles.into_iter().map(|handle| handle.merge_back().unwrap()).collect::<Vec<_>>()
    });
    assert_eq!(users, ["ada"; 3]);
    assert_eq!(ROWS.get(), 12);
}

#[test]
fn scoped_join_delivers_only_recorded_changes() {
    thread::scope(|s| {
        s.spawn(|| {
            N.set(1);
            log_in("ada");
        })
        .join()
        .unwrap()
    });
    assert_eq!((N.get(), USER.get()), (0, "ada"));
}

#[test]
fn a_scoped_thread_spawns_more_from_its_own_context() {
    let seen = thread::scope(|s| {
        s.spawn(move || {
            N.set(1);
            s.spawn(|| N.get() + 1).merge_back().unwrap()
        })
        .merge_back()
        .unwrap()
    });
    assert_eq!((seen, N.get()), (2, 1));
}

#[test]
fn scoped_threads_not_joined_or_panicked_deliver_nothing() {
    quiet_injected_panics();
    thread::scope(|s| {
        s.spawn(|| N.set(1)); // joined by the scope, not by a handle
        let failed = s.spawn(|| {
            log_in("mallory");
            fault();
        });
        assert!(is_fault(failed.merge_back()));
    });
    assert_eq!((N.get(), USER.get()), (0, "nobody"));
}

#[test]
fn scoped_handles_tell_their_thread_and_whether_it_finished() {
    thread::scope(|s| {
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let handle = s.spawn(move || {
            wait.recv().unwrap();
            std::thread::current().id()
        });
        assert!(!handle.is_finished());
        let id = handle.thread().id();
        go.send(()).unwrap();
        assert_eq!(handle.join().unwrap(), id);
    });
}

#[test]
fn copies_of_one_context_written_in_place_on_two_threads_never_see_each_others_writes() {
    static TEXT: ContextVar<String> = ContextVar::new("TEXT", String::new);
    let mut base = Context::new();
    base.run(|| TEXT.set("base".to_string()));
    let barrier = std::sync::Arc::new(Barrier::new(2));
    let threads: Vec<_> = ["left", "right"]
        .into_iter()
        .map(|name| {
            // Each thread's copy starts out sharing the stored value with `base` and the other.
            let mut copy = base.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                copy.run(|| {
                    for round in 0..2_000 {
                        let mine = format!("{name} {round}");
                        // In place once the value is this copy's alone; a snapshot taken now
                        // and then shares it again, and it must keep what it saw.
                        TEXT.set(mine.clone());
                        if round % 7 == 0 {
                            let snapshot = Context::current();
                            TEXT.set(format!("{name} after"));
                            assert_eq!(snapshot.get(&TEXT), mine);
                        }
                        assert!(TEXT.get().starts_with(name));
                    }
                });
                copy
            })
        })
        .collect();
    for (thread, name) in threads.into_iter().zip(["left", "right"]) {
        let copy = thread.join().unwrap();
        assert!(copy.get(&TEXT).starts_with(name));
    }
    assert_eq!(base.get(&TEXT), "base");
}
