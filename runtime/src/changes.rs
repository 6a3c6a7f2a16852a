//! `Changes`: the difference between two contexts, and the three-way merge that applies it.

use std::fmt;

use crate::context::Context;
use crate::current;
use crate::map::Map;
use crate::propagate;
use crate::value::{self, Value};
use crate::var::AnyVar;

/// The variables a child context changed relative to the context it was forked from, with
/// the values on both sides: what a join brings back.
///
/// [`apply`](Changes::apply) merges them into the current context, variable by variable,
/// with a three-way merge:
///
/// * a variable declared `back(false)` is skipped;
/// * if the current context still holds the value it had at the fork, the child's value (or
///   the child's unset) is taken;
/// * if it changed too, the variable's `merge(base, parent, child)` decides, and without one
///   the child wins.
///
/// Building and applying cost O(changed variables), not O(all variables).
///
/// ```
/// use contextvars_runtime::{Changes, Context, ContextVar};
/// static USER: ContextVar<Option<String>> = ContextVar::new("USER", || None);
///
/// let fork = Context::current();
/// let mut child = fork.clone();
/// child.run(|| USER.set(Some("ada".into())));
///
/// let changes = Changes::between(&fork, &child);
/// assert_eq!(changes.len(), 1);
/// changes.apply();
/// assert_eq!(USER.get().as_deref(), Some("ada"));
/// ```
#[derive(Clone, Default)]
pub struct Changes {
    entries: Vec<Change>,
}

#[derive(Clone)]
struct Change {
    key: u32,
    var: &'static dyn AnyVar,
    /// The value at the fork point (the parent's value when the child started).
    base: Option<Value>,
    /// The child's value.
    child: Option<Value>,
    /// Whether the change came from a `#[propagate(back)]` record, which keeps flowing up.
    recorded: bool,
    /// While applying: the parent's value, then the value the write replaced.
    parent: Option<Value>,
    /// While applying: what to write.
    outcome: Outcome,
}

/// What applying one change does to the current context.
#[derive(Clone, Default)]
enum Outcome {
    /// Nothing: not decided yet, or the value is already there.
    #[default]
    Keep,
    /// Writes this value (`None`: unsets the variable).
    Write(Option<Value>),
}

impl Changes {
    /// The changes from `before` to `after`.
    ///
    /// ```
    /// use contextvars_runtime::{Changes, Context};
    /// assert!(Changes::between(&Context::new(), &Context::new()).is_empty());
    /// ```
    pub fn between(before: &Context, after: &Context) -> Changes {
        Changes::forked(&before.map, &before.map, &after.map)
    }

    /// The changes a child made between `start` and `end`, with `fork` (the parent's
    /// context when the child started, before the variables that are not inherited were
    /// left out) as the base of the merge.
    pub(crate) fn forked(fork: &Map, start: &Map, end: &Map) -> Changes {
        let record_key = propagate::record_key();
        let mut entries = Vec::new();
        Map::diff(start, end, &mut |key, before, after| {
            if key == record_key {
                return;
            }
            let Some(var) = after.or(before).map(|v| v.var()) else { return };
            let base = if std::ptr::eq(fork, start) { before.cloned() } else { fork.get(key).cloned() };
            entries.push(Change {
                key,
                var,
                base,
                child: after.cloned(),
                recorded: false,
                parent: None,
                outcome: Outcome::Keep,
            });
        });
        Changes { entries }
    }

    /// Changes recorded by `#[propagate(back)]` functions, against the fork point.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))] // used by the joins of `task.rs`
    pub(crate) fn recorded(fork: &Map, record: &propagate::Record) -> Changes {
        let entries = record
            .iter()
            .filter(|(key, _, child)| !value::same(fork.get(*key), child.as_ref()))
            .map(|(key, var, child)| Change {
                key: *key,
                var: *var,
                base: fork.get(*key).cloned(),
                child: child.clone(),
                recorded: true,
                parent: None,
                outcome: Outcome::Keep,
            })
            .collect();
        Changes { entries }
    }

    /// Marks the changes to the variables in `record` as recorded, so they keep flowing up.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))] // used by the joins of `task.rs`
    pub(crate) fn mark_recorded(&mut self, record: &propagate::Record) {
        for change in &mut self.entries {
            change.recorded = record.iter().any(|(key, _, _)| *key == change.key);
        }
    }

    /// How many variables changed.
    ///
    /// ```
    /// use contextvars_runtime::{Changes, Context};
    /// assert_eq!(Changes::between(&Context::new(), &Context::new()).len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no variable changed.
    ///
    /// ```
    /// use contextvars_runtime::Changes;
    /// assert!(Changes::default().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The variables that changed, in key order.
    ///
    /// ```
    /// use contextvars_runtime::{Changes, Context, ContextVar};
    /// static N: ContextVar<u8> = ContextVar::new("N", || 0);
    /// let mut child = Context::new();
    /// child.run(|| N.set(1));
    /// let names: Vec<_> = Changes::between(&Context::new(), &child).vars().map(|v| v.var_name()).collect();
    /// assert_eq!(names, ["N"]);
    /// ```
    pub fn vars(&self) -> impl Iterator<Item = &'static dyn AnyVar> + '_ {
        self.entries.iter().map(|change| change.var)
    }

    /// Whether `var` is among the changes. Takes a typed variable or a `&'static dyn AnyVar`.
    ///
    /// ```
    /// use contextvars_runtime::{Changes, Context, ContextVar};
    /// static N: ContextVar<u8> = ContextVar::new("N", || 0);
    /// static M: ContextVar<u8> = ContextVar::new("M", || 0);
    /// let mut child = Context::new();
    /// child.run(|| N.set(1));
    /// let changes = Changes::between(&Context::new(), &child);
    /// assert!(changes.contains(&N) && !changes.contains(&M));
    /// ```
    pub fn contains<V: AnyVar + ?Sized>(&self, var: &'static V) -> bool {
        let key = var.var_key();
        self.entries.iter().any(|change| change.key == key)
    }

    /// Keeps only the changes to `vars`.
    ///
    /// ```
    /// use contextvars_runtime::{Changes, Context, ContextVar};
    /// static A: ContextVar<u8> = ContextVar::new("A", || 0);
    /// static B: ContextVar<u8> = ContextVar::new("B", || 0);
    /// let mut child = Context::new();
    /// child.run(|| { A.set(1); B.set(2); });
    /// let only_a = Changes::between(&Context::new(), &child).only(&[&A]);
    /// assert!(only_a.contains(&A) && !only_a.contains(&B));
    /// ```
    pub fn only(mut self, vars: &[&'static dyn AnyVar]) -> Changes {
        let keys: Vec<u32> = vars.iter().map(|var| var.var_key()).collect();
        self.entries.retain(|change| keys.contains(&change.key));
        self
    }

    /// Merges the changes into the current context (see the type's documentation).
    ///
    /// Either every change lands or, if a `merge` function panics, none does.
    ///
    /// ```
    /// use contextvars_runtime::{Changes, Context, ContextVar};
    /// fn sum(base: &u32, parent: &u32, child: &u32) -> u32 { parent + child - base }
    /// static COUNT: ContextVar<u32> = ContextVar::new("COUNT", || 0).merge(sum);
    ///
    /// let fork = Context::current();
    /// let mut child = fork.clone();
    /// child.run(|| COUNT.set(2)); // the child counted 2
    /// COUNT.set(3);               // meanwhile the parent counted 3
    /// Changes::between(&fork, &child).apply();
    /// assert_eq!(COUNT.get(), 5);
    /// ```
    ///
    /// # Panics
    ///
    /// Where [`ContextVar::set`](crate::ContextVar::set) panics: in a tokio task without a context
    /// of its own.
    pub fn apply(self) {
        self.apply_and_record();
    }

    /// Merges the changes into `context` instead of the current one.
    ///
    /// ```
    /// use contextvars_runtime::{Changes, Context, ContextVar};
    /// static N: ContextVar<u8> = ContextVar::new("N", || 0);
    /// let mut child = Context::new();
    /// child.run(|| N.set(4));
    /// let mut target = Context::new();
    /// Changes::between(&Context::new(), &child).apply_to(&mut target);
    /// assert_eq!(target.get(&N), 4);
    /// ```
    pub fn apply_to(self, context: &mut Context) {
        context.run(|| self.apply());
    }

    /// `apply`, then adds the recorded changes to the current context's own record, so that
    /// a plain `.await` of the task this runs in delivers them further up.
    pub(crate) fn apply_and_record(mut self) {
        self.entries.retain(|change| change.var.var_flows_back());
        if self.entries.is_empty() {
            return;
        }
        // Read the parent's values, then run merge functions with nothing borrowed: they are
        // user code, and may panic or read variables themselves. The entries themselves hold
        // the intermediate values, so a merge allocates nothing of its own.
        current::read(|map| {
            for change in &mut self.entries {
                change.parent = map.get(change.key).cloned();
            }
        });
        for change in &mut self.entries {
            let (base, parent, child) = (change.base.as_ref(), change.parent.as_ref(), change.child.as_ref());
            change.outcome = if value::same(parent, base) {
                Outcome::Write(change.child.take())
            } else if value::same(parent, child) {
                // Already there.
                Outcome::Keep
            } else {
                let any = child.or(base).or(parent);
                let merged = any.and_then(|any| any.merge(base, parent, child));
                Outcome::Write(merged.or_else(|| change.child.take()))
            };
        }
        // Nothing to write (every change stays behind, or is already there): leave the
        // current context alone, which also lets a task without a context of its own join.
        let Some(first) = self.entries.iter().find(|change| matches!(change.outcome, Outcome::Write(_)))
        else {
            return;
        };
        let recorded: Vec<(u32, &'static dyn AnyVar, Option<Value>)> = self
            .entries
            .iter()
            .filter_map(|change| match &change.outcome {
                Outcome::Write(result) if change.recorded => Some((change.key, change.var, result.clone())),
                _ => None,
            })
            .collect();
        current::write(first.var.var_name(), |map, _| {
            for change in &mut self.entries {
                if let Outcome::Write(result) = std::mem::replace(&mut change.outcome, Outcome::Keep) {
                    // What is replaced waits in the entry, to be dropped with nothing borrowed.
                    change.parent = map.update(change.key, !change.var.var_inherits(), |slot| {
                        std::mem::replace(slot, result)
                    });
                }
            }
        });
        // Record before dropping what was replaced: the changes have landed, and a `Drop`
        // that panics must not keep them from flowing further up.
        if !recorded.is_empty() {
            propagate::record(recorded);
        }
        drop(self);
    }
}

impl fmt::Debug for Changes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.entries.iter().map(|change| change.var.var_name())).finish()
    }
}
