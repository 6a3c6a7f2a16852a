//! `Changes`: the difference between two contexts, and the three-way merge that applies it.

use std::fmt;

use crate::context::Context;
use crate::current;
use crate::map::Mark;
use crate::value::{self, Map, Value};
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
/// # extern crate contextvars_runtime as contextvars;
/// use contextvars::{Changes, Context, ContextVar};
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
    /// Whether the receiving context marks the key where this lands: the change came from a
    /// `#[propagate(back)]` function, and a plain `.await` of the receiver delivers it on.
    mark: bool,
}

impl Changes {
    /// The changes from `before` to `after`.
    ///
    /// ```
    /// # extern crate contextvars_runtime as contextvars;
    /// use contextvars::{Changes, Context};
    /// assert!(Changes::between(&Context::new(), &Context::new()).is_empty());
    /// ```
    pub fn between(before: &Context, after: &Context) -> Changes {
        Changes::forked(&before.map, &before.map, &after.map, false)
    }

    /// The changes a child made between `start` and `end`, with `fork` (the parent's
    /// context when the child started, before the variables that are not inherited were
    /// left out) as the base of the merge. With `keep_marks`, a change to a key marked in
    /// `end` is marked where it lands.
    pub(crate) fn forked(fork: &Map, start: &Map, end: &Map, keep_marks: bool) -> Changes {
        let mut entries = Vec::new();
        Map::diff(start, end, &mut |key, before, after| {
            let Some(var) = after.or(before).map(|v| v.var()) else { return };
            let base = if std::ptr::eq(fork, start) { before.cloned() } else { fork.get(key).cloned() };
            let mark = keep_marks && end.is_marked(key);
            entries.push(Change { key, var, base, child: after.cloned(), mark });
        });
        Changes { entries }
    }

    /// What a plain `.await` of a child delivers: for each key marked in the child's final
    /// context `end`, its final value, unless that is the value the child started with.
    /// Against `fork`, and marked where it lands.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))] // used by the joins
    pub(crate) fn marked(fork: &Map, start: &Map, end: &Map) -> Changes {
        let mut entries = Vec::new();
        end.for_each_marked(&mut |key, after| {
            let before = start.get(key);
            if value::same(before, after) {
                return;
            }
            let Some(var) = after.or(before).map(|v| v.var()) else { return };
            entries.push(Change {
                key,
                var,
                base: fork.get(key).cloned(),
                child: after.cloned(),
                mark: true,
            });
        });
        Changes { entries }
    }

    /// What a `#[propagate(back)]` function lands: its changes from `entry` to `exit`,
    /// restricted to `only` when given, marked where they land.
    pub(crate) fn landing(entry: &Map, exit: &Map, only: Option<&[&'static dyn AnyVar]>) -> Changes {
        let mut entries = Vec::new();
        Map::diff(entry, exit, &mut |key, before, after| {
            let Some(var) = after.or(before).map(|v| v.var()) else { return };
            if only.is_some_and(|only| !only.iter().any(|listed| listed.var_key() == key)) {
                return;
            }
            entries.push(Change { key, var, base: before.cloned(), child: after.cloned(), mark: true });
        });
        Changes { entries }
    }

    /// How many variables changed.
    ///
    /// ```
    /// # extern crate contextvars_runtime as contextvars;
    /// use contextvars::{Changes, Context};
    /// assert_eq!(Changes::between(&Context::new(), &Context::new()).len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no variable changed.
    ///
    /// ```
    /// # extern crate contextvars_runtime as contextvars;
    /// use contextvars::Changes;
    /// assert!(Changes::default().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The variables that changed, in key order.
    ///
    /// ```
    /// # extern crate contextvars_runtime as contextvars;
    /// use contextvars::{Changes, Context, ContextVar};
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
    /// # extern crate contextvars_runtime as contextvars;
    /// use contextvars::{Changes, Context, ContextVar};
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
    /// # extern crate contextvars_runtime as contextvars;
    /// use contextvars::{Changes, Context, ContextVar};
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
    /// # extern crate contextvars_runtime as contextvars;
    /// use contextvars::{Changes, Context, ContextVar};
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
    /// Where [`ContextVar::set`](crate::ContextVar::set) panics: in code without a context of
    /// its own (a tokio task started with `tokio::spawn`), at the caller's line.
    #[track_caller]
    pub fn apply(mut self) {
        self.entries.retain(|change| change.var.var_flows_back());
        if self.entries.is_empty() {
            return;
        }
        // The apply's own scratch, one entry per change: the parent's value (read first, so
        // that merge functions run with nothing borrowed: they are user code, and may panic
        // or read variables themselves), what to do, and what the write replaced (dropped
        // once the context is released: its `Drop` may read variables too).
        let mut landings: Vec<Landing> = current::read(|map| {
            self.entries
                .iter()
                .map(|change| Landing {
                    parent: map.get(change.key).cloned(),
                    mark: if change.mark && !map.is_marked(change.key) { Mark::Set } else { Mark::Keep },
                    write: None,
                    replaced: None,
                })
                .collect()
        });
        for (change, landing) in self.entries.iter_mut().zip(&mut landings) {
            let (base, parent, child) =
                (change.base.as_ref(), landing.parent.as_ref(), change.child.as_ref());
            landing.write = if value::same(parent, base) {
                Some(change.child.take())
            } else if value::same(parent, child) {
                // Already there.
                None
            } else {
                let any = child.or(base).or(parent);
                let merged = any.and_then(|any| any.merge(base, parent, child));
                Some(merged.or_else(|| change.child.take()))
            };
        }
        // Nothing to write (every change is already there, and marked where it should be):
        // leave the current context alone, which also lets a task without a context of its
        // own join.
        let Some(first) = self
            .entries
            .iter()
            .zip(&landings)
            .find(|(_, landing)| landing.write.is_some() || landing.mark == Mark::Set)
            .map(|(change, _)| change.var)
        else {
            return;
        };
        // What the map lets go of besides the replaced values waits here, to be dropped with
        // nothing borrowed.
        let mut displaced = Vec::new();
        current::write(first.var_name(), |map, _| {
            for (change, landing) in self.entries.iter().zip(&mut landings) {
                let write = landing.write.take();
                let Some(write) = write else {
                    // The value is already there: only the mark, which copies no value's path.
                    if landing.mark == Mark::Set {
                        map.mark(change.key);
                    }
                    continue;
                };
                landing.replaced = map.update_marked(
                    change.key,
                    value::flags(change.var.var_inherits()),
                    landing.mark,
                    &mut displaced,
                    |slot| std::mem::replace(slot, write),
                );
            }
        });
        drop(landings);
        drop(displaced);
        // The rest (the base values, the children's left over) drops here, after the write,
        // like what the write replaced: `Changes`' own `Drop` is for those never applied.
        drop(std::mem::take(&mut self.entries));
    }

    /// Merges the changes into `context` instead of the current one.
    ///
    /// ```
    /// # extern crate contextvars_runtime as contextvars;
    /// use contextvars::{Changes, Context, ContextVar};
    /// static N: ContextVar<u8> = ContextVar::new("N", || 0);
    /// let mut child = Context::new();
    /// child.run(|| N.set(4));
    /// let mut target = Context::new();
    /// Changes::between(&Context::new(), &child).apply_to(&mut target);
    /// assert_eq!(target.get(&N), 4);
    /// ```
    #[track_caller]
    pub fn apply_to(self, context: &mut Context) {
        context.run(|| self.apply());
    }
}

/// What applying one change does to the current context: the scratch of [`Changes::apply`].
struct Landing {
    /// The parent's value before the apply.
    parent: Option<Value>,
    /// What to write (`Some(None)`: unset the variable); `None`: leave the value.
    write: Option<Option<Value>>,
    /// Whether the key gets marked.
    mark: Mark,
    /// What the write replaced.
    replaced: Option<Value>,
}

/// Changes dropped without being applied may hold the last handle on a value (both contexts
/// gone): it drops in a scratch context, as a context's values do, so that a `Drop` that sets
/// a variable writes into neither the current context nor nowhere.
impl Drop for Changes {
    fn drop(&mut self) {
        if !self.entries.is_empty() {
            current::drop_outside(std::mem::take(&mut self.entries));
        }
    }
}

impl fmt::Debug for Changes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.entries.iter().map(|change| change.var.var_name())).finish()
    }
}
