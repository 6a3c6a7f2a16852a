//! The rules of a join's delivery in the cases next to its shortcut (`take_whole`): each
//! would break if the shortcut took it.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};

use crate::current;
use crate::{AnyVar, Context, ContextVar, Fork, propagate_back};

mod against_general;
pub(super) use against_general::{shortcut, taken};

fn sum(base: &u32, parent: &u32, child: &u32) -> u32 {
    parent + child - base
}

fn refuse(_: &u32, _: &u32, _: &u32) -> u32 {
    panic!("no merge")
}

static A: ContextVar<u32> = ContextVar::new("A", || 0);
static B: ContextVar<u32> = ContextVar::new("B", || 0);
static C: ContextVar<u32> = ContextVar::new("C", || 0);
static SUM: ContextVar<u32> = ContextVar::new("SUM", || 0).merge(sum);
static REFUSE: ContextVar<u32> = ContextVar::new("REFUSE", || 0).merge(refuse);
static DOWN_ONLY: ContextVar<u32> = ContextVar::new("DOWN_ONLY", || 0).back(false);
static NOT_INHERITED: ContextVar<u32> = ContextVar::new("NOT_INHERITED", || 0).inherit(false);
static MANY: [ContextVar<u32>; 6] = [const { ContextVar::new("MANY", || 0) }; 6];

/// A fork of the current context, and a copy of it in which `child` ran.
fn forked<R>(child: impl FnOnce() -> R) -> (Fork, Context) {
    let fork = Fork::current();
    let mut copy = fork.context();
    drop(copy.run(child));
    (fork, copy)
}

fn marked(var: &'static ContextVar<u32>) -> bool {
    current::read(|map| map.is_marked(var.var_key()))
}

#[test]
fn the_childs_changes_land_unmarked() {
    Context::new().run(|| {
        A.set(1);
        let (fork, copy) = forked(|| {
            A.set(2);
            B.set(3);
        });
        fork.merge_back(copy);
        assert_eq!((A.get(), B.get()), (2, 3));
        assert!(!marked(&A) && !marked(&B), "merge_back marks only what the child marked");
    });
}

#[test]
fn a_merge_variable_changed_on_both_sides_merges_three_ways() {
    Context::new().run(|| {
        SUM.set(10);
        let (fork, copy) = forked(|| SUM.set(15));
        SUM.set(13);
        fork.merge_back(copy);
        assert_eq!(SUM.get(), 18, "merge(10, 13, 15)");
    });
}

#[test]
fn a_variable_changed_on_both_sides_goes_to_the_child_and_the_parents_other_changes_stay() {
    Context::new().run(|| {
        let (fork, copy) = forked(|| {
            B.set(3);
            C.set(4);
        });
        A.set(1);
        B.set(2);
        fork.merge_back(copy);
        assert_eq!((A.get(), B.get(), C.get()), (1, 3, 4));
    });
}

#[test]
fn a_variable_that_does_not_flow_back_stays_in_the_child() {
    for with_another_change in [false, true] {
        Context::new().run(|| {
            let (fork, copy) = forked(|| {
                DOWN_ONLY.set(5);
                if with_another_change {
                    A.set(1);
                }
            });
            fork.merge_back(copy);
            assert_eq!(DOWN_ONLY.get(), 0);
            assert_eq!(A.get(), u32::from(with_another_change));
        });
    }
}

#[test]
fn more_than_four_changes_all_land() {
    Context::new().run(|| {
        let (fork, copy) = forked(|| (1..).zip(&MANY).for_each(|(n, var)| drop(var.set(n))));
        fork.merge_back(copy);
        assert_eq!(MANY.iter().map(ContextVar::get).collect::<Vec<_>>(), [1, 2, 3, 4, 5, 6]);
    });
}

#[test]
fn a_panicking_merge_lands_nothing() {
    Context::new().run(|| {
        let (fork, copy) = forked(|| {
            A.set(1);
            REFUSE.set(2);
        });
        REFUSE.set(3);
        let merged = catch_unwind(AssertUnwindSafe(|| fork.merge_back(copy)));
        assert!(merged.is_err());
        assert_eq!((A.get(), REFUSE.get()), (0, 3), "all or nothing");
    });
}

#[test]
fn a_variable_not_inherited_stays_in_the_parent() {
    Context::new().run(|| {
        NOT_INHERITED.set(7);
        let (fork, copy) = forked(|| A.set(1));
        fork.merge_back(copy);
        assert_eq!((NOT_INHERITED.get(), A.get()), (7, 1));
    });
}

#[test]
fn the_parents_marks_stay_and_the_childs_land_with_their_changes() {
    Context::new().run(|| {
        propagate_back(None, || A.set(1));
        let (fork, copy) = forked(|| {
            B.set(2);
            propagate_back(None, || C.set(3));
        });
        fork.merge_back(copy);
        assert_eq!((A.get(), B.get(), C.get()), (1, 2, 3));
        assert!(marked(&A) && !marked(&B) && marked(&C));
    });
    // The same from a parent without marks.
    Context::new().run(|| {
        let (fork, copy) = forked(|| propagate_back(None, || C.set(3)));
        fork.merge_back(copy);
        assert!(C.get() == 3 && marked(&C));
    });
}

#[test]
fn a_marked_parent_keeps_its_marks_and_the_childs_changes_land_unmarked() {
    Context::new().run(|| {
        propagate_back(None, || A.set(1));
        let (fork, copy) = forked(|| {
            B.set(2);
        });
        fork.merge_back(copy);
        assert_eq!((A.get(), B.get()), (1, 2));
        assert!(marked(&A) && !marked(&B));
    });
}

#[test]
fn a_plain_join_delivers_no_unmarked_change() {
    Context::new().run(|| {
        let (fork, copy) = forked(|| A.set(1));
        fork.join(copy);
        assert_eq!(A.get(), 0);
    });
}

#[test]
fn a_token_made_before_the_fork_still_resets_after_the_join() {
    Context::new().run(|| {
        let token = A.set(1);
        let (fork, copy) = forked(|| B.set(2));
        fork.merge_back(copy);
        A.reset(token).unwrap();
        assert_eq!((A.get(), B.get()), (0, 2));
    });
}

/// Reads a variable when dropped (a drop inside the borrowed context would panic), and
/// records what it read of `A` in its test's own list.
struct ReadsOnDrop(&'static Mutex<Vec<u32>>);

impl Drop for ReadsOnDrop {
    fn drop(&mut self) {
        // Not a second panic while a failed assertion unwinds.
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(A.get());
    }
}

static HELD: ContextVar<Option<Arc<ReadsOnDrop>>> = ContextVar::new("HELD", || None);

#[test]
fn the_value_a_join_replaces_drops_once_in_the_joining_context_released() {
    static DROPS: Mutex<Vec<u32>> = Mutex::new(Vec::new());
    for parent_changed_meanwhile in [false, true] {
        Context::new().run(|| {
            A.set(5);
            HELD.set(Some(Arc::new(ReadsOnDrop(&DROPS))));
            let (fork, copy) = forked(|| {
                HELD.set(None);
            });
            if parent_changed_meanwhile {
                B.set(1);
            }
            fork.merge_back(copy);
            assert!(HELD.with(Option::is_none));
            // Dropped at the join, whichever path it took: when the joining context takes the
            // child's map whole, the value the child's write shadows there goes too.
            assert_eq!(std::mem::take(&mut *DROPS.lock().unwrap()), [5]);
            A.set(6);
        });
        assert!(DROPS.lock().unwrap().is_empty(), "dropped once");
    }
}

/// Sets `C` to its number when dropped.
struct SetsOnDrop(u32);

impl Drop for SetsOnDrop {
    fn drop(&mut self) {
        C.set(self.0);
    }
}

static SETTER: ContextVar<Option<Arc<SetsOnDrop>>> = ContextVar::new("SETTER", || None);

#[test]
fn a_replaced_values_drop_sets_into_the_joining_context_at_the_join() {
    for parent_changed_meanwhile in [false, true] {
        Context::new().run(|| {
            SETTER.set(Some(Arc::new(SetsOnDrop(1))));
            let (fork, copy) = forked(|| {
                SETTER.set(Some(Arc::new(SetsOnDrop(2))));
            });
            if parent_changed_meanwhile {
                B.set(1);
            }
            fork.merge_back(copy);
            assert_eq!(C.get(), 1, "parent changed meanwhile: {parent_changed_meanwhile}");
        });
    }
}

#[test]
fn each_join_lets_go_of_the_value_it_replaces() {
    static DROPS: Mutex<Vec<u32>> = Mutex::new(Vec::new());
    Context::new().run(|| {
        A.set(1);
        HELD.set(Some(Arc::new(ReadsOnDrop(&DROPS))));
        for round in 2..20 {
            let (fork, copy) = forked(|| {
                HELD.set(Some(Arc::new(ReadsOnDrop(&DROPS))));
            });
            fork.merge_back(copy);
            // The previous value went at this join, not only when the variable is set here.
            assert_eq!(std::mem::take(&mut *DROPS.lock().unwrap()), [round - 1], "round {round}");
            A.set(round);
        }
    });
    // The last one with the context, outside it (see `current::drop_outside`).
    assert_eq!(std::mem::take(&mut *DROPS.lock().unwrap()), [0]);
}

#[test]
fn a_snapshot_taken_before_the_join_keeps_what_it_holds() {
    static DROPS: Mutex<Vec<u32>> = Mutex::new(Vec::new());
    Context::new().run(|| {
        A.set(1);
        HELD.set(Some(Arc::new(ReadsOnDrop(&DROPS))));
        let snapshot = Context::current();
        let (fork, copy) = forked(|| HELD.set(None));
        fork.merge_back(copy);
        assert!(HELD.with(Option::is_none) && snapshot.get(&HELD).is_some());
        assert!(DROPS.lock().unwrap().is_empty(), "the snapshot still holds it");
        A.set(2);
        drop(snapshot);
        HELD.set(None);
        assert_eq!(std::mem::take(&mut *DROPS.lock().unwrap()), [2]);
    });
}
