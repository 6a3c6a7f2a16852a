//! What a join brings back: a plain `.await` applies only the changes of `propagate_back`
//! functions, `merge_back()` applies all; boundaries compose, and concurrent joins each merge.

use std::collections::BTreeSet;

use contextvars::{AnyVar, ContextVar, propagate_back};
use futures::future::join_all;
use tokio::sync::oneshot;

fn union(_base: &BTreeSet<u32>, parent: &BTreeSet<u32>, child: &BTreeSet<u32>) -> BTreeSet<u32> {
    parent | child
}

fn sum(base: &i64, parent: &i64, child: &i64) -> i64 {
    parent + child - base
}

static USER: ContextVar<Option<String>> = ContextVar::new("USER", || None);
static ROLE: ContextVar<&'static str> = ContextVar::new("ROLE", || "guest");
static NOTE: ContextVar<u32> = ContextVar::new("NOTE", || 0);
static SEEN: ContextVar<BTreeSet<u32>> = ContextVar::new("SEEN", BTreeSet::new).merge(union);
static TOTAL: ContextVar<i64> = ContextVar::new("TOTAL", || 0).merge(sum);

/// What `#[propagate(back)]` on a function does, written by hand.
fn authenticate(name: &str) {
    propagate_back(None, || {
        USER.set(Some(name.to_string()));
        ROLE.set("admin");
    })
}

static ONLY_USER: [&dyn AnyVar; 1] = [&USER];

/// What `#[propagate(back(USER))]` does: only USER is recorded.
fn authenticate_user_only(name: &str) {
    propagate_back(Some(&ONLY_USER), || {
        USER.set(Some(name.to_string()));
        ROLE.set("admin");
    })
}

#[tokio::test]
async fn a_plain_await_applies_only_propagate_back_changes() {
    contextvars::spawn(async {
        authenticate("ada");
        NOTE.set(1);
    })
    .await
    .unwrap();
    assert_eq!((USER.get().as_deref(), ROLE.get(), NOTE.get()), (Some("ada"), "admin", 0));
}

#[tokio::test]
async fn a_plain_await_of_spawn_blocking_applies_propagate_back_changes() {
    contextvars::spawn_blocking(|| {
        authenticate("ada");
        NOTE.set(1);
    })
    .await
    .unwrap();
    assert_eq!((USER.get().as_deref(), NOTE.get()), (Some("ada"), 0));
}

#[tokio::test]
async fn propagate_back_with_a_list_records_only_those_variables() {
    contextvars::spawn(async { authenticate_user_only("ada") }).await.unwrap();
    assert_eq!((USER.get().as_deref(), ROLE.get()), (Some("ada"), "guest"));
}

#[tokio::test]
async fn merge_back_applies_every_change() {
    contextvars::spawn(async {
        authenticate_user_only("ada");
        NOTE.set(1);
    })
    .merge_back()
    .await
    .unwrap();
    // ROLE, not listed, never left the function's copy of the context: the task did not
    // change it, so neither does the join.
    assert_eq!((USER.get().as_deref(), ROLE.get(), NOTE.get()), (Some("ada"), "guest", 1));
}

#[tokio::test]
async fn changes_made_outside_the_function_are_not_recorded() {
    contextvars::spawn(async {
        NOTE.set(1);
        authenticate("ada");
        NOTE.set(2);
    })
    .await
    .unwrap();
    assert_eq!((USER.get().as_deref(), NOTE.get()), (Some("ada"), 0));
}

#[tokio::test]
async fn a_recorded_change_merges_three_ways_with_the_parents() {
    TOTAL.set(10);
    let (changed, changed_rx) = oneshot::channel();
    let (go, go_rx) = oneshot::channel::<()>();
    let child = contextvars::spawn(async move {
        propagate_back(None, || TOTAL.set(TOTAL.get() + 1));
        changed.send(()).unwrap();
        go_rx.await.unwrap();
    });
    changed_rx.await.unwrap();
    TOTAL.set(TOTAL.get() + 5);
    go.send(()).unwrap();
    child.await.unwrap();
    assert_eq!(TOTAL.get(), 16);
}

#[tokio::test]
async fn a_grandchild_merged_into_a_child_merged_back_reaches_the_parent() {
    contextvars::spawn(async {
        contextvars::spawn(async { NOTE.set(3) }).merge_back().await.unwrap();
        assert_eq!(NOTE.get(), 3);
    })
    .merge_back()
    .await
    .unwrap();
    assert_eq!(NOTE.get(), 3);
}

#[tokio::test]
async fn a_grandchilds_propagate_back_change_reaches_the_parent_through_plain_awaits() {
    contextvars::spawn(async {
        contextvars::spawn(async { authenticate("ada") }).await.unwrap();
        assert_eq!(USER.get().as_deref(), Some("ada"));
    })
    .await
    .unwrap();
    assert_eq!(USER.get().as_deref(), Some("ada"));
}

#[tokio::test]
async fn a_propagate_back_change_crosses_mixed_boundaries_with_plain_awaits() {
    // async → blocking → async (block_on) → blocking, then back up, every join a plain await.
    contextvars::spawn(async {
        contextvars::spawn_blocking(|| {
            contextvars::block_on(async {
                contextvars::spawn_blocking(|| authenticate("ada")).await.unwrap();
            })
        })
        .await
        .unwrap();
    })
    .await
    .unwrap();
    assert_eq!(USER.get().as_deref(), Some("ada"));
}

#[tokio::test]
async fn a_change_merged_back_by_a_child_does_not_go_further_with_a_plain_await() {
    // The grandchild's change is an ordinary one: merged into the child by `merge_back`,
    // it stays there when the parent only awaits the child.
    contextvars::spawn(async {
        contextvars::spawn(async { NOTE.set(3) }).merge_back().await.unwrap();
    })
    .await
    .unwrap();
    assert_eq!(NOTE.get(), 0);
}

#[tokio::test]
async fn a_recorded_change_merged_back_keeps_flowing_through_plain_awaits() {
    contextvars::spawn(async {
        contextvars::spawn(async {
            authenticate("ada");
            NOTE.set(1);
        })
        .merge_back()
        .await
        .unwrap();
        assert_eq!(NOTE.get(), 1);
    })
    .await
    .unwrap();
    // The recorded change went up through the plain await; the ordinary one stopped.
    assert_eq!((USER.get().as_deref(), NOTE.get()), (Some("ada"), 0));
}

#[tokio::test]
async fn children_joined_with_tokio_join_each_merge() {
    let a = contextvars::spawn(async { SEEN.set(BTreeSet::from([1])) }).merge_back();
    let b = contextvars::spawn(async { SEEN.set(BTreeSet::from([2])) }).merge_back();
    let c = contextvars::spawn(async { authenticate("ada") });
    let (a, b, c) = tokio::join!(a, b, c);
    a.unwrap();
    b.unwrap();
    c.unwrap();
    assert_eq!(SEEN.get(), BTreeSet::from([1, 2]));
    assert_eq!(USER.get().as_deref(), Some("ada"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_joined_with_join_all_each_merge() {
    TOTAL.set(1000);
    SEEN.set(BTreeSet::from([0]));
    let children = (1..=20u32).map(|n| {
        contextvars::spawn(async move {
            let mut seen = SEEN.get();
            seen.insert(n);
            SEEN.set(seen);
            TOTAL.set(TOTAL.get() + i64::from(n));
        })
        .merge_back()
    });
    for result in join_all(children).await {
        result.unwrap();
    }
    assert_eq!(SEEN.get(), (0..=20).collect());
    assert_eq!(TOTAL.get(), 1000 + 210);
}

/// Three children, each adding its number to SEEN and TOTAL, released and merged one at a
/// time in `order`, while the parent adds its own. Returns what the parent ends with.
async fn merge_in_order(order: [usize; 3]) -> (BTreeSet<u32>, i64) {
    let mut releases = Vec::new();
    let mut children = Vec::new();
    for n in 0..3u32 {
        let (release, released) = oneshot::channel::<()>();
        let (merged, merged_rx) = oneshot::channel::<()>();
        let handle = contextvars::spawn(async move {
            released.await.unwrap();
            SEEN.set(&SEEN.get() | &BTreeSet::from([n + 1]));
            TOTAL.set(TOTAL.get() + 10 * i64::from(n + 1));
        });
        children.push(async move {
            handle.merge_back().await.unwrap();
            merged.send(()).unwrap();
        });
        releases.push((release, merged_rx));
    }
    SEEN.set(BTreeSet::from([100]));
    TOTAL.set(1);
    let mut releases: Vec<_> = releases.into_iter().map(Some).collect();
    let driver = async {
        for at in order {
            let (release, merged) = releases[at].take().unwrap();
            release.send(()).unwrap();
            merged.await.unwrap();
        }
    };
    tokio::join!(join_all(children), driver);
    (SEEN.get(), TOTAL.get())
}

#[tokio::test]
async fn commutative_merges_do_not_depend_on_completion_order() {
    let expected = (BTreeSet::from([1, 2, 3, 100]), 61);
    for order in [[0, 1, 2], [2, 1, 0], [1, 0, 2], [2, 0, 1]] {
        let result = contextvars::spawn(merge_in_order(order)).await.unwrap();
        assert_eq!(result, expected, "order {order:?}");
    }
}

#[tokio::test]
async fn a_panicking_propagate_back_function_records_nothing() {
    let result = contextvars::spawn(async {
        let caught = std::panic::catch_unwind(|| {
            propagate_back(None, || {
                NOTE.set(1);
                panic!("boom");
            })
        });
        assert!(caught.is_err());
    })
    .await;
    result.unwrap();
    assert_eq!(NOTE.get(), 0);
}

#[tokio::test]
async fn recorded_changes_come_back_whether_the_list_of_recent_writes_holds_them_or_spilled() {
    static MANY: [ContextVar<u32>; 20] = [const { ContextVar::new("MANY", || 0) }; 20];
    for recorded in 0..20usize {
        contextvars::spawn(async move {
            // Snapshots between the writes keep the trie shared: the writes, and the marks of
            // the recorded ones, go to the list of recent writes until it spills.
            for (i, var) in MANY.iter().enumerate() {
                let _snapshot = contextvars::Context::current();
                if i < recorded {
                    propagate_back(None, || var.set(i as u32 + 100));
                } else {
                    var.set(i as u32 + 1000);
                }
            }
        })
        .await
        .unwrap();
        for (i, var) in MANY.iter().enumerate() {
            let expected = if i < recorded { i as u32 + 100 } else { 0 };
            assert_eq!(var.get(), expected, "recorded {recorded}, var {i}");
        }
        for var in &MANY {
            var.set(0);
        }
    }
}
