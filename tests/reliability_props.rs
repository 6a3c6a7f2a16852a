//! Property tests against reference models.
//!
//! * The persistent map, through its only users (`set`, `reset`, `get`, `is_set`,
//!   `Context::current`, `Context::run`), against a `HashMap` of what each variable holds.
//!   340 variables, so the trie is three levels deep; snapshots must keep their values
//!   forever after, whatever happens to the context they were taken from.
//! * The three-way merge (`Changes::between(..).apply()`, `spawn(..).merge_back()` and
//!   `spawn_blocking(..).merge_back()`) against the rule written out in `expected` below, for
//!   random fork values, parent changes and child changes, over variables of every policy.
//!
//! `CONTEXTVARS_LONG=1` runs 20 times as many cases.

use std::collections::HashMap;
use std::sync::LazyLock;

use contextvars::{AnyVar, Changes, Context, ContextVar, Error, Token};
use proptest::prelude::*;
use proptest::test_runner::Config;

/// The default of every variable here; also a value the tests set (a set to a value equal to
/// the default is still a change).
const DEFAULT: u64 = 100;

fn cases(short: u32) -> Config {
    let long = std::env::var_os("CONTEXTVARS_LONG").is_some();
    Config { cases: if long { short * 20 } else { short }, ..Config::default() }
}

// ---------------------------------------------------------------------------------------
// The map against a HashMap.

/// Inherited variables, and variables kept from children (the map marks those in every node
/// above them): keys are handed out in order of first use, so the two kinds interleave.
static SHOWN: [ContextVar<u64>; 300] = [const { ContextVar::new("shown", || DEFAULT) }; 300];
static HIDDEN: [ContextVar<u64>; 40] = [const { ContextVar::new("hidden", || DEFAULT).inherit(false) }; 40];
const VARS: usize = 340;

fn var(i: usize) -> &'static ContextVar<u64> {
    if i < 300 { &SHOWN[i] } else { &HIDDEN[i - 300] }
}

type Model = HashMap<usize, u64>;

#[derive(Debug, Clone)]
enum MapOp {
    Set(usize, u64),
    /// Resets the n-th outstanding token (modulo their number), in any order.
    Reset(usize),
    /// Takes a snapshot of the current context.
    Snapshot,
    /// Enters a copy of the n-th snapshot, sets values there, and tries to reset a token of
    /// the outer context there (which must fail and change nothing).
    ChangeCopy(usize, Vec<(usize, u64)>),
    /// Drops the n-th snapshot: the others must not notice.
    DropSnapshot(usize),
}

fn var_index() -> impl Strategy<Value = usize> {
    // Mostly a few hot variables (so sets and resets meet), sometimes any of them.
    prop_oneof![3 => 0usize..12, 1 => 0..VARS]
}

fn value() -> impl Strategy<Value = u64> {
    prop_oneof![0u64..4, Just(DEFAULT)]
}

fn map_op() -> impl Strategy<Value = MapOp> {
    prop_oneof![
        6 => (var_index(), value()).prop_map(|(i, v)| MapOp::Set(i, v)),
        3 => any::<usize>().prop_map(MapOp::Reset),
        2 => Just(MapOp::Snapshot),
        1 => (any::<usize>(), prop::collection::vec((var_index(), value()), 0..6))
            .prop_map(|(n, sets)| MapOp::ChangeCopy(n, sets)),
        1 => any::<usize>().prop_map(MapOp::DropSnapshot),
    ]
}

/// Every variable of `context` reads as `model` says.
fn check_context(context: &Context, model: &Model, what: &str) {
    for i in 0..VARS {
        let expected = model.get(&i).copied();
        assert_eq!(context.contains(var(i)), expected.is_some(), "{what}: contains variable {i}");
        assert_eq!(context.get(var(i)), expected.unwrap_or(DEFAULT), "{what}: variable {i}");
    }
    // As a mapping: exactly the variables of the model, each once.
    let address = |var: &'static dyn AnyVar| var as *const dyn AnyVar as *const ();
    let mut listed: Vec<_> = context.vars().map(address).collect();
    let mut expected: Vec<_> = model.keys().map(|&i| address(var(i))).collect();
    listed.sort_unstable();
    expected.sort_unstable();
    assert_eq!(listed, expected, "{what}: the variables listed");
    assert_eq!(context.len(), model.len(), "{what}: len");
}

/// Every variable of the thread's current context reads as `model` says.
fn check_current(model: &Model) {
    for i in 0..VARS {
        let expected = model.get(&i).copied();
        assert_eq!(var(i).is_set(), expected.is_some(), "is_set of variable {i}");
        assert_eq!(var(i).get(), expected.unwrap_or(DEFAULT), "variable {i}");
        assert_eq!(var(i).with(|v| *v), expected.unwrap_or(DEFAULT), "`with` of variable {i}");
    }
}

fn run_map_ops(ops: &[MapOp]) {
    let mut model = Model::new();
    let mut tokens: Vec<(usize, Token<u64>, Option<u64>)> = Vec::new();
    let mut snapshots: Vec<(Context, Model, usize)> = Vec::new();
    // The steps at which each variable was set or reset.
    let mut touches: Vec<Vec<usize>> = vec![Vec::new(); VARS];
    for (step, op) in ops.iter().enumerate() {
        let step = step + 1;
        match op {
            MapOp::Set(i, v) => {
                touches[*i].push(step);
                let token = var(*i).set(*v);
                assert_eq!(token.old_value().copied(), model.get(i).copied(), "old value of {i}");
                tokens.push((*i, token, model.insert(*i, *v)));
                assert_eq!(var(*i).get(), *v);
            }
            MapOp::Reset(n) if !tokens.is_empty() => {
                let (i, token, before) = tokens.remove(n % tokens.len());
                var(i).reset(token).unwrap();
                touches[i].push(step);
                match before {
                    Some(v) => model.insert(i, v),
                    None => model.remove(&i),
                };
                assert_eq!(var(i).get(), before.unwrap_or(DEFAULT), "reset of {i}");
            }
            MapOp::Reset(_) => {}
            MapOp::Snapshot => snapshots.push((Context::current(), model.clone(), step)),
            MapOp::ChangeCopy(n, sets) if !snapshots.is_empty() => {
                let (snapshot, snapshot_model, _) = &snapshots[n % snapshots.len()];
                let mut copy = snapshot.clone();
                let mut copy_model = snapshot_model.clone();
                // The token is spent by the refused reset; the outer value stays, as the model says.
                let outer_token = tokens.pop();
                let refused = copy.run(|| {
                    for (i, v) in sets {
                        var(*i).set(*v);
                        copy_model.insert(*i, *v);
                    }
                    outer_token.map(|(i, token, before)| (i, var(i).reset(token), before))
                });
                if let Some((i, result, _)) = refused {
                    assert_eq!(result, Err(Error::TokenFromOtherContext { var: var(i).name() }));
                }
                check_context(&copy, &copy_model, "changed copy");
                check_context(snapshot, snapshot_model, "snapshot after its copy changed");
                // Exactly the variables set in the copy changed (a set is a change even to an
                // equal value), and applying them to another copy of the snapshot gives the copy.
                let changes = Changes::between(snapshot, &copy);
                for i in 0..VARS {
                    let set_here = sets.iter().any(|(j, _)| *j == i);
                    assert_eq!(changes.contains(var(i)), set_here, "variable {i} in the changes of a copy");
                }
                let mut target = snapshot.clone();
                changes.apply_to(&mut target);
                check_context(&target, &copy_model, "snapshot with the copy's changes applied");
            }
            MapOp::ChangeCopy(..) => {}
            MapOp::DropSnapshot(n) if !snapshots.is_empty() => drop(snapshots.remove(n % snapshots.len())),
            MapOp::DropSnapshot(_) => {}
        }
    }
    check_current(&model);
    check_context(&Context::current(), &model, "final snapshot");
    for (n, (snapshot, snapshot_model, _)) in snapshots.iter().enumerate() {
        check_context(snapshot, snapshot_model, &format!("snapshot {n}"));
    }
    // The copy into a child task keeps exactly the inherited variables.
    let inherited: Model = model.iter().filter(|(i, _)| **i < 300).map(|(i, v)| (*i, *v)).collect();
    let child = {
        let _runtime = RUNTIME.enter();
        contextvars::spawn(async move { check_current(&inherited) })
    };
    RUNTIME.block_on(child).unwrap();
    // The difference between snapshots of this one context, in both directions: each with
    // the next, and the first with the last.
    snapshots.push((Context::current(), model, ops.len() + 1));
    let last = snapshots.len() - 1;
    let pairs = (0..last).map(|n| (n, n + 1)).chain([(0, last)]);
    for (x, y) in pairs.flat_map(|(x, y)| [(x, y), (y, x)]) {
        let ((a, a_model, a_step), (b, b_model, b_step)) = (&snapshots[x], &snapshots[y]);
        let (from, to) = (*a_step.min(b_step), *a_step.max(b_step));
        check_changes(a, a_model, b, b_model, |i| touches[i].iter().any(|&step| step > from && step <= to));
    }
}

/// `Changes::between(a, b)` holds every variable whose value differs, none that was not
/// touched between the two, and applied to a copy of `a` gives `b`.
fn check_changes(
    a: &Context,
    a_model: &Model,
    b: &Context,
    b_model: &Model,
    touched: impl Fn(usize) -> bool,
) {
    let changes = Changes::between(a, b);
    for i in 0..VARS {
        if a_model.get(&i) != b_model.get(&i) {
            assert!(changes.contains(var(i)), "variable {i} differs but is not among the changes");
        }
        if changes.contains(var(i)) {
            assert!(touched(i), "variable {i} is among the changes but was not touched");
        }
    }
    let mut target = a.clone();
    changes.apply_to(&mut target);
    check_context(&target, b_model, "a snapshot with the changes to another applied");
}

/// The keys of the variables are handed out on first use, in whatever order the first case
/// touches them: a random order, so that the trie grows in random order too.
#[test]
fn keys_handed_out_in_random_order_make_a_correct_map() {
    let mut order: Vec<usize> = (0..VARS).collect();
    // A fixed shuffle: reproducible, and independent of which case proptest runs first.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    for i in (1..order.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        order.swap(i, (state % (i as u64 + 1)) as usize);
    }
    Context::new().run(|| {
        let mut model = Model::new();
        for (n, &i) in order.iter().enumerate() {
            var(i).set(n as u64);
            model.insert(i, n as u64);
        }
        check_current(&model);
    });
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn the_map_matches_a_hashmap(ops in prop::collection::vec(map_op(), 1..120)) {
        // A fresh context per case: the thread's own context stays empty.
        Context::new().run(|| run_map_ops(&ops));
        prop_assert!(Context::current().is_empty());
    }
}

// ---------------------------------------------------------------------------------------
// The three-way merge against its rule.

fn sum(base: &u64, parent: &u64, child: &u64) -> u64 {
    parent.wrapping_add(*child).wrapping_sub(*base)
}

static PLAIN: [ContextVar<u64>; 4] = [const { ContextVar::new("plain", || DEFAULT) }; 4];
static NOT_BACK: [ContextVar<u64>; 2] = [const { ContextVar::new("not_back", || DEFAULT).back(false) }; 2];
static NOT_INHERITED: [ContextVar<u64>; 2] =
    [const { ContextVar::new("not_inherited", || DEFAULT).inherit(false) }; 2];
static MERGED: [ContextVar<u64>; 4] = [const { ContextVar::new("merged", || DEFAULT).merge(sum) }; 4];
static MERGED_NOT_INHERITED: [ContextVar<u64>; 2] =
    [const { ContextVar::new("merged_not_inherited", || DEFAULT).inherit(false).merge(sum) }; 2];
static MERGED_NOT_BACK: [ContextVar<u64>; 2] =
    [const { ContextVar::new("merged_not_back", || DEFAULT).back(false).merge(sum) }; 2];

/// Every variable of the merge tests, with its policy.
#[derive(Clone, Copy)]
struct Policy {
    var: &'static ContextVar<u64>,
    inherit: bool,
    back: bool,
    merge: bool,
}

static POLICIES: LazyLock<Vec<Policy>> = LazyLock::new(|| {
    let group = |vars: &'static [ContextVar<u64>], inherit, back, merge| {
        vars.iter().map(move |var| Policy { var, inherit, back, merge })
    };
    group(&PLAIN, true, true, false)
        .chain(group(&NOT_BACK, true, false, false))
        .chain(group(&NOT_INHERITED, false, true, false))
        .chain(group(&MERGED, true, true, true))
        .chain(group(&MERGED_NOT_INHERITED, false, true, true))
        .chain(group(&MERGED_NOT_BACK, true, false, true))
        .collect()
});

/// What one side does to one variable after the fork.
#[derive(Debug, Clone, Copy)]
enum Step {
    Nothing,
    Set(u64),
    /// Sets the value it reads: equal, but a new value, so a change.
    SetSame,
    /// `reset(set(v))`: no change.
    SetReset(u64),
    /// `a = set(x); b = set(y); reset(b)`: a change to x.
    SetSetResetSecond(u64, u64),
    /// `a = set(x); b = set(y); reset(a)`: back to the value before, no change.
    SetSetResetFirst(u64, u64),
    /// The parent only: resets the `set` that gave the fork its value, so the variable is
    /// unset (a change when it was set at the fork).
    ResetFork,
}

fn step(parent: bool) -> impl Strategy<Value = Step> {
    let reset_fork = if parent { 2 } else { 0 };
    prop_oneof![
        4 => Just(Step::Nothing),
        4 => value().prop_map(Step::Set),
        1 => Just(Step::SetSame),
        2 => value().prop_map(Step::SetReset),
        1 => (value(), value()).prop_map(|(x, y)| Step::SetSetResetSecond(x, y)),
        1 => (value(), value()).prop_map(|(x, y)| Step::SetSetResetFirst(x, y)),
        reset_fork => Just(Step::ResetFork),
    ]
}

/// Runs `step` on `var` in the current context; returns the value it leaves and whether that
/// is a change. `fork_token` is the parent's token of the set that gave the fork its value.
fn apply_step(
    var: &'static ContextVar<u64>,
    step: Step,
    fork_token: &mut Option<Token<u64>>,
) -> (Option<u64>, bool) {
    let before = var.is_set().then(|| var.get());
    match step {
        Step::Nothing => (before, false),
        Step::Set(v) => {
            var.set(v);
            (Some(v), true)
        }
        Step::SetSame => {
            var.set(var.get());
            (Some(var.get()), true)
        }
        Step::SetReset(v) => {
            let token = var.set(v);
            var.reset(token).unwrap();
            (before, false)
        }
        Step::SetSetResetSecond(x, y) => {
            let _first = var.set(x);
            let second = var.set(y);
            var.reset(second).unwrap();
            (Some(x), true)
        }
        Step::SetSetResetFirst(x, y) => {
            let first = var.set(x);
            let _second = var.set(y);
            var.reset(first).unwrap();
            (before, false)
        }
        Step::ResetFork => match fork_token.take() {
            Some(token) => {
                var.reset(token).unwrap();
                (None, before.is_some())
            }
            None => (before, false),
        },
    }
}

/// The rule: for each variable the child changed (by identity), skipped when `back(false)`;
/// if the parent did not change it since the fork, the child's value (or unset); otherwise
/// the merge function if any (an unset side reads as the default), else the child's value.
fn expected(
    policy: Policy,
    base: Option<u64>,
    parent: (Option<u64>, bool),
    child: (Option<u64>, bool),
) -> Option<u64> {
    let ((parent, parent_changed), (child, child_changed)) = (parent, child);
    if !child_changed || !policy.back {
        parent
    } else if !parent_changed {
        child
    } else if policy.merge {
        let read = |side: Option<u64>| side.unwrap_or(DEFAULT);
        Some(sum(&read(base), &read(parent), &read(child)))
    } else {
        child
    }
}

#[derive(Debug, Clone)]
struct Case {
    /// Per variable of `POLICIES`: the value at the fork (`None`: unset), the parent's step
    /// and the child's step.
    vars: Vec<(Option<u64>, Step, Step)>,
    /// The order in which the child runs its steps (a permutation of the variables).
    order: Vec<usize>,
}

fn case() -> impl Strategy<Value = Case> {
    let n = POLICIES.len();
    let vars = prop::collection::vec((prop::option::of(value()), step(true), step(false)), n);
    (vars, Just((0..n).collect::<Vec<_>>()).prop_shuffle()).prop_map(|(vars, order)| Case { vars, order })
}

/// Sets the fork's values in the current context; returns the tokens (for `ResetFork`).
fn set_base(case: &Case) -> Vec<Option<Token<u64>>> {
    POLICIES.iter().zip(&case.vars).map(|(p, (base, _, _))| base.map(|v| p.var.set(v))).collect()
}

/// Runs the child's steps in the current context; checks what the child sees at its start.
fn run_child(case: &Case, spawned: bool) -> Vec<(Option<u64>, bool)> {
    let mut results = vec![(None, false); case.vars.len()];
    for &i in &case.order {
        let (policy, (base, _, child)) = (POLICIES[i], case.vars[i]);
        // A spawned child starts without the variables that are not inherited.
        let start = if spawned && !policy.inherit { None } else { base };
        assert_eq!(policy.var.is_set().then(|| policy.var.get()), start, "child start of variable {i}");
        results[i] = apply_step(policy.var, child, &mut None);
    }
    results
}

/// Runs the parent's steps in the current context.
fn run_parent(case: &Case, fork_tokens: &mut [Option<Token<u64>>]) -> Vec<(Option<u64>, bool)> {
    POLICIES
        .iter()
        .zip(&case.vars)
        .zip(fork_tokens)
        .map(|((p, (_, parent, _)), token)| apply_step(p.var, *parent, token))
        .collect()
}

fn check_merged(case: &Case, parent: &[(Option<u64>, bool)], child: &[(Option<u64>, bool)]) {
    for (i, (policy, (base, _, _))) in POLICIES.iter().zip(&case.vars).enumerate() {
        let want = expected(*policy, *base, parent[i], child[i]);
        let got = policy.var.is_set().then(|| policy.var.get());
        assert_eq!(
            got,
            want,
            "variable {i} ({}): base {base:?}, parent {:?}, child {:?}",
            policy.var.name(),
            parent[i],
            child[i]
        );
    }
}

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
});

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn changes_between_and_apply_follow_the_rule(case in case()) {
        Context::new().run(|| {
            let mut fork_tokens = set_base(&case);
            let fork = Context::current();
            let mut child = fork.clone();
            let child_results = child.run(|| run_child(&case, false));
            let parent_results = run_parent(&case, &mut fork_tokens);
            Changes::between(&fork, &child).apply();
            check_merged(&case, &parent_results, &child_results);
        });
    }

    #[test]
    fn merge_back_follows_the_rule(case in case(), blocking in any::<bool>()) {
        RUNTIME.block_on(Context::new().scope(async {
            let mut fork_tokens = set_base(&case);
            // The child runs its steps first, the parent runs its own while the child waits,
            // then the child finishes and is joined.
            let (done, done_rx) = tokio::sync::oneshot::channel();
            let (go, go_rx) = tokio::sync::oneshot::channel::<()>();
            let child_case = case.clone();
            let join = if blocking {
                contextvars::spawn_blocking(move || {
                    done.send(run_child(&child_case, true)).unwrap();
                    go_rx.blocking_recv().unwrap();
                })
                .merge_back()
            } else {
                contextvars::spawn(async move {
                    done.send(run_child(&child_case, true)).unwrap();
                    go_rx.await.unwrap();
                })
                .merge_back()
            };
            let child_results = done_rx.await.unwrap();
            let parent_results = run_parent(&case, &mut fork_tokens);
            go.send(()).unwrap();
            join.await.unwrap();
            check_merged(&case, &parent_results, &child_results);
        }));
    }
}
