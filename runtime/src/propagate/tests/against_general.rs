//! The exit's path of `Few` against the general path (`land_changes`), on random calls of
//! `propagate_back`, `propagate_back_async` and `InlineCopy::back` (nested, with `vars`
//! lists, tokens taken before, inside and after, snapshots kept, unsets, writes in the
//! caller before the first poll and between polls, and variables that merge, do not flow
//! back or are not inherited): each scenario runs twice, once with the path of `Few` and
//! once without, and every observable must agree: values, marks, token results, and which
//! value dropped at which step reading what (see `EXACT`).

use std::cell::{Cell, RefCell};
use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, Waker};

use super::{FEW_PATH, TAKEN};
use crate::scenarios::{
    self, A, B, DOWN_ONLY, G, Guard, NOT_INHERITED, NUMBERS, Rng, SETS_B, SUM, next_step, observe, value_for,
};
use crate::{AnyVar, Context, ContextVar, InlineCopy, Token, propagate_back, propagate_back_async};

thread_local! {
    static RNG: RefCell<Rng> = const { RefCell::new(Rng(1)) };
    /// What the scenario observed, in order.
    static OUT: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    /// Snapshots (`Context::current()`) kept, from the caller or from inside a call.
    static HELD: RefCell<Vec<Context>> = const { RefCell::new(Vec::new()) };
    /// Whether the scenario compares when each value drops (else only that each drops,
    /// once): no snapshot kept, no write between an async call's polls. A value that a write made after a snapshot shadows may stay
    /// until the key is written again (RELIABILITY.md): when it drops then depends on where
    /// each path left the map's entries.
    static EXACT: Cell<bool> = const { Cell::new(false) };
}

fn below(n: u32) -> u32 {
    RNG.with_borrow_mut(|rng| rng.below(n))
}

fn say(line: String) {
    OUT.with_borrow_mut(|out| out.push(line));
}

fn look(at: &str) {
    OUT.with_borrow_mut(|out| observe(out, at));
}

fn number() -> &'static ContextVar<u32> {
    NUMBERS[below(NUMBERS.len() as u32) as usize]
}

/// A value for `G`: mostly a guard, which sometimes sets `B` where it drops (only when the
/// scenario compares when values drop: else `B` would tell when).
fn guard(label: u32) -> Option<Arc<Guard>> {
    match below(8) {
        0 | 1 => None,
        2 if EXACT.get() => Some(Arc::new(Guard(label | SETS_B))),
        _ => Some(Arc::new(Guard(label))),
    }
}

static ONLY_A: [&dyn AnyVar; 1] = [&A];
static ONLY_G: [&dyn AnyVar; 1] = [&G];
static A_SUM_G: [&dyn AnyVar; 3] = [&A, &SUM, &G];
static B_DOWN_NOT_INHERITED: [&dyn AnyVar; 3] = [&B, &DOWN_ONLY, &NOT_INHERITED];

/// A call's `vars`: mostly none (all variables), else one of a few lists.
fn random_vars() -> Option<&'static [&'static dyn AnyVar]> {
    match below(8) {
        0 => Some(&ONLY_A),
        1 => Some(&ONLY_G),
        2 => Some(&A_SUM_G),
        3 => Some(&B_DOWN_NOT_INHERITED),
        4 => Some(&[]),
        _ => None,
    }
}

/// One operation that needs no token kept: a write, a write undone by its token, or a
/// snapshot kept or let go of.
fn plain_op() {
    let label = next_step();
    match below(7) {
        0 | 1 => {
            let var = number();
            say(format!("step {label}: set {}", var.name()));
            drop(var.set(value_for(var, label)));
        }
        2 => {
            say(format!("step {label}: set G"));
            drop(G.set(guard(label)));
        }
        3 => {
            let var = number();
            say(format!("step {label}: set and reset {}", var.name()));
            let token = var.set(label);
            var.reset(token).expect("its own token");
        }
        4 => {
            say(format!("step {label}: set and reset G"));
            let token = G.set(guard(label));
            G.reset(token).expect("its own token");
        }
        5 if !EXACT.get() => {
            say(format!("step {label}: snapshot kept"));
            let snapshot = Context::current();
            HELD.with_borrow_mut(|held| held.push(snapshot));
        }
        _ => {
            say(format!("step {label}: snapshots let go of"));
            drop(HELD.take());
        }
    }
}

/// Tokens a caller or a call keeps, to reset later.
#[derive(Default)]
struct Tokens {
    numbers: Vec<(&'static ContextVar<u32>, Token<u32>)>,
    guards: Vec<Token<Option<Arc<Guard>>>>,
}

impl Tokens {
    /// A write whose token is kept; mostly to a variable without a value, so that its reset
    /// unsets it.
    fn take(&mut self) {
        let label = next_step();
        if below(3) == 0 {
            say(format!("step {label}: set G, token kept (G set: {})", G.is_set()));
            self.guards.push(G.set(guard(label)));
        } else {
            let var =
                NUMBERS.iter().copied().find(|var| !var.is_set() && below(2) == 0).unwrap_or_else(number);
            say(format!("step {label}: set {}, token kept (set: {})", var.name(), var.is_set()));
            self.numbers.push((var, var.set(value_for(var, label))));
        }
    }

    /// Resets every token kept, the last first, and records what each reset gave.
    fn reset(&mut self) {
        let label = next_step();
        say(format!("step {label}: tokens reset"));
        for (var, token) in self.numbers.drain(..).rev() {
            say(format!("  reset {}: {:?}", var.name(), var.reset(token)));
        }
        for token in self.guards.drain(..).rev() {
            say(format!("  reset G: {:?}", G.reset(token)));
        }
    }
}

/// What a call does in its copy: writes, unsets, nested calls, snapshots.
fn body_ops(tokens: &mut Tokens, depth: u32) {
    for _ in 0..below(7) {
        match below(8) {
            0 | 1 => tokens.take(),
            2 if depth > 0 => call(depth - 1),
            _ => plain_op(),
        }
    }
}

/// The end of a call's body: its tokens reset (unsetting what they found unset), what it
/// sees, and the step of its exit.
fn body_end(mut tokens: Tokens) {
    tokens.reset();
    look("the body's end");
    let label = next_step();
    say(format!("step {label}: exit"));
}

/// A `propagate_back` or a `propagate_back_async` call, and what the caller sees after it.
fn call(depth: u32) {
    let vars = random_vars();
    let label = next_step();
    let names = vars.map(|vars| vars.iter().map(|var| var.var_name()).collect::<Vec<_>>());
    let kind = below(5);
    if kind < 2 {
        say(format!("step {label}: propagate_back, vars {names:?}"));
        propagate_back(vars, || {
            let mut tokens = Tokens::default();
            body_ops(&mut tokens, depth);
            body_end(tokens);
        });
    } else if kind == 2 {
        // The form of a `#[track_caller]` function: the same exit, from a guard's `Drop`.
        say(format!("step {label}: InlineCopy::back, vars {names:?}"));
        let copy = InlineCopy::back(vars);
        let mut tokens = Tokens::default();
        body_ops(&mut tokens, depth);
        body_end(tokens);
        drop(copy);
    } else {
        say(format!("step {label}: propagate_back_async, vars {names:?}"));
        let future = call_async(vars, depth);
        if below(3) == 0 {
            // Created here, first polled after a write: its copy is of the context then.
            plain_op();
        }
        block_on(interleaved(future));
    }
    look("after the call");
}

fn call_async(vars: Option<&'static [&'static dyn AnyVar]>, depth: u32) -> Pin<Box<dyn Future<Output = ()>>> {
    Box::pin(propagate_back_async(vars, async move {
        let mut tokens = Tokens::default();
        body_ops(&mut tokens, depth);
        if below(2) == 0 {
            YieldOnce(false).await;
        }
        if depth > 0 && below(3) == 0 {
            let label = next_step();
            let vars = random_vars();
            let names = vars.map(|vars| vars.iter().map(|var| var.var_name()).collect::<Vec<_>>());
            say(format!("step {label}: nested propagate_back_async awaited, vars {names:?}"));
            interleaved(call_async(vars, depth - 1)).await;
            look("after the nested call");
        }
        body_ops(&mut tokens, 0);
        body_end(tokens);
    }))
}

/// Polls `future`, and sometimes runs an operation where it is awaited between its polls:
/// the context it lands in is then no longer its copy's base. Not when the scenario compares
/// when values drop: the copy is a snapshot of that context, and a value its write then
/// shadows may stay until the key is written again, depending on where the earlier exits
/// left the map's entries (`Few` leaves them where the copy wrote them).
fn interleaved(mut future: Pin<Box<dyn Future<Output = ()>>>) -> impl Future<Output = ()> {
    let mut between = !EXACT.get() && below(2) == 0;
    poll_fn(move |cx| {
        let poll = future.as_mut().poll(cx);
        if poll.is_pending() && std::mem::take(&mut between) {
            plain_op();
        }
        poll
    })
}

/// Pending once.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        if std::mem::replace(&mut self.0, true) {
            return Poll::Ready(());
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

fn block_on(future: impl Future<Output = ()>) {
    let mut future = pin!(future);
    let mut cx = TaskContext::from_waker(Waker::noop());
    while future.as_mut().poll(&mut cx).is_pending() {}
}

/// One scenario: what it observed, in order.
fn scenario(seed: u64, few: bool) -> Vec<String> {
    FEW_PATH.set(few);
    RNG.set(Rng(seed));
    scenarios::start();
    EXACT.set(below(2) == 0);
    Context::new().run(|| {
        let mut tokens = Tokens::default();
        for _ in 0..below(3) + 1 {
            for _ in 0..below(5) {
                if below(3) == 0 { tokens.take() } else { plain_op() }
            }
            call(below(3));
            if below(3) != 0 {
                tokens.reset();
                look("after the resets");
            }
            for _ in 0..below(3) {
                plain_op();
            }
        }
        tokens.reset();
        look("the end");
        drop(HELD.take());
        next_step();
    });
    FEW_PATH.set(true);
    let mut out = OUT.take();
    out.extend(scenarios::drops(EXACT.get()));
    out
}

#[test]
fn the_few_path_and_the_general_path_agree_on_random_exits() {
    TAKEN.set(0);
    let scenarios_taken = scenarios::agree_on_random_seeds(scenario, || TAKEN.get());
    eprintln!("the path of `Few` taken {} times, in {scenarios_taken} scenarios", TAKEN.get());
    assert!(scenarios_taken > 4_000, "the path of `Few` was taken in {scenarios_taken} scenarios");
}
