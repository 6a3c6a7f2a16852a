//! What the randomized tests that run each scenario on a shortcut and on the general path
//! share (`join/tests/against_general.rs`, `propagate/tests/against_general.rs`): a small
//! deterministic generator, variables of every kind, a value that records when it drops and
//! what it reads there, and a record of everything observable of the current context.

use std::cell::{Cell, RefCell};
use std::sync::Arc;

use crate::current;
use crate::{AnyVar, ContextVar};

thread_local! {
    /// What each [`Guard`] read when it dropped: its label, the step, and `A`.
    static DROPS: RefCell<Vec<(u32, u32, u32)>> = const { RefCell::new(Vec::new()) };
    static STEP: Cell<u32> = const { Cell::new(0) };
}

/// Moves the scenario on by one step, and gives the new one.
pub(crate) fn next_step() -> u32 {
    STEP.set(STEP.get() + 1);
    STEP.get()
}

/// Starts a scenario: step 0, no drop recorded.
pub(crate) fn start() {
    STEP.set(0);
    DROPS.take();
}

/// Which values dropped, once a scenario is over: with `exact`, at which step and reading
/// what (in no order within a step: one operation may let go of several values in the
/// order its path meets them); else only which, so that a value dropped twice or never
/// still shows.
pub(crate) fn drops(exact: bool) -> Vec<String> {
    let mut drops = DROPS.take();
    if exact {
        drops.sort_by_key(|&(label, step, _)| (step, label));
        drops.into_iter().map(|drop| format!("dropped {drop:?}")).collect()
    } else {
        drops.sort_unstable();
        drops.into_iter().map(|(label, ..)| format!("dropped {label}")).collect()
    }
}

fn sum(base: &u32, parent: &u32, child: &u32) -> u32 {
    parent.wrapping_add(*child).wrapping_sub(*base)
}

pub(crate) static A: ContextVar<u32> = ContextVar::new("A", || 0);
pub(crate) static B: ContextVar<u32> = ContextVar::new("B", || 0);
pub(crate) static SUM: ContextVar<u32> = ContextVar::new("SUM", || 0).merge(sum);
pub(crate) static DOWN_ONLY: ContextVar<u32> = ContextVar::new("DOWN_ONLY", || 0).back(false);
pub(crate) static NOT_INHERITED: ContextVar<u32> = ContextVar::new("NOT_INHERITED", || 0).inherit(false);
pub(crate) static NUMBERS: [&ContextVar<u32>; 5] = [&A, &B, &SUM, &DOWN_ONLY, &NOT_INHERITED];

/// A value for `var` at step `label`: `SUM` adds to what it holds, so that its merges show.
pub(crate) fn value_for(var: &'static ContextVar<u32>, label: u32) -> u32 {
    if std::ptr::eq(var, &SUM) { SUM.get().wrapping_add(label) } else { label }
}

/// Records, when dropped, its label, the step and what it reads of `A` there; with
/// [`SETS_B`] in its label, also sets `B` to its label there (a `Drop` that writes where it
/// drops).
pub(crate) struct Guard(pub(crate) u32);

/// The bit of a [`Guard`]'s label that makes its `Drop` set `B`.
pub(crate) const SETS_B: u32 = 1 << 31;

impl Drop for Guard {
    fn drop(&mut self) {
        let seen = (self.0, STEP.get(), A.get());
        DROPS.with_borrow_mut(|drops| drops.push(seen));
        if self.0 & SETS_B != 0 {
            B.set(self.0 & !SETS_B);
        }
    }
}

pub(crate) static G: ContextVar<Option<Arc<Guard>>> = ContextVar::new("G", || None);

/// A small deterministic generator (xorshift).
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn below(&mut self, n: u32) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % u64::from(n)) as u32
    }
}

/// Everything observable of the current context: the values, whether each is set, and the
/// marks.
pub(crate) fn observe(out: &mut Vec<String>, at: &str) {
    let numbers: Vec<_> = NUMBERS.iter().map(|var| (var.is_set(), var.get())).collect();
    let guard = G.with(|g| g.as_ref().map(|g| g.0));
    let marks: Vec<bool> = NUMBERS
        .iter()
        .map(|var| var.var_key())
        .chain([G.var_key()])
        .map(|key| current::read(|map| map.is_marked(key)))
        .collect();
    out.push(format!("{at}: {numbers:?} G={guard:?} marks={marks:?}"));
}

/// Runs 10,000 seeded scenarios twice each, on the general path (`scenario(seed, false)`)
/// and on the shortcut (`true`), and panics with the shortest one on which they differ,
/// side by side (shortcut first). `taken` counts the shortcuts taken so far on this thread;
/// none may be taken on the general path. Gives how many scenarios took the shortcut.
pub(crate) fn agree_on_random_seeds(
    scenario: impl Fn(u64, bool) -> Vec<String>,
    taken: impl Fn() -> u32,
) -> u32 {
    let mut failures = Vec::new();
    let mut scenarios_taken = 0;
    for seed in 1..=10_000u64 {
        let seed = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let before = taken();
        let general = scenario(seed, false);
        assert_eq!(taken(), before, "no shortcut when it is off");
        let shortcut = scenario(seed, true);
        scenarios_taken += u32::from(taken() > before);
        if shortcut != general {
            failures.push((shortcut.len(), seed, shortcut, general));
        }
    }
    failures.sort();
    if let Some((_, seed, shortcut, general)) = failures.first() {
        for (a, b) in shortcut.iter().zip(general) {
            eprintln!("{} {a}\n  {b}", if a == b { " " } else { "!" });
        }
        panic!("seed {seed:#x}, {} failures", failures.len());
    }
    scenarios_taken
}
