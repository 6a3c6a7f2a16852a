//! `get` allocates nothing beyond `T::clone`, and a snapshot allocates nothing at all.
//!
//! A counting global allocator, so this file holds only these tests. The counter is per
//! thread: the test harness allocates on other threads at the same time.

use contextvars::{Context, ContextVar};

mod support;
use support::{Counting, allocations};

#[global_allocator]
static GLOBAL: Counting = Counting;

static ID: ContextVar<u64> = ContextVar::new("ID", || 0);
static OTHERS: [ContextVar<u64>; 40] = [const { ContextVar::new("other", || 1) }; 40];

#[test]
fn get_of_a_u64_allocates_nothing() {
    // Unset: the default (computed on first use, so read it once before counting).
    let _ = ID.get();
    assert_eq!(allocations(|| assert_eq!(std::hint::black_box(ID.get()), 0)), 0);

    // Set, among enough other variables that the map has several levels.
    for (n, var) in OTHERS.iter().enumerate() {
        var.set(n as u64);
    }
    ID.set(7);
    let _ = ID.get();
    let count = allocations(|| {
        for _ in 0..1_000 {
            assert_eq!(std::hint::black_box(ID.get()), 7);
            assert_eq!(std::hint::black_box(OTHERS[39].get()), 39);
        }
    });
    assert_eq!(count, 0);
}

#[test]
fn get_inside_run_allocates_nothing() {
    let mut ctx = Context::new();
    ctx.run(|| ID.set(3));
    ctx.run(|| {
        let _ = ID.get();
        assert_eq!(allocations(|| assert_eq!(std::hint::black_box(ID.get()), 3)), 0);
    });
}

#[test]
fn with_and_current_allocate_nothing() {
    ID.set(11);
    let _ = Context::current();
    let count = allocations(|| {
        assert_eq!(ID.with(|id| *id), 11);
        let snapshot = std::hint::black_box(Context::current());
        assert_eq!(snapshot.get(&ID), 11);
    });
    assert_eq!(count, 0);
}

#[test]
fn get_of_a_string_allocates_only_its_clone() {
    static NAME: ContextVar<String> = ContextVar::new("NAME", String::new);
    NAME.set("ada".to_string());
    let _ = NAME.get();
    // One allocation: the `String::clone` itself.
    assert_eq!(allocations(|| assert_eq!(NAME.get(), "ada")), 1);
}
