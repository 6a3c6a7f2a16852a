//! Property test of the join rules: random nestings of `#[propagate(back)]` calls (sync and
//! async, completed, panicking, cancelled, two joined in one task), spawned tasks (joined by a
//! plain `.await`, by `merge_back()`, or panicking), run for real next to a small reference
//! model of the rules:
//!
//! 1. a `propagate(back)` call runs on a copy; when it completes, the variables it changed
//!    (entry to exit) land three ways (base: entry, parent: the caller now, child: exit) and
//!    are marked; a panic or a cancellation lands nothing;
//! 2. (tokens are covered by `join_semantics.rs`);
//! 3. a plain `.await` delivers, for each variable marked in the child, its final value unless
//!    it is the child's start value, three ways against the fork, and marks it; `merge_back`
//!    delivers every change and marks those marked in the child.
//!
//! Values are compared by identity in the rules: every `set` in a case is given its own
//! label, and the model tracks which `set` (or which merge) each value came from.

use std::collections::{BTreeMap, BTreeSet};
use std::panic::AssertUnwindSafe;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use contextvars::{Context, ContextVar, propagate_back, propagate_back_async};
use futures::FutureExt;
use futures::future::BoxFuture;
use proptest::prelude::*;
use proptest::test_runner::Config;
use tokio::sync::oneshot;

mod support;

fn sum(base: &u64, parent: &u64, child: &u64) -> u64 {
    parent.wrapping_add(*child).wrapping_sub(*base)
}

static A: ContextVar<u64> = ContextVar::new("A", || 0);
static B: ContextVar<u64> = ContextVar::new("B", || 0);
/// Added to, with a merge that sums: the one variable whose merge is not "the child wins".
static S: ContextVar<u64> = ContextVar::new("S", || 0).merge(sum);
/// Not inherited: a child starts without it, so its start differs from the fork.
static T: ContextVar<u64> = ContextVar::new("T", || 0).inherit(false);

const VARS: [&ContextVar<u64>; 4] = [&A, &B, &S, &T];
const SUMMED: usize = 2;
const NOT_INHERITED: usize = 3;

#[derive(Clone, Debug)]
enum Op {
    /// `VARS[var].set(label)` (for `S`: adds `label`).
    Set(usize, u64),
    /// A sync `propagate_back` call whose body sets these.
    SyncBack(Vec<(usize, u64)>),
    /// An async `propagate_back` call.
    Back(Vec<Op>),
    /// An async `propagate_back` call that panics after its body (caught).
    Panics(Vec<Op>),
    /// An async `propagate_back` call dropped after its body ran, by a `select!`.
    Cancelled(Vec<Op>),
    /// Two async `propagate_back` calls joined in this task: both copy the same context,
    /// the first lands, then the second.
    JoinTwo(Vec<Op>, Vec<Op>),
    /// A spawned task, and how it is joined.
    Spawn(Vec<Op>, Join),
}

#[derive(Clone, Copy, Debug)]
enum Join {
    Plain,
    MergeBack,
    /// The task panics after its body; the plain join gets the error.
    Panicked,
}

fn op() -> impl Strategy<Value = Op> {
    let leaf = prop_oneof![
        3 => (0..VARS.len(), Just(0)).prop_map(|(var, _)| Op::Set(var, 0)),
        1 => prop::collection::vec((0..VARS.len(), Just(0)), 1..3).prop_map(Op::SyncBack),
    ];
    leaf.prop_recursive(4, 40, 4, |inner| {
        let body = prop::collection::vec(inner, 0..4);
        prop_oneof![
            3 => body.clone().prop_map(Op::Back),
            1 => body.clone().prop_map(Op::Panics),
            1 => body.clone().prop_map(Op::Cancelled),
            1 => (body.clone(), body.clone()).prop_map(|(a, b)| Op::JoinTwo(a, b)),
            3 => (body, prop_oneof![Just(Join::Plain), Just(Join::MergeBack), Just(Join::Panicked)])
                .prop_map(|(body, join)| Op::Spawn(body, join)),
        ]
    })
}

/// Gives every `set` its own label, 1, 2, 3… in program order.
fn label(ops: &mut [Op], next: &mut u64) {
    for op in ops {
        match op {
            Op::Set(_, label) => {
                *label = *next;
                *next += 1;
            }
            Op::SyncBack(sets) => {
                for (_, label) in sets {
                    *label = *next;
                    *next += 1;
                }
            }
            Op::Back(body) | Op::Panics(body) | Op::Cancelled(body) | Op::Spawn(body, _) => label(body, next),
            Op::JoinTwo(a, b) => {
                label(a, next);
                label(b, next);
            }
        }
    }
}

/// A value in the model: where it came from (identity) and what it reads as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Val {
    id: u64,
    number: u64,
}

/// A context in the model.
#[derive(Clone, Debug, Default)]
struct Model {
    values: BTreeMap<usize, Val>,
    marked: BTreeSet<usize>,
}

/// Identities of merged values, far from the labels.
static NEXT_MERGED: AtomicU64 = AtomicU64::new(1 << 40);

impl Model {
    fn set(&mut self, var: usize, label: u64) {
        let number = if var == SUMMED { self.number(var).wrapping_add(label) } else { label };
        self.values.insert(var, Val { id: label, number });
    }

    fn number(&self, var: usize) -> u64 {
        self.values.get(&var).map_or(0, |val| val.number)
    }

    /// The three-way merge of one variable into `self` (the parent).
    fn merge(&mut self, var: usize, base: Option<Val>, child: Option<Val>) {
        let parent = self.values.get(&var).copied();
        let result = if parent == base {
            child
        } else if parent == child {
            parent
        } else if var == SUMMED {
            let number = sum(
                &base.map_or(0, |v| v.number),
                &parent.map_or(0, |v| v.number),
                &child.map_or(0, |v| v.number),
            );
            Some(Val { id: NEXT_MERGED.fetch_add(1, Ordering::Relaxed), number })
        } else {
            child
        };
        match result {
            Some(val) => self.values.insert(var, val),
            None => self.values.remove(&var),
        };
    }

    /// Rule 1: a completed `propagate(back)` call lands.
    fn land(&mut self, entry: &Model, exit: &Model) {
        for var in 0..VARS.len() {
            let (before, after) = (entry.values.get(&var).copied(), exit.values.get(&var).copied());
            if before != after {
                self.merge(var, before, after);
                self.marked.insert(var);
            }
        }
    }

    /// What a spawned child starts with.
    fn child_start(&self) -> Model {
        let mut start = self.clone();
        start.values.remove(&NOT_INHERITED);
        start.marked.clear();
        start
    }

    /// Rule 3: a plain `.await` (`all == false`) or `merge_back()` (`all == true`).
    fn deliver(&mut self, fork: &Model, start: &Model, end: &Model, all: bool) {
        for var in 0..VARS.len() {
            let (before, after) = (start.values.get(&var).copied(), end.values.get(&var).copied());
            let marked = end.marked.contains(&var);
            if before == after || !(all || marked) {
                continue;
            }
            self.merge(var, fork.values.get(&var).copied(), after);
            if marked {
                self.marked.insert(var);
            }
        }
    }
}

/// Mismatches between the model and the real contexts, collected rather than panicked: a
/// panic inside a panicking or cancelled call would be swallowed.
static MISMATCHES: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn check(model: &Model, at: &str) {
    for (var, real) in VARS.iter().enumerate() {
        let expected = model.values.get(&var).map(|val| val.number);
        let actual = real.is_set().then(|| real.get());
        if expected != actual {
            MISMATCHES
                .lock()
                .unwrap()
                .push(format!("{} after {at}: model {expected:?}, real {actual:?}", real.name()));
        }
    }
}

/// Runs `ops` in the current context, which `model` describes; returns the model at the end.
fn run(ops: Vec<Op>, mut model: Model) -> BoxFuture<'static, Model> {
    async move {
        for op in ops {
            let at = format!("{op:?}");
            match op {
                Op::Set(var, label) => {
                    let number = if var == SUMMED { VARS[var].get().wrapping_add(label) } else { label };
                    VARS[var].set(number);
                    model.set(var, label);
                }
                Op::SyncBack(sets) => {
                    let entry = model.clone();
                    let mut exit = entry.clone();
                    propagate_back(None, || {
                        for &(var, label) in &sets {
                            let number =
                                if var == SUMMED { VARS[var].get().wrapping_add(label) } else { label };
                            VARS[var].set(number);
                            exit.set(var, label);
                        }
                    });
                    model.land(&entry, &exit);
                }
                Op::Back(body) => {
                    let entry = model.clone();
                    let exit = propagate_back_async(None, run(body, entry.clone())).await;
                    model.land(&entry, &exit);
                }
                Op::Panics(body) => {
                    let entry = model.clone();
                    let call = propagate_back_async(None, async move {
                        run(body, entry).await;
                        support::fault()
                    });
                    assert!(AssertUnwindSafe(call).catch_unwind().await.is_err());
                }
                Op::Cancelled(body) => {
                    let (ran, ran_rx) = oneshot::channel();
                    let entry = model.clone();
                    let call = propagate_back_async(None, async move {
                        run(body, entry).await;
                        ran.send(()).unwrap();
                        std::future::pending::<()>().await;
                    });
                    tokio::select! {
                        biased;
                        () = call => unreachable!("never completes"),
                        _ = ran_rx => {}
                    }
                }
                Op::JoinTwo(a, b) => {
                    let entry = model.clone();
                    let (first_landed, wait_first) = oneshot::channel::<()>();
                    let first = async {
                        let exit = propagate_back_async(None, async {
                            tokio::task::yield_now().await;
                            run(a, entry.clone()).await
                        })
                        .await;
                        first_landed.send(()).unwrap();
                        exit
                    };
                    let second = propagate_back_async(None, async {
                        tokio::task::yield_now().await;
                        let exit = run(b, entry.clone()).await;
                        wait_first.await.unwrap();
                        exit
                    });
                    let (exit_a, exit_b) = tokio::join!(first, second);
                    model.land(&entry, &exit_a);
                    model.land(&entry, &exit_b);
                }
                Op::Spawn(body, join) => {
                    let fork = model.clone();
                    let start = fork.child_start();
                    let child = run(body, start.clone());
                    match join {
                        Join::Plain => {
                            let end = contextvars::spawn(child).await.unwrap();
                            model.deliver(&fork, &start, &end, false);
                        }
                        Join::MergeBack => {
                            let end = contextvars::spawn(child).merge_back().await.unwrap();
                            model.deliver(&fork, &start, &end, true);
                        }
                        Join::Panicked => {
                            let handle = contextvars::spawn(async move {
                                child.await;
                                support::fault()
                            });
                            assert!(handle.await.unwrap_err().is_panic());
                        }
                    }
                }
            }
            check(&model, &at);
        }
        model
    }
    .boxed()
}

proptest! {
    #![proptest_config(Config { cases: 128, failure_persistence: None, ..Config::default() })]

    /// The real contexts agree with the model after every step, in every task and copy.
    #[test]
    fn joins_and_propagate_back_follow_the_rules(mut ops in prop::collection::vec(op(), 1..8)) {
        label(&mut ops, &mut 1);
        support::quiet_injected_panics();
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_time().build().unwrap();
        let model = runtime.block_on(Context::new().scope(async move {
            let model = run(ops, Model::default()).await;
            check(&model, "the end");
            model
        }));
        let mismatches = std::mem::take(&mut *MISMATCHES.lock().unwrap());
        prop_assert!(mismatches.is_empty(), "{mismatches:#?}\nmodel at the end: {model:?}");
    }
}
