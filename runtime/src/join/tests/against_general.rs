//! The join's shortcut (`take_whole`) against the general path, on random joins (nested,
//! plain or `merge_back`, with tokens, `#[propagate(back)]` calls, snapshots, and variables
//! that merge, do not flow back or are not inherited): each scenario runs twice, once with
//! the shortcut and once without, and every observable must agree: values, marks, tokens,
//! and which value dropped at which step reading what (see [`EXACT`]).

use std::cell::Cell;
use std::sync::Arc;

use crate::scenarios::{self, A, G, Guard, NUMBERS, Rng, next_step, observe, value_for};
use crate::{Context, Fork, Token, propagate_back};

thread_local! {
    /// Whether joins on this thread may take the shortcut.
    static SHORTCUT: Cell<bool> = const { Cell::new(true) };
    /// How many joins took it.
    static TAKEN: Cell<u32> = const { Cell::new(0) };
    /// Whether the scenario compares when each value drops (else only that each drops,
    /// once): no snapshot kept, no `#[propagate(back)]` copy, no write between a spawn and
    /// its join. A value that a write made after a snapshot shadows may stay until the key
    /// is written again (RELIABILITY.md): when it drops then depends on where each path left
    /// the map's entries.
    static EXACT: Cell<bool> = const { Cell::new(false) };
}

pub(in crate::join) fn shortcut() -> bool {
    SHORTCUT.get()
}

pub(in crate::join) fn taken() {
    TAKEN.set(TAKEN.get() + 1);
}

/// Runs random operations in the current context; `depth` bounds nested joins.
fn ops(rng: &mut Rng, count: u32, depth: u32, held: &mut Vec<Context>, out: &mut Vec<String>) {
    for _ in 0..count {
        let label = next_step();
        let op = rng.below(9);
        out.push(format!("step {label}: op {op} at depth {depth}"));
        match op {
            0 | 1 => {
                let var = NUMBERS[rng.below(5) as usize];
                out.push(format!("  set {}", var.name()));
                drop(var.set(value_for(var, label)));
            }
            2 => drop(G.set(Some(Arc::new(Guard(label))))),
            3 => {
                let var = NUMBERS[rng.below(5) as usize];
                out.push(format!("  set and reset {}", var.name()));
                let token = var.set(label);
                var.reset(token).expect("its own token");
            }
            4 => {
                let token = G.set(if rng.below(2) == 0 { None } else { Some(Arc::new(Guard(label))) });
                G.reset(token).expect("its own token");
            }
            5 if !EXACT.get() => {
                let var = NUMBERS[rng.below(5) as usize];
                out.push(format!("  propagate_back {}", var.name()));
                propagate_back(None, || drop(var.set(label)));
            }
            6 if !EXACT.get() => held.push(Context::current()),
            7 => held.clear(),
            6 | 8 if depth > 0 => join(rng, depth - 1, held, out),
            _ => drop(G.set(None)),
        }
    }
}

/// A child forked here, changed, and joined by `merge_back` (or plainly), with random work
/// on both sides.
fn join(rng: &mut Rng, depth: u32, held: &mut Vec<Context>, out: &mut Vec<String>) {
    let fork = Fork::current();
    let mut child = fork.context();
    let count = rng.below(5);
    child.run(|| ops(rng, count, depth, &mut Vec::new(), out));
    // Mostly nothing in between: the shortcut's case.
    if !EXACT.get() && rng.below(4) == 0 {
        let count = rng.below(3) + 1;
        ops(rng, count, 0, held, out);
    }
    let step = next_step();
    let plain = rng.below(5) == 0;
    out.push(format!("step {step}: join, plain {plain}"));
    if plain {
        fork.join(child)
    } else {
        fork.merge_back(child)
    }
    observe(out, "after a join");
}

/// One scenario: what it observed, in order.
fn scenario(seed: u64, shortcut: bool) -> Vec<String> {
    SHORTCUT.set(shortcut);
    scenarios::start();
    let mut rng = Rng(seed);
    EXACT.set(rng.below(2) == 0);
    let mut out = Vec::new();
    let mut held = Vec::new();
    let mut tokens: Vec<Token<u32>> = Vec::new();
    Context::new().run(|| {
        let before = rng.below(6);
        ops(&mut rng, before, 1, &mut held, &mut out);
        tokens.push(A.set(1_000));
        for _ in 0..rng.below(3) + 1 {
            join(&mut rng, 2, &mut held, &mut out);
        }
        for token in tokens.drain(..) {
            out.push(format!("reset: {:?}", A.reset(token)));
        }
        let after = rng.below(4);
        ops(&mut rng, after, 1, &mut held, &mut out);
        observe(&mut out, "the end");
        held.clear();
        next_step();
    });
    SHORTCUT.set(true);
    out.extend(scenarios::drops(EXACT.get()));
    out
}

#[test]
fn the_shortcut_and_the_general_path_agree_on_random_joins() {
    TAKEN.set(0);
    scenarios::agree_on_random_seeds(scenario, || TAKEN.get());
    assert!(TAKEN.get() > 5_000, "the shortcut was taken {} times", TAKEN.get());
}
