//! What a join delivers from a finished child (task or thread) to the code that joins it.
//!
//! Every join goes through [`deliver`]: the child's context at its fork, at its start and
//! at its end are all it needs, whatever ran the child.

use std::panic::Location;

use crate::changes::Changes;
use crate::current::{self, JOB_FIX, TASK_FIX};
use crate::map::Listed;
use crate::value::{self, Map};
use crate::var::AnyVar;

/// Which of a child's changes a join delivers.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(not(feature = "tokio"), allow(dead_code))] // used by the joins of `task.rs`
pub(crate) enum Deliver {
    /// A plain `.await`: for each key marked in the child's final context (where a
    /// `#[propagate(back)]` function's change, or a join's delivery of one, landed), the
    /// child's final value, unless it is the value the child started with. Marked where it
    /// lands, so that it flows on up through every plain `.await`.
    Marked,
    /// `merge_back()`: every change from the child's start to its end; those to keys marked
    /// in the child are marked where they land.
    All,
}

/// Merges what `what` selects of the child's changes into the current context, three ways:
/// base = `fork` (the parent's context at the spawn), parent = the current context,
/// child = `end` (the child's final context). `start` is where the child began when it
/// differs from `fork` (variables that are not inherited, and marks, are left out of it).
///
/// A tokio task without a context of its own (a raw `tokio::spawn`) has nowhere to take the
/// changes: a plain join there delivers nothing (the marks stop there, as at a dropped
/// handle: the task reads defaults anyway), and a `merge_back` join, which asked for them,
/// panics with the fix when there is something to bring back.
#[cfg_attr(not(feature = "tokio"), allow(dead_code))] // used by the joins of `task.rs`
#[track_caller]
pub(crate) fn deliver(
    fork: Map,
    start: Option<Map>,
    end: Map,
    what: Deliver,
    called_at: Option<&'static Location<'static>>,
) {
    let without_context = !current::has_context();
    if without_context && what == Deliver::Marked {
        // What only the child held drops here: outside, where a `Drop` that sets a variable
        // has somewhere to write (this code has no context of its own to take it).
        current::drop_outside((fork, start, end));
        return;
    }
    // The common `merge_back`: the joining context may still be the fork. Code without a
    // context takes the general path, which panics with the join's own message.
    let end = match what {
        Deliver::All if !without_context && shortcut() => match take_whole(&fork, start.as_ref(), end) {
            Ok(listed) => {
                #[cfg(test)]
                tests::taken();
                // What only the fork still held (what the child unset, or replaced in its
                // own trie) drops here, after the write, as what the general path replaces.
                drop((fork, start));
                current::release_shadowed(&listed);
                return;
            }
            Err(end) => end,
        },
        Deliver::All | Deliver::Marked => end,
    };
    let from = start.as_ref().unwrap_or(&fork);
    let changes = match what {
        Deliver::Marked => Changes::marked(&fork, from, &end),
        Deliver::All => Changes::forked(&fork, from, &end, true),
    };
    if let Some(var) = changes.vars().find(|var| without_context && var.var_flows_back()) {
        merge_back_without_context(var.var_name(), current::in_pool_job(), called_at);
    }
    // Let go of the child's maps first: the current context may then own its nodes again and
    // take the changes in place. Values only the child held are dropped in a scratch context:
    // a `Drop` that sets a variable must not write into the joining context.
    crate::current::drop_outside((fork, start, end));
    changes.apply();
}

/// A `merge_back` where the current context is still the fork (nothing changed it since the
/// spawn) and the child started with all its values: the three-way merge would then take
/// every change as the child left it, so when all of them flow back and the child marked
/// nothing, the child's final map becomes the current context's wholesale, keeping the
/// current context's marks. O(changes) to check, and no `Changes` built; else gives `end`
/// back.
///
/// Nothing the child held is let go of: it all lands. What the old map and the fork held
/// alone (a value the child unset, or replaced in the trie) drops once the context is
/// released, like what the general path's writes replace; a value the child's write shadows
/// (in its list of recent writes) is let go of by [`current::release_shadowed`], with the keys this
/// gives back.
#[track_caller]
fn take_whole(fork: &Map, start: Option<&Map>, end: Map) -> Result<Listed, Map> {
    // The child's start is the fork without its marks and its values that are not inherited:
    // without such values, the marks are all it lacks, and they are put back below.
    if start.is_some() && fork.has_flagged(value::NOT_INHERITED) {
        return Err(end);
    }
    let mut first: Option<&'static dyn AnyVar> = None;
    // `diff_exact` also gives up when the two maps' marks differ: the start has none, so only
    // a child that marked nothing gets by, and its changes land unmarked, as `merge_back`
    // lands unmarked changes.
    let all_flow_back = Map::diff_exact(start.unwrap_or(fork), &end, &mut |_, before, after| {
        let Some(var) = after.or(before).map(|value| value.var()) else { return true };
        first.get_or_insert(var);
        var.var_flows_back()
    });
    // Without a change there is nothing to write: the general path drops the child's map.
    let (true, Some(first)) = (all_flow_back, first) else { return Err(end) };
    let listed = end.listed_changes(fork);
    let replaced = current::write(first.var_name(), |map, _| {
        // Pointers compared: any write since the spawn copied what the fork shares.
        if !map.same(fork) {
            return Err(end);
        }
        let replaced = std::mem::replace(map, end);
        map.copy_marks(&replaced);
        Ok(replaced)
    })?;
    drop(replaced);
    Ok(listed)
}

/// A `merge_back` join in code without a context to merge into; at the caller's line for a
/// sync join (a thread's, a `Fork`'s).
#[cold]
#[track_caller]
fn merge_back_without_context(var: &str, job: bool, called_at: Option<&'static Location<'static>>) -> ! {
    let (code, fix) = if job { ("a rayon job", JOB_FIX) } else { ("a tokio task", TASK_FIX) };
    let called_at = called_at.map(|at| format!(" (called at {at})")).unwrap_or_default();
    panic!(
        "contextvars: a `merge_back` join{called_at} in {code} that has no context of its own: \
         the child's change to `{var}` has nowhere to land. {fix}"
    )
}

/// Whether a join may take the shortcut of [`take_whole`]: always, but in the unit tests,
/// which compare it with the general path on the same joins.
#[cfg(not(test))]
#[inline(always)]
fn shortcut() -> bool {
    true
}

#[cfg(test)]
use tests::shortcut;

#[cfg(test)]
mod tests;
