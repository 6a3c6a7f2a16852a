//! The variables the operation benches set, and the contexts they start from: shared by
//! `core`, `propagate` and `ops`, so that their figures are taken on the same contexts.

use std::hint::black_box;

use contextvars::{Context, ContextVar, propagate_back};

/// Enough variables for the largest context the benches build.
pub static VARS: [ContextVar<u64>; 10_000] = [const { ContextVar::new("v", || 0) }; 10_000];

/// Gives every variable its key first: keys are handed out in order of first use, so the
/// variables a bench sets get the smallest keys.
fn assign_keys() {
    for var in &VARS {
        black_box(var.is_set());
    }
}

/// A context holding the first `n` variables.
#[allow(dead_code)] // each bench uses one of the two
pub fn context_with(n: usize) -> Context {
    assign_keys();
    let mut ctx = Context::new();
    ctx.run(|| {
        for (i, var) in VARS.iter().take(n).enumerate() {
            var.set(i as u64);
        }
    });
    ctx
}

/// A context in which one `propagate_back` call changed, and so marked, the first `n`
/// variables.
#[allow(dead_code)] // each bench uses one of the two
pub fn marked(n: usize) -> Context {
    assign_keys();
    let mut ctx = Context::new();
    ctx.run(|| {
        propagate_back(None, || {
            for (i, var) in VARS.iter().take(n).enumerate() {
                var.set(i as u64);
            }
        })
    });
    ctx
}
