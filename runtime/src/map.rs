//! The persistent map behind every context: small integer keys to type-erased values.
//!
//! Two parts, each behind one `Arc`, so that cloning a map (a snapshot) is O(1):
//!
//! * a radix trie ([`trie`]) holding most entries. A write to it mutates the nodes on the
//!   path to its key in place when nobody else holds them (the common case: a context that
//!   nobody has taken a snapshot of), and copies them when they are shared;
//! * a short list of recent writes ([`RECENT`] at most) made while the trie's path was
//!   shared. They shadow the trie's entries for their keys. Such a write copies this list
//!   (a few entries) instead of a path of 16-slot nodes, whose copy and later drop touch 16
//!   reference counts per level: that was most of the cost of a `set` after a snapshot.
//!   When the list is full, its entries move into the trie in one pass.
//!
//! A value shadowed by a recent write stays alive in the trie until the key is written again
//! once the trie's path is this map's own again, the list moves into the trie, or the map is
//! dropped: at most [`RECENT`] such values per map.
//!
//! Every slot carries a few flags chosen by the map's user (see [`Flags`]); every node keeps,
//! per flag and slot, whether a flagged entry lives below it, so that a walk such as the copy
//! into a child task ([`Map::without`]) goes straight to the flagged entries.
//!
//! The marked keys ([`Mark`]) are a set of their own ([`marks`]), kept with the list rather
//! than in the trie's nodes, so that the copy into a child, which has no marks, leaves them
//! out in O(1) (the map stays two pointers: a snapshot still clones two handles).
//!
//! The map is a leaf module: it stores any [`Shared`] value and knows nothing of variables
//! (`value.rs` instantiates it for the context's values).
//!
//! The nodes, the list and the marks are `triomphe::Arc`s: the map never needs a weak
//! reference, and without a weak count the check that a node is this map's own (`get_mut`,
//! `make_mut`, once per level at every write) is a plain load, where `std::sync::Arc` makes
//! a locked compare-exchange on the weak count (~5.5 ns each; see BENCHMARKS.md).
//!
//! A thread keeps one spare list ([`SpareList`]): the list of the last holder of a dropped
//! context, emptied of its values and marks there, serves the next copy of a shared list on
//! that thread, which then allocates nothing (a write after a snapshot: a `malloc` and a
//! `free` fewer). It holds no value, so nothing outlives the contexts that held it.

use std::cell::Cell;
use std::thread::LocalKey;

use triomphe::{Arc, UniqueArc};

/// What the map stores: a cheap handle (in practice an `Arc`) whose clones are "the same"
/// value. `diff` compares by identity, not equality: a value set again is a change.
pub(crate) trait Shared: Clone {
    /// Whether `self` and `other` are one stored value.
    fn same(&self, other: &Self) -> bool;
}

impl<T: ?Sized> Shared for Arc<T> {
    #[inline]
    fn same(&self, other: &Self) -> bool {
        Arc::ptr_eq(self, other)
    }
}

// The context's values are `std` handles (see `value::Value` for why).
impl<T: ?Sized> Shared for std::sync::Arc<T> {
    #[inline]
    fn same(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(self, other)
    }
}

/// Whether two optional values are one stored value, or both absent.
pub(crate) fn same<V: Shared>(a: Option<&V>, b: Option<&V>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => a.same(b),
        _ => false,
    }
}

/// What `Map::update_marked` does to the mark of the key. A mark belongs to the key, not
/// to its value: it stays when the value is replaced or unset, and only the copy into a
/// child (`Map::without`) leaves it out. A key is marked where a `#[propagate(back)]` function's
/// change (or a join's delivery of one) landed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Mark {
    /// Leaves it as it is.
    Keep,
    /// Marks the key.
    Set,
}

/// How many kinds of flag a slot can carry; each costs one bitmap per node.
const FLAG_KINDS: usize = 1;

/// The flags of one slot: bit `k` is flag kind `k` (below [`FLAG_KINDS`]). The kinds are
/// named by the map's user (for instance `value::NOT_INHERITED`).
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
pub(crate) struct Flags(u8);

impl Flags {
    /// No flag.
    pub(crate) const NONE: Flags = Flags(0);

    /// Flag kind `kind` alone.
    pub(crate) const fn kind(kind: usize) -> Flags {
        assert!(kind < FLAG_KINDS, "a flag kind the map has no bitmap for");
        Flags(1 << kind)
    }

    /// These flags, with `other` added when `on`.
    #[inline]
    pub(crate) const fn with(self, other: Flags, on: bool) -> Flags {
        if on { Flags(self.0 | other.0) } else { self }
    }

    /// Whether the two share a flag.
    #[inline]
    pub(crate) const fn intersects(self, other: Flags) -> bool {
        self.0 & other.0 != 0
    }

    #[inline]
    fn has(self, kind: usize) -> bool {
        self.0 & (1 << kind) != 0
    }
}

/// Per flag kind, per slot: bit `i` of `bits[k]` says that slot `i` (a leaf's value, or some
/// value below a branch's child) carries flag kind `k`.
#[derive(Clone, Copy, Default)]
struct Flagged {
    bits: [u32; FLAG_KINDS],
}

impl Flagged {
    /// The slots that carry any of `flags`.
    #[inline]
    fn any_of(&self, flags: Flags) -> u32 {
        (0..FLAG_KINDS).filter(|&k| flags.has(k)).fold(0, |acc, k| acc | self.bits[k])
    }

    /// Slot `bit` carries exactly `flags`.
    #[inline]
    fn set(&mut self, bit: u32, flags: Flags) {
        for k in 0..FLAG_KINDS {
            set_bit(&mut self.bits[k], bit, flags.has(k));
        }
    }

    /// The flags of anything below: a kind is on if any slot carries it.
    #[inline]
    fn summary(&self) -> Flags {
        Flags((0..FLAG_KINDS).filter(|&k| self.bits[k] != 0).fold(0, |acc, k| acc | 1 << k))
    }

    /// Leaves out `slots` from every kind.
    #[inline]
    fn clear(&mut self, slots: u32) {
        for bits in &mut self.bits {
            *bits &= !slots;
        }
    }
}

#[inline]
fn set_bit(bits: &mut u32, bit: u32, on: bool) {
    if on { *bits |= bit } else { *bits &= !bit }
}

mod marks;
mod trie;

use marks::Marks;
use trie::Trie;

/// How many writes made while the trie was shared wait in the list of recent writes before
/// they move into the trie.
pub(crate) const RECENT: usize = 8;

/// What a map's release needs from the values it stores: where a thread keeps one spare list
/// of recent writes for maps of `Self` (a thread-local cannot be generic, so the value type
/// names it), and whether a value's drop runs no code of its own.
pub(crate) trait Spare: Sized + 'static {
    /// The thread's spare list.
    fn spare() -> &'static LocalKey<SpareList<Self>>;
    /// Whether dropping this value runs no code but the freeing of its memory (its type has
    /// no drop glue): it then cannot read or set a variable, wherever it drops.
    fn drops_quietly(&self) -> bool;
}

/// One list of recent writes that a map let go of on this thread, kept for the next copy of
/// a shared list: that copy then needs no allocation, and the list's release no free. It
/// holds no value (they were dropped when the list was let go of) and no mark.
pub(crate) struct SpareList<V>(Cell<Option<UniqueArc<Recent<V>>>>);

impl<V> SpareList<V> {
    /// No spare list yet.
    pub(crate) const fn new() -> SpareList<V> {
        SpareList(Cell::new(None))
    }
}

/// A persistent map from keys to values. `Clone` is O(1).
pub(crate) struct Map<V> {
    trie: Trie<V>,
    /// Writes made while the trie was shared, which shadow the trie, and the marked keys.
    /// `None` when there are neither.
    recent: Option<Arc<Recent<V>>>,
}

/// Up to [`RECENT`] entries, each a key, its value and the value's flags, in no order (a
/// search is a scan of at most eight keys).
#[derive(Clone)]
struct Recent<V> {
    len: usize,
    keys: [u32; RECENT],
    values: [Option<V>; RECENT],
    flags: [Flags; RECENT],
    /// The marked keys, whether or not they hold a value.
    marks: Marks,
}

impl<V> Recent<V> {
    fn empty() -> Recent<V> {
        Recent {
            len: 0,
            keys: [0; RECENT],
            values: [const { None }; RECENT],
            flags: [Flags::NONE; RECENT],
            marks: Marks::EMPTY,
        }
    }

    /// An empty list: the thread's spare one if it has one, else a new one.
    #[inline]
    fn fresh() -> UniqueArc<Recent<V>>
    where
        V: Spare,
    {
        V::spare()
            .try_with(|spare| spare.0.take())
            .ok()
            .flatten()
            .unwrap_or_else(|| UniqueArc::new(Recent::empty()))
    }

    /// The list behind `handle`, made this map's own: a shared list is copied first.
    ///
    /// By hand rather than `Arc::make_mut`, which clones the whole list (eight slots) on the
    /// stack and then moves it to the heap: this takes an empty list first (the thread's
    /// spare, else a new one) and copies only the live entries into it.
    #[inline]
    fn own(handle: &mut Arc<Recent<V>>) -> &mut Recent<V>
    where
        V: Clone + Spare,
    {
        if !handle.is_unique() {
            let mut copy = Recent::fresh();
            copy.len = handle.len;
            copy.keys = handle.keys;
            copy.flags = handle.flags;
            for (slot, value) in copy.values.iter_mut().zip(&handle.values[..handle.len]) {
                *slot = value.clone();
            }
            copy.marks = handle.marks.clone();
            *handle = copy.shareable();
        }
        // Unique now: no copy.
        Arc::make_mut(handle)
    }

    /// Whether it holds neither a write nor a mark, and can go.
    #[inline]
    fn is_void(&self) -> bool {
        self.len == 0 && self.marks.is_empty()
    }

    #[inline]
    fn find(&self, key: u32) -> Option<usize> {
        self.keys[..self.len].iter().position(|&k| k == key)
    }

    /// Entry `i` taken out; the last entry takes its place.
    fn remove(&mut self, i: usize) -> (u32, Option<V>, Flags) {
        let last = self.len - 1;
        self.keys.swap(i, last);
        self.values.swap(i, last);
        self.flags.swap(i, last);
        self.len = last;
        (self.keys[last], self.values[last].take(), self.flags[last])
    }
}

/// Keys of a map's recent writes, at most [`RECENT`] (see [`Map::settle`]).
pub(crate) struct Listed {
    keys: [u32; RECENT],
    len: usize,
}

impl Listed {
    /// No key.
    pub(crate) const NONE: Listed = Listed { keys: [0; RECENT], len: 0 };

    /// Whether it names no key.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A map on its way out, whose list of recent writes goes to the thread's spare (see
/// [`SpareList`]) if no other map holds it, once its values and marks are gone: the parts
/// of a context's map that no other map held ([`Map::let_go`]), dropped where its values
/// may drop (`Context`'s `Drop`).
/// A plain `Drop` of `Map` would cost every snapshot's drop its test, and its drop glue
/// would no longer be inlined.
pub(crate) struct Released<V: Spare> {
    trie: Trie<V>,
    /// Proven this map's alone when it was let go of: its release needs no other test.
    list: Option<UniqueArc<Recent<V>>>,
}

/// `arc` back as this holder's alone if no other holder is left, else `None`, with this
/// holder's reference gone. A count of one is ours alone (no other holder exists to race
/// with), and a plain load tells it; otherwise the test and the release are one atomic step
/// (`Arc::into_unique`), so that of two holders let go of at once on two threads exactly one
/// gets it back. (Testing the count and then dropping let both skip the release.)
#[inline]
fn last_hold<T>(arc: Arc<T>) -> Option<UniqueArc<T>> {
    match Arc::try_unique(arc) {
        Ok(alone) => Some(alone),
        Err(shared) => Arc::into_unique(shared),
    }
}

impl<V: Spare> Map<V> {
    /// Lets go of this map. What no other map still held comes back, to be dropped where its
    /// values may drop, keeping its list of recent writes (see [`Released`]); `None` when
    /// this map held nothing alone, or only marks (they hold no value).
    ///
    /// Whether this map is the last holder of a part is decided as it lets go of it
    /// ([`last_hold`]): a test of the counts followed by a drop let two maps sharing their
    /// parts, dropped at once on two threads, each see the other, skip the release, and free
    /// the values in a plain drop, outside any scratch context.
    #[inline]
    pub(crate) fn let_go(mut self) -> Option<Released<V>> {
        let trie = std::mem::replace(&mut self.trie, Trie::EMPTY).let_go();
        let list = self.recent.take().and_then(last_hold).filter(|list| list.len > 0);
        if trie.is_none() && list.is_none() {
            return None;
        }
        Some(Released { trie: trie.unwrap_or(Trie::EMPTY), list })
    }
}

impl<V: Spare> Released<V> {
    /// Whether dropping these parts runs no code of the values' own: no trie (whose values
    /// would take a walk to tell), and only quiet values in the list. They may then drop
    /// without the scratch context that a value's `Drop` setting a variable needs.
    #[inline]
    pub(crate) fn drops_quietly(&self) -> bool {
        self.trie.is_empty()
            && self
                .list
                .as_ref()
                .is_none_or(|list| list.values[..list.len].iter().flatten().all(V::drops_quietly))
    }
}

impl<V: Spare> Drop for Released<V> {
    fn drop(&mut self) {
        let Some(mut list) = self.list.take() else { return };
        // The values go here, where the list would have dropped them (the slots past `len`
        // are empty).
        let len = std::mem::take(&mut list.len);
        debug_assert!(list.values[len..].iter().all(Option::is_none));
        for value in &mut list.values[..len] {
            drop(value.take());
        }
        list.marks = Marks::EMPTY;
        // Keeps the first spare; on a thread being torn down, the list is freed.
        let _ = V::spare().try_with(move |spare| match spare.0.take() {
            None => spare.0.set(Some(list)),
            kept => spare.0.set(kept),
        });
    }
}

// By hand: a derive would ask for `V: Clone`/`V: Default`, which the map does not need.
impl<V> Clone for Map<V> {
    fn clone(&self) -> Self {
        Map { trie: self.trie.clone(), recent: self.recent.clone() }
    }
}

impl<V> Default for Map<V> {
    fn default() -> Self {
        Map::EMPTY
    }
}

impl<V> Map<V> {
    /// The empty map; `const` so that a thread's context needs no lazy initialisation.
    pub(crate) const EMPTY: Map<V> = Map { trie: Trie::EMPTY, recent: None };

    /// Swaps two maps field by field (see `current::Enter::swap` for why not `mem::swap`).
    #[inline]
    pub(crate) fn swap(&mut self, other: &mut Map<V>) {
        self.trie.swap(&mut other.trie);
        std::mem::swap(&mut self.recent, &mut other.recent);
    }

    /// Whether the map holds no value (it may still hold marks).
    pub(crate) fn is_empty(&self) -> bool {
        // A recent entry always holds a value, and the trie keeps no empty node.
        self.trie.is_empty() && self.recent.as_ref().is_none_or(|recent| recent.len == 0)
    }

    /// The value stored under `key`.
    #[inline]
    pub(crate) fn get(&self, key: u32) -> Option<&V> {
        if let Some(recent) = &self.recent
            && let Some(i) = recent.find(key)
        {
            return recent.values[i].as_ref();
        }
        self.trie.get(key)
    }

    /// The value under `key` if nothing that holds it is shared with another map: then the
    /// value may be replaced (or, if it is not shared either, overwritten) in place. The
    /// fast path of `set`.
    #[inline(always)]
    pub(crate) fn unique_mut(&mut self, key: u32) -> Option<&mut V> {
        if let Some(recent) = &mut self.recent
            && let Some(i) = recent.find(key)
        {
            if self.trie.releases_shadowed(key) {
                // `update` moves the entry into the trie and lets the shadowed value go.
                return None;
            }
            // Shared (after a snapshot): say so without `get_mut`'s locked instruction.
            if Arc::strong_count(recent) != 1 {
                return None;
            }
            return Arc::get_mut(recent)?.values[i].as_mut();
        }
        self.trie.unique_mut(key)
    }

    /// [`update`](Self::update), which also sets the key's mark (with `Mark::Set`) or leaves
    /// it.
    #[inline]
    pub(crate) fn update_marked<R>(
        &mut self,
        key: u32,
        flags: Flags,
        mark: Mark,
        displaced: &mut Vec<V>,
        f: impl FnOnce(&mut Option<V>) -> R,
    ) -> R
    where
        V: Clone + Spare,
    {
        if mark == Mark::Set {
            self.mark(key);
        }
        self.update(key, flags, displaced, f)
    }

    /// Marks `key` (a mark stays until a child's copy leaves it out); O(1) when it is
    /// marked already.
    #[inline]
    pub(crate) fn mark(&mut self, key: u32)
    where
        V: Clone + Spare,
    {
        if self.is_marked(key) {
            return;
        }
        Recent::own(self.recent.get_or_insert_with(|| Recent::fresh().shareable())).marks.insert(key);
    }

    /// Calls `f` with the entry of `key`; a value left there carries `flags`. Nothing shared
    /// with another map changes: shared parts are copied first.
    ///
    /// `displaced` receives the values the map lets go of besides the one `f` replaced (a
    /// shadowed value when recent writes move into the trie): the caller drops them once it
    /// borrows nothing, since their `Drop` may read the map's owner.
    #[inline]
    pub(crate) fn update<R>(
        &mut self,
        key: u32,
        flags: Flags,
        displaced: &mut Vec<V>,
        f: impl FnOnce(&mut Option<V>) -> R,
    ) -> R
    where
        V: Clone + Spare,
    {
        if let Some(recent) = &mut self.recent
            && let Some(i) = recent.find(key)
        {
            let recent = Recent::own(recent);
            if self.trie.releases_shadowed(key) {
                // The trie's path is this map's own again: the entry moves there, and the
                // value it shadowed, which no other map holds through this path, goes.
                let (_, value, _) = recent.remove(i);
                if recent.is_void() {
                    self.recent = None;
                }
                return self.trie.update(key, flags, |slot| {
                    displaced.extend(std::mem::replace(slot, value));
                    f(slot)
                });
            }
            let result = f(&mut recent.values[i]);
            recent.flags[i] = flags;
            if recent.values[i].is_none() {
                // Unset: the entry goes, and so does what it shadowed.
                recent.remove(i);
                if recent.is_void() {
                    self.recent = None;
                }
                if self.trie.get(key).is_some() {
                    self.trie.update(key, flags, |slot| displaced.extend(slot.take()));
                }
            }
            return result;
        }
        if self.trie.path_is_unique(key) {
            return self.trie.update(key, flags, f);
        }
        // The trie's path is shared: the write goes to the recent ones. `f` sees the value
        // the trie holds (a clone of its handle: the same value).
        let mut entry = self.trie.get(key).cloned();
        let was_set = entry.is_some();
        let result = f(&mut entry);
        match entry {
            Some(value) => self.push_recent(key, value, flags, displaced),
            // Unset where the trie has a value: no entry may stand for "unset" (the map would
            // look non-empty), so the trie is written.
            None if was_set => self.trie.update(key, flags, |slot| displaced.extend(slot.take())),
            None => {}
        }
        result
    }

    /// Adds a recent write; when the list is full, moves it into the trie first.
    fn push_recent(&mut self, key: u32, value: V, flags: Flags, displaced: &mut Vec<V>)
    where
        V: Clone + Spare,
    {
        let full = self.recent.as_ref().is_some_and(|recent| recent.len == RECENT);
        if full {
            self.compact(displaced);
            self.trie.update(key, flags, |slot| displaced.extend(slot.replace(value)));
            return;
        }
        let recent = Recent::own(self.recent.get_or_insert_with(|| Recent::fresh().shareable()));
        let i = recent.len;
        recent.keys[i] = key;
        recent.values[i] = Some(value);
        recent.flags[i] = flags;
        recent.len += 1;
    }

    /// Moves the recent writes into the trie (the marks stay).
    fn compact(&mut self, displaced: &mut Vec<V>)
    where
        V: Clone + Spare,
    {
        let Some(recent) = self.recent.as_mut() else { return };
        let recent = Recent::own(recent);
        while recent.len > 0 {
            let (key, value, flags) = recent.remove(recent.len - 1);
            self.trie.update(key, flags, |slot| displaced.extend(std::mem::replace(slot, value)));
        }
        if recent.is_void() {
            self.recent = None;
        }
    }

    /// This map without the values that carry any of `flags` and without marks, or `None`
    /// when there is neither (the map itself is then the answer). Copies only what leads to
    /// the flagged values; leaving the marks out is O(1).
    pub(crate) fn without(&self, flags: Flags) -> Option<Map<V>>
    where
        V: Clone + Spare,
    {
        let recent_flagged = self
            .recent
            .as_ref()
            .is_some_and(|recent| recent.flags[..recent.len].iter().any(|f| f.intersects(flags)));
        let marked = self.recent.as_ref().is_some_and(|recent| !recent.marks.is_empty());
        let trie = self.trie.without(flags);
        if trie.is_none() && !recent_flagged && !marked {
            return None;
        }
        let recent = match &self.recent {
            // Marks alone: nothing to copy.
            Some(recent) if recent.len == 0 => None,
            recent => recent.clone(),
        };
        let mut map = Map { trie: trie.unwrap_or_else(|| self.trie.clone()), recent };
        if (recent_flagged || marked)
            && let Some(recent) = &mut map.recent
        {
            let recent = Recent::own(recent);
            recent.marks = Marks::EMPTY;
            let mut i = 0;
            while i < recent.len {
                if recent.flags[i].intersects(flags) {
                    let (key, _, _) = recent.remove(i);
                    // What it shadowed must not show through. Everything let go of here is
                    // still held by `self`: no value's last handle is dropped.
                    if map.trie.get(key).is_some() {
                        map.trie.update(key, Flags::NONE, |slot| drop(slot.take()));
                    }
                } else {
                    i += 1;
                }
            }
            if recent.is_void() {
                map.recent = None;
            }
        }
        Some(map)
    }

    /// Calls `f(key, before, after)` for every key whose value differs between `before` and
    /// `after` (by identity: a value set again is a change), in key order. Subtrees the two
    /// maps share are skipped, so the cost follows the number of changes (and of recent
    /// writes), not the size of the maps.
    pub(crate) fn diff(before: &Map<V>, after: &Map<V>, f: &mut impl FnMut(u32, Option<&V>, Option<&V>))
    where
        V: Shared,
    {
        let (recent_before, recent_after) = (before.list(), after.list());
        if recent_before.is_none() && recent_after.is_none() {
            return Trie::diff(&before.trie, &after.trie, f);
        }
        // The keys of either list, in order; the trie's differences for them are replaced
        // by the differences of what the two maps show for them.
        let mut keys = [0u32; 2 * RECENT];
        let mut n = 0;
        for recent in [recent_before, recent_after].into_iter().flatten() {
            for &key in &recent.keys[..recent.len] {
                if !keys[..n].contains(&key) {
                    keys[n] = key;
                    n += 1;
                }
            }
        }
        keys[..n].sort_unstable();
        let keys = &keys[..n];
        let mut next = 0;
        Trie::diff(&before.trie, &after.trie, &mut |key, a, b| {
            emit_listed(before, after, keys, &mut next, key, f);
            if keys.binary_search(&key).is_err() {
                f(key, a, b);
            }
        });
        emit_listed(before, after, keys, &mut next, u32::MAX, f);
    }

    /// Whether both maps are the same map (not merely equal): O(1).
    pub(crate) fn same(&self, other: &Map<V>) -> bool {
        self.trie.same(&other.trie) && same(self.recent.as_ref(), other.recent.as_ref())
    }

    /// Whether some value carries one of `flags` (a value shadowed by a recent write
    /// counts): O(1) for the trie, a scan of the recent writes.
    pub(crate) fn has_flagged(&self, flags: Flags) -> bool {
        self.trie.has_flagged(flags)
            || self
                .recent
                .as_ref()
                .is_some_and(|recent| recent.flags[..recent.len].iter().any(|f| f.intersects(flags)))
    }

    /// The keys of the recent writes whose values `base` does not show and which shadow a
    /// value whose drop runs code of its own: what a map written from `base` changed in its
    /// list, and [`settle`](Self::settle) would let go of observably. (A quiet value, one
    /// without drop glue, waits like any shadowed value: memory only, within the bound.)
    pub(crate) fn listed_changes(&self, base: &Map<V>) -> Listed
    where
        V: Shared + Spare,
    {
        let mut listed = Listed { keys: [0; RECENT], len: 0 };
        if let Some(list) = self.list() {
            for i in 0..list.len {
                let (key, value) = (list.keys[i], list.values[i].as_ref());
                // A shadowed value is of the same variable, so of the same type, as the
                // entry's: asked of the entry, without a walk of the trie.
                if value.is_none_or(V::drops_quietly) || self.trie.get(key).is_none() {
                    continue;
                }
                if !same(base.get(key), value) {
                    listed.keys[listed.len] = list.keys[i];
                    listed.len += 1;
                }
            }
        }
        listed
    }

    /// The keys among `changed` (at most [`RECENT`] are looked at) whose recent write shadows
    /// a value in the trie: [`listed_changes`](Self::listed_changes) for a caller that knows
    /// what changed, and passes only the keys whose values have drop glue, in O(`changed`).
    pub(crate) fn shadowing(&self, changed: &[u32]) -> Listed {
        let mut listed = Listed::NONE;
        let Some(list) = self.list() else { return listed };
        for &key in changed.iter().take(RECENT) {
            if list.find(key).is_some() && self.trie.get(key).is_some() {
                listed.keys[listed.len] = key;
                listed.len += 1;
            }
        }
        listed
    }

    /// Moves the recent writes of `listed` into the trie where the trie's path to their key
    /// is this map's own and holds the value they shadow, as a write of that key would: that
    /// value goes to `displaced`, in the key's place in `listed`. What the map shows is
    /// unchanged.
    pub(crate) fn settle(&mut self, listed: &Listed, displaced: &mut [Option<V>; RECENT])
    where
        V: Clone + Spare,
    {
        for (&key, out) in listed.keys[..listed.len].iter().zip(displaced) {
            let Some(recent) = &mut self.recent else { return };
            let Some(i) = recent.find(key) else { continue };
            if !self.trie.releases_shadowed(key) {
                continue;
            }
            let recent = Recent::own(recent);
            let (_, value, flags) = recent.remove(i);
            if recent.is_void() {
                self.recent = None;
            }
            *out = self.trie.update(key, flags, |slot| std::mem::replace(slot, value));
        }
    }

    /// Gives this map the marks of `other` in place of its own: O(1) (the set is shared).
    pub(crate) fn copy_marks(&mut self, other: &Map<V>)
    where
        V: Clone + Spare,
    {
        let marks = other.marks_of();
        if self.marks_of().same(marks) {
            return;
        }
        let recent = Recent::own(self.recent.get_or_insert_with(|| Recent::fresh().shareable()));
        recent.marks = marks.clone();
        if recent.is_void() {
            self.recent = None;
        }
    }

    /// Whether `key` is marked.
    pub(crate) fn is_marked(&self, key: u32) -> bool {
        self.recent.as_ref().is_some_and(|recent| recent.marks.contains(key))
    }

    /// The marked keys.
    #[inline]
    fn marks_of(&self) -> &Marks {
        static NONE: Marks = Marks::EMPTY;
        self.recent.as_ref().map_or(&NONE, |recent| &recent.marks)
    }

    /// The list of recent writes, if it holds any.
    #[inline]
    fn list(&self) -> Option<&Recent<V>> {
        self.recent.as_deref().filter(|recent| recent.len > 0)
    }

    /// Calls `f(key, value)` for every marked key, in key order. Unmarked subtrees are not
    /// visited: the cost follows the number of marked keys.
    pub(crate) fn for_each_marked(&self, f: &mut impl FnMut(u32, Option<&V>)) {
        self.marks_of().for_each(&mut |key| f(key, self.get(key)));
    }

    /// Like [`diff`](Self::diff), but also sees marks, and not always in key order: calls
    /// `f(key, before, after)` for every key whose value differs, and gives up (returns `false`) when the two maps' marks are
    /// not the same set (not compared key by key: O(1)), when `f` returns `false`, or when
    /// the tries are of different heights. Shared subtrees are skipped.
    pub(crate) fn diff_exact(
        before: &Map<V>,
        after: &Map<V>,
        f: &mut impl FnMut(u32, Option<&V>, Option<&V>) -> bool,
    ) -> bool
    where
        V: Shared,
    {
        if !before.marks_of().same(after.marks_of()) {
            return false;
        }
        let (recent_before, recent_after) = (before.list(), after.list());
        if recent_before.is_none() && recent_after.is_none() {
            return Trie::diff_exact(&before.trie, &after.trie, f);
        }
        if before.trie.same(&after.trie) {
            // Only the lists can differ (the common case of a copy written after a
            // snapshot): their keys alone, compared as each map shows them.
            if let Some(after_list) = recent_after {
                for i in 0..after_list.len {
                    let (key, now) = (after_list.keys[i], after_list.values[i].as_ref());
                    let was = before.get(key);
                    if !same(was, now) && !f(key, was, now) {
                        return false;
                    }
                }
            }
            if let Some(before_list) = recent_before {
                for i in 0..before_list.len {
                    let key = before_list.keys[i];
                    if recent_after.is_some_and(|list| list.find(key).is_some()) {
                        continue; // compared above
                    }
                    let (was, now) = (before_list.values[i].as_ref(), after.trie.get(key));
                    if !same(was, now) && !f(key, was, now) {
                        return false;
                    }
                }
            }
            return true;
        }
        let mut going = true;
        Map::diff(before, after, &mut |key, a, b| {
            if going {
                going = f(key, a, b);
            }
        });
        going
    }

    /// Every key and value, in key order.
    pub(crate) fn for_each(&self, f: &mut impl FnMut(u32, &V))
    where
        V: Shared,
    {
        Map::diff(&Map::EMPTY, self, &mut |key, _, value| {
            if let Some(value) = value {
                f(key, value);
            }
        });
    }
}

/// Reports the differences for `keys[*next..]` up to `upto`, from what each map shows.
fn emit_listed<V: Shared>(
    before: &Map<V>,
    after: &Map<V>,
    keys: &[u32],
    next: &mut usize,
    upto: u32,
    f: &mut impl FnMut(u32, Option<&V>, Option<&V>),
) {
    while let Some(&key) = keys.get(*next)
        && key <= upto
    {
        let (a, b) = (before.get(key), after.get(key));
        if !same(a, b) {
            f(key, a, b);
        }
        *next += 1;
    }
}

#[cfg(test)]
mod tests {
    // The values are `std` handles, for their `Weak` (`Arc::downgrade`).
    use std::sync::Arc;

    use super::*;

    thread_local! {
        static SPARE: SpareList<Arc<u32>> = const { SpareList::new() };
    }

    impl Spare for Arc<u32> {
        fn spare() -> &'static LocalKey<SpareList<Arc<u32>>> {
            &SPARE
        }
        /// Numbers from [`LOUD`] up stand for values whose drop runs code of its own.
        fn drops_quietly(&self) -> bool {
            **self < LOUD
        }
    }

    const LOUD: u32 = 1_000;

    /// A flag kind for the tests, as `value::NOT_INHERITED` is for contexts.
    const LEFT_OUT: Flags = Flags::kind(0);

    fn val(n: u32) -> Arc<u32> {
        Arc::new(n)
    }

    fn read(map: &Map<Arc<u32>>, key: u32) -> Option<u32> {
        map.get(key).map(|value| **value)
    }

    #[test]
    fn insert_get_remove_across_heights() {
        let mut map = Map::default();
        for key in [0, 5, 15, 16, 300, 70_000, u32::MAX] {
            map.update(key, Flags::NONE, &mut Vec::new(), |slot| *slot = Some(val(key)));
        }
        for key in [0, 5, 15, 16, 300, 70_000, u32::MAX] {
            assert_eq!(read(&map, key), Some(key));
        }
        assert_eq!(read(&map, 1), None);
        for key in [0, 5, 15, 16, 300, 70_000, u32::MAX] {
            map.update(key, Flags::NONE, &mut Vec::new(), |slot| *slot = None);
        }
        assert!(map.is_empty());
    }

    #[test]
    fn clone_is_a_snapshot() {
        let mut map = Map::default();
        map.update(3, Flags::NONE, &mut Vec::new(), |slot| *slot = Some(val(1)));
        let snapshot = map.clone();
        map.update(3, Flags::NONE, &mut Vec::new(), |slot| *slot = Some(val(2)));
        map.update(40, Flags::NONE, &mut Vec::new(), |slot| *slot = Some(val(3)));
        assert_eq!(read(&snapshot, 3), Some(1));
        assert_eq!(read(&snapshot, 40), None);
        assert_eq!(read(&map, 3), Some(2));
    }

    #[test]
    fn unique_mut_only_on_an_unshared_path() {
        let mut map = Map::default();
        map.update(20, Flags::NONE, &mut Vec::new(), |slot| *slot = Some(val(1)));
        assert_eq!(map.unique_mut(20).map(|value| **value), Some(1));
        assert!(map.unique_mut(21).is_none());
        let snapshot = map.clone();
        assert!(map.unique_mut(20).is_none(), "a shared path is never handed out mutably");
        drop(snapshot);
        assert!(map.unique_mut(20).is_some());
    }

    #[test]
    fn diff_reports_changes_only_across_heights() {
        let mut before = Map::default();
        before.update(1, Flags::NONE, &mut Vec::new(), |slot| *slot = Some(val(1)));
        before.update(2, Flags::NONE, &mut Vec::new(), |slot| *slot = Some(val(2)));
        let mut after = before.clone();
        after.update(2, Flags::NONE, &mut Vec::new(), |slot| *slot = None);
        after.update(500, Flags::NONE, &mut Vec::new(), |slot| *slot = Some(val(5)));
        let mut seen = Vec::new();
        Map::diff(&before, &after, &mut |key, a, b| seen.push((key, a.is_some(), b.is_some())));
        assert_eq!(seen, vec![(2, true, false), (500, false, true)]);
    }

    #[test]
    fn diff_compares_by_identity() {
        let mut before = Map::default();
        before.update(1, Flags::NONE, &mut Vec::new(), |slot| *slot = Some(val(1)));
        let mut after = before.clone();
        // An equal value set again is a change; the very same value is not.
        after.update(1, Flags::NONE, &mut Vec::new(), |slot| *slot = Some(val(1)));
        let mut seen = Vec::new();
        Map::diff(&before, &after, &mut |key, _, _| seen.push(key));
        assert_eq!(seen, vec![1]);
        let same = before.get(1).cloned();
        after.update(1, Flags::NONE, &mut Vec::new(), |slot| *slot = same);
        seen.clear();
        Map::diff(&before, &after, &mut |key, _, _| seen.push(key));
        assert!(seen.is_empty());
    }

    #[test]
    fn marks_belong_to_the_key_and_live_beside_the_values() {
        let mut map = Map::default();
        assert!(map.is_empty());
        map.update(7, Flags::NONE, &mut Vec::new(), |slot| *slot = Some(val(7)));
        let snapshot = map.clone();
        // A recent write stays where it is when its key is marked.
        map.update(7, Flags::NONE, &mut Vec::new(), |slot| *slot = Some(val(8)));
        assert!(map.recent.is_some());
        map.update_marked(9, Flags::NONE, Mark::Set, &mut Vec::new(), |_| ());
        map.mark(7);
        assert!(map.recent.is_some());
        assert!(map.is_marked(7) && map.is_marked(9) && !map.is_marked(8));
        assert!(!snapshot.is_marked(7), "the snapshot's marks did not change");
        let mut marked = Vec::new();
        map.for_each_marked(&mut |key, value| marked.push((key, value.map(|v| **v))));
        assert_eq!(marked, vec![(7, Some(8)), (9, None)]);
        // Unset, the key stays marked; the child's copy has no marks and shares the trie.
        map.update(7, Flags::NONE, &mut Vec::new(), |slot| *slot = None);
        map.update(30, Flags::NONE, &mut Vec::new(), |slot| *slot = Some(val(30)));
        assert!(map.is_marked(7) && !map.is_empty());
        let child = map.without(Flags::NONE).expect("marks to leave out");
        assert!(!child.is_marked(7) && !child.is_marked(9) && read(&child, 30) == Some(30));
        assert!(child.trie.same(&map.trie), "leaving the marks out copies no node");
        assert!(child.without(Flags::NONE).is_none());
        assert_eq!(read(&snapshot, 7), Some(7));
        // Marks alone differing make the exact diff give up.
        let mut marked_only = snapshot.clone();
        marked_only.mark(7);
        assert!(!Map::diff_exact(&snapshot, &marked_only, &mut |_, _, _| true));
        assert!(Map::diff_exact(&snapshot, &snapshot.clone(), &mut |_, _, _| true));
    }

    #[test]
    fn marks_stay_when_the_list_moves_into_the_trie_and_leave_no_list_behind() {
        let mut map = Map::default();
        map.mark(3);
        assert!(map.is_empty() && map.is_marked(3), "marks are not values");
        let child = map.without(Flags::NONE).expect("a mark to leave out");
        assert!(child.recent.is_none() && !child.is_marked(3));
        map.update(40, Flags::NONE, &mut Vec::new(), |slot| *slot = Some(val(40)));
        for key in 0..=RECENT as u32 {
            let snapshot = map.clone();
            map.update(key, Flags::NONE, &mut Vec::new(), |slot| *slot = Some(val(key)));
            drop(snapshot);
        }
        // The list filled up and moved into the trie; the mark is still there.
        assert!(map.list().is_none());
        assert!(map.is_marked(3) && !map.is_marked(4));
        let mut marks_only = Map::<Arc<u32>>::default();
        marks_only.mark(5);
        assert!(marks_only.let_go().is_none(), "marks hold no value");
        let mut marked = Vec::new();
        map.for_each_marked(&mut |key, value| marked.push((key, value.map(|v| **v))));
        assert_eq!(marked, vec![(3, Some(3))]);
    }

    #[test]
    fn diff_exact_reports_what_diff_does_when_only_the_lists_differ() {
        let mut base = Map::default();
        for key in 0..20 {
            base.update(key, Flags::NONE, &mut Vec::new(), |slot| *slot = Some(val(key)));
        }
        let _pinned = base.clone(); // the trie stays shared: writes go to the lists
        let mut before = base.clone();
        before.update(1, Flags::NONE, &mut Vec::new(), |slot| *slot = Some(val(100)));
        before.update(2, Flags::NONE, &mut Vec::new(), |slot| *slot = Some(val(200)));
        let mut after = before.clone();
        after.update(2, Flags::NONE, &mut Vec::new(), |slot| *slot = Some(val(201)));
        after.update(3, Flags::NONE, &mut Vec::new(), |slot| *slot = Some(val(300)));
        after.update(25, Flags::NONE, &mut Vec::new(), |slot| *slot = Some(val(2_500)));
        // Back to what the trie holds, through the list.
        let original = base.get(1).cloned();
        after.update(1, Flags::NONE, &mut Vec::new(), |slot| *slot = original);
        assert!(after.trie.same(&before.trie));
        for (a, b) in [(&before, &after), (&after, &before), (&base, &after), (&before, &before)] {
            let mut expected = Vec::new();
            Map::diff(a, b, &mut |key, x, y| expected.push((key, x.map(|v| **v), y.map(|v| **v))));
            let mut seen = Vec::new();
            let whole = Map::diff_exact(a, b, &mut |key, x, y| {
                seen.push((key, x.map(|v| **v), y.map(|v| **v)));
                true
            });
            seen.sort_unstable();
            assert!(whole);
            assert_eq!(seen, expected);
        }
        // Stopped by `f`.
        assert!(!Map::diff_exact(&before, &after, &mut |_, _, _| false));
    }

    #[test]
    fn without_drops_flagged_values_only() {
        let mut map = Map::default();
        map.update(1, Flags::NONE, &mut Vec::new(), |slot| *slot = Some(val(1)));
        map.update(200, LEFT_OUT, &mut Vec::new(), |slot| *slot = Some(val(2)));
        let child = map.without(LEFT_OUT).expect("a value to leave out");
        assert_eq!(read(&child, 1), Some(1));
        assert_eq!(read(&child, 200), None);
        assert_eq!(read(&map, 200), Some(2));
        // The flags follow the value: gone with it, and gone when it is written unflagged.
        map.update(200, LEFT_OUT, &mut Vec::new(), |slot| *slot = None);
        assert!(map.without(LEFT_OUT).is_none());
        map.update(300, LEFT_OUT, &mut Vec::new(), |slot| *slot = Some(val(3)));
        map.update(300, Flags::NONE, &mut Vec::new(), |slot| *slot = Some(val(4)));
        assert!(map.without(LEFT_OUT).is_none());
    }

    #[test]
    fn without_a_flagged_value_the_copy_lacks_only_the_marks() {
        let mut map = Map::default();
        map.update(1, Flags::NONE, &mut Vec::new(), |slot| *slot = Some(val(1)));
        map.mark(1);
        assert!(!map.has_flagged(LEFT_OUT));
        let child = map.without(LEFT_OUT).expect("a mark to leave out");
        assert!(child.trie.same(&map.trie) && read(&child, 1) == Some(1));
        // Flagged in the trie, then in the list of recent writes after a snapshot.
        map.update(200, LEFT_OUT, &mut Vec::new(), |slot| *slot = Some(val(2)));
        assert!(map.has_flagged(LEFT_OUT));
        map.update(200, LEFT_OUT, &mut Vec::new(), |slot| *slot = None);
        assert!(!map.has_flagged(LEFT_OUT), "the flag went with the value");
        let snapshot = map.clone();
        map.update(3, LEFT_OUT, &mut Vec::new(), |slot| *slot = Some(val(3)));
        assert!(map.list().is_some() && map.has_flagged(LEFT_OUT));
        assert!(!snapshot.has_flagged(LEFT_OUT));
    }

    #[test]
    fn settle_lets_go_of_what_the_listed_writes_shadow_once_the_trie_is_the_maps_own() {
        let mut base = Map::default();
        for key in [1, 2, 3, 5] {
            let value = if key == 5 { key } else { LOUD + key };
            base.update(key, Flags::NONE, &mut Vec::new(), |slot| *slot = Some(val(value)));
        }
        let shadowed = Arc::downgrade(base.get(1).unwrap());
        // Written after a snapshot: keys 1 and 2 replaced, key 4 new, key 5 replaced but
        // quiet (a variable's values are all quiet or all not), key 3 set to the value it has.
        let mut map = base.clone();
        let same = base.get(3).cloned();
        let (ten, twenty) = (Some(val(LOUD + 10)), Some(val(LOUD + 20)));
        for (key, value) in [(1, ten), (4, Some(val(LOUD + 4))), (3, same), (2, twenty), (5, Some(val(50)))] {
            let flags = if key == 4 { LEFT_OUT } else { Flags::NONE };
            map.update(key, flags, &mut Vec::new(), |slot| *slot = value);
        }
        assert_eq!(map.list().map(|list| list.len), Some(5));
        let listed = map.listed_changes(&base);
        assert_eq!(&listed.keys[..listed.len], [1, 2], "what changed and shadows a loud value");
        // While `base` shares the trie, nothing moves.
        let mut displaced = [const { None }; RECENT];
        map.settle(&listed, &mut displaced);
        assert_eq!(map.list().map(|list| list.len), Some(5));
        drop(base);
        assert!(shadowed.upgrade().is_some(), "still in the trie, unseen");
        map.settle(&listed, &mut displaced);
        assert_eq!(displaced.iter().flatten().map(|v| **v).collect::<Vec<_>>(), [LOUD + 1, LOUD + 2]);
        drop(displaced);
        assert!(shadowed.upgrade().is_none());
        let shown: Vec<_> = (1..=5).map(|key| read(&map, key)).collect();
        assert_eq!(shown, [Some(LOUD + 10), Some(LOUD + 20), Some(LOUD + 3), Some(LOUD + 4), Some(50)]);
        assert_eq!(map.list().map(|list| list.len), Some(3));
        assert!(map.has_flagged(LEFT_OUT), "a kept entry keeps its flags");
    }

    #[test]
    fn copied_marks_replace_the_maps_own() {
        let mut marked = Map::<Arc<u32>>::default();
        marked.update(1, Flags::NONE, &mut Vec::new(), |slot| *slot = Some(val(1)));
        marked.mark(5);
        let mut other = Map::default();
        other.update(2, Flags::NONE, &mut Vec::new(), |slot| *slot = Some(val(2)));
        other.mark(6);
        other.copy_marks(&marked);
        assert!(other.is_marked(5) && !other.is_marked(6) && read(&other, 2) == Some(2));
        assert!(!marked.is_marked(6), "the source is left alone");
        // No marks and no recent write: no list left behind.
        other.copy_marks(&Map::default());
        assert!(!other.is_marked(5) && other.recent.is_none());
        let mut empty = Map::default();
        empty.copy_marks(&marked);
        assert!(empty.is_empty() && empty.is_marked(5));
    }

    #[test]
    fn without_keeps_the_flags_of_what_is_left_after_a_grow() {
        let mut map = Map::default();
        map.update(3, LEFT_OUT, &mut Vec::new(), |slot| *slot = Some(val(3)));
        // Grows the trie above the flagged leaf: the new root must know it is below.
        map.update(5_000, Flags::NONE, &mut Vec::new(), |slot| *slot = Some(val(5)));
        let child = map.without(LEFT_OUT).expect("the flag survives the grow");
        assert_eq!((read(&child, 3), read(&child, 5_000)), (None, Some(5)));
        assert!(child.without(LEFT_OUT).is_none());
    }

    #[test]
    fn writes_after_a_snapshot_wait_in_the_recent_list_then_move_into_the_trie() {
        let mut map = Map::default();
        for key in 0..40 {
            map.update(key, Flags::NONE, &mut Vec::new(), |slot| *slot = Some(val(key)));
        }
        let snapshot = map.clone();
        assert!(map.recent.is_none());
        for (n, key) in (0..RECENT as u32 + 3).map(|n| (n, n * 3)).collect::<Vec<_>>() {
            map.update(key, Flags::NONE, &mut Vec::new(), |slot| *slot = Some(val(1_000 + key)));
            let waiting = map.recent.as_ref().map_or(0, |recent| recent.len);
            // A full list moves into the trie, whose paths are then this map's own: later
            // writes go there directly.
            let expected = if (n as usize) < RECENT { n as usize + 1 } else { 0 };
            assert_eq!(waiting, expected, "after write {n}");
        }
        for key in 0..40 {
            let written = key % 3 == 0 && key / 3 < RECENT as u32 + 3;
            assert_eq!(read(&map, key), Some(if written { 1_000 + key } else { key }), "key {key}");
            assert_eq!(read(&snapshot, key), Some(key), "snapshot, key {key}");
        }
        // The differences, in key order, whether they wait in the list or moved.
        let mut seen = Vec::new();
        Map::diff(&snapshot, &map, &mut |key, a, b| seen.push((key, a.map(|v| **v), b.map(|v| **v))));
        let expected: Vec<_> =
            (0..RECENT as u32 + 3).map(|n| (n * 3, Some(n * 3), Some(1_000 + n * 3))).collect();
        assert_eq!(seen, expected);
        let mut keys = Vec::new();
        map.for_each(&mut |key, _| keys.push(key));
        assert_eq!(keys, (0..40).collect::<Vec<_>>());
    }

    #[test]
    fn a_write_to_a_shared_list_copies_its_entries_flags_and_marks() {
        let mut map = Map::default();
        for key in 0..20 {
            map.update(key, Flags::NONE, &mut Vec::new(), |slot| *slot = Some(val(key)));
        }
        let first = map.clone();
        map.update(2, Flags::NONE, &mut Vec::new(), |slot| *slot = Some(val(102)));
        map.update(5, LEFT_OUT, &mut Vec::new(), |slot| *slot = Some(val(105)));
        map.mark(2);
        let second = map.clone();
        // Both hold the same list: these writes copy it, and `second` keeps what it had.
        map.update(2, Flags::NONE, &mut Vec::new(), |slot| *slot = Some(val(202)));
        map.update(7, Flags::NONE, &mut Vec::new(), |slot| *slot = Some(val(107)));
        map.mark(7);
        assert_eq!(map.list().map(|recent| recent.len), Some(3));
        assert_eq!([2, 5, 7].map(|key| read(&map, key)), [Some(202), Some(105), Some(107)]);
        assert_eq!([2, 5, 7].map(|key| read(&second, key)), [Some(102), Some(105), Some(7)]);
        assert_eq!([2, 5, 7].map(|key| read(&first, key)), [Some(2), Some(5), Some(7)]);
        assert!(map.is_marked(2) && map.is_marked(7));
        assert!(second.is_marked(2) && !second.is_marked(7));
        // The copy kept the flags: the flagged write is left out of a child's copy.
        for (map, changed) in [(&map, 202), (&second, 102)] {
            let child = map.without(LEFT_OUT).expect("a flagged write to leave out");
            assert_eq!([2, 5].map(|key| read(&child, key)), [Some(changed), None]);
        }
    }

    #[test]
    fn a_released_list_drops_its_values_and_marks_then_serves_the_next_copy() {
        SPARE.with(|spare| drop(spare.0.take()));
        let spare_at = || {
            SPARE.with(|spare| spare.0.take().map(|list| (&*list as *const Recent<Arc<u32>> as usize, list)))
        };
        let mut map = Map::default();
        for key in 0..20 {
            map.update(key, Flags::NONE, &mut Vec::new(), |slot| *slot = Some(val(key)));
        }
        let snapshot = map.clone();
        let written = val(103);
        let written_alive = Arc::downgrade(&written);
        map.update(3, Flags::NONE, &mut Vec::new(), |slot| *slot = Some(written));
        map.mark(9);
        let list_at = map.recent.as_ref().map(|list| triomphe::Arc::as_ptr(list) as usize);
        drop(snapshot);
        // Another map holds the list: it stays theirs.
        let other = map.clone();
        assert!(map.let_go().is_none(), "another map holds its parts");
        assert!(spare_at().is_none());
        assert!(written_alive.upgrade().is_some());
        // The last holder: its value goes now, the list becomes the spare.
        drop(other.let_go().expect("the last holder gets the parts back"));
        assert!(written_alive.upgrade().is_none(), "the list's values drop at its release");
        let (spare_at_ptr, spare) = spare_at().expect("the released list is the spare");
        assert_eq!(Some(spare_at_ptr), list_at);
        SPARE.with(|slot| slot.0.set(Some(spare)));
        // The next list made on this thread is that one, with nothing of its past.
        let mut next = Map::default();
        for key in 0..20 {
            next.update(key, Flags::NONE, &mut Vec::new(), |slot| *slot = Some(val(key)));
        }
        let snapshot = next.clone();
        next.update(5, Flags::NONE, &mut Vec::new(), |slot| *slot = Some(val(105)));
        assert_eq!(next.recent.as_ref().map(|list| triomphe::Arc::as_ptr(list) as usize), list_at);
        assert!(spare_at().is_none());
        assert_eq!([3, 5, 9].map(|key| read(&next, key)), [Some(3), Some(105), Some(9)]);
        assert!(!next.is_marked(9), "no mark of the list's past");
        assert_eq!(next.list().map(|list| list.len), Some(1));
        drop(snapshot);
    }

    #[test]
    fn unset_after_a_snapshot_leaves_no_entry_behind() {
        let mut map = Map::default();
        map.update(5, Flags::NONE, &mut Vec::new(), |slot| *slot = Some(val(5)));
        let snapshot = map.clone();
        // Set then unset a new key: the entry comes and goes.
        map.update(6, Flags::NONE, &mut Vec::new(), |slot| *slot = Some(val(6)));
        map.update(6, Flags::NONE, &mut Vec::new(), |slot| *slot = None);
        assert!(map.recent.is_none());
        // Unset a key the shared trie holds, directly and through the list.
        map.update(5, Flags::NONE, &mut Vec::new(), |slot| *slot = Some(val(50)));
        map.update(5, Flags::NONE, &mut Vec::new(), |slot| *slot = None);
        assert!(map.is_empty());
        assert_eq!(read(&snapshot, 5), Some(5));
        let mut seen = Vec::new();
        Map::diff(&snapshot, &map, &mut |key, a, b| seen.push((key, a.is_some(), b.is_some())));
        assert_eq!(seen, vec![(5, true, false)]);
    }

    #[test]
    fn a_shadowed_value_lives_until_the_list_moves_into_the_trie_at_most() {
        let mut map = Map::default();
        let first = val(1);
        let first_alive = Arc::downgrade(&first);
        map.update(0, Flags::NONE, &mut Vec::new(), |slot| *slot = Some(first));
        let snapshot = map.clone();
        map.update(0, Flags::NONE, &mut Vec::new(), |slot| *slot = Some(val(2)));
        drop(snapshot);
        // No context shows `first` any more, but the trie still holds it, shadowed.
        assert!(first_alive.upgrade().is_some());
        // RECENT more writes after snapshots fill the list; the next one moves it into the
        // trie and hands `first` to the caller to drop.
        let mut displaced = Vec::new();
        for key in 1..=RECENT as u32 {
            let snapshot = map.clone();
            map.update(key, Flags::NONE, &mut displaced, |slot| *slot = Some(val(key)));
            drop(snapshot);
        }
        assert_eq!(displaced.len(), 1);
        drop(displaced);
        assert!(first_alive.upgrade().is_none(), "dropped once the list moved into the trie");
        assert_eq!(read(&map, 0), Some(2));
    }

    #[test]
    fn without_leaves_out_flagged_recent_writes_and_what_they_shadow() {
        let mut map = Map::default();
        map.update(1, Flags::NONE, &mut Vec::new(), |slot| *slot = Some(val(1)));
        map.update(2, Flags::NONE, &mut Vec::new(), |slot| *slot = Some(val(2)));
        let _snapshot = map.clone();
        map.update(1, LEFT_OUT, &mut Vec::new(), |slot| *slot = Some(val(10)));
        map.update(3, LEFT_OUT, &mut Vec::new(), |slot| *slot = Some(val(30)));
        map.update(4, Flags::NONE, &mut Vec::new(), |slot| *slot = Some(val(40)));
        let child = map.without(LEFT_OUT).expect("flagged recent writes");
        assert_eq!(
            (read(&child, 1), read(&child, 2), read(&child, 3), read(&child, 4)),
            (None, Some(2), None, Some(40))
        );
        assert_eq!((read(&map, 1), read(&map, 3)), (Some(10), Some(30)));
        assert!(child.without(LEFT_OUT).is_none());
    }

    #[test]
    fn a_shadowed_value_goes_at_the_next_write_once_the_path_is_unshared() {
        let mut map = Map::default();
        let first = val(1);
        let first_alive = Arc::downgrade(&first);
        map.update(0, Flags::NONE, &mut Vec::new(), |slot| *slot = Some(first));
        let snapshot = map.clone();
        map.update(0, Flags::NONE, &mut Vec::new(), |slot| *slot = Some(val(2)));
        assert!(map.unique_mut(0).is_some(), "the entry is the map's own while the snapshot lives");
        drop(snapshot);
        assert!(first_alive.upgrade().is_some());
        // The next write finds the trie's path unshared: the entry moves into the trie.
        assert!(map.unique_mut(0).is_none(), "the slow path releases the shadowed value");
        let mut displaced = Vec::new();
        let before = map.update(0, Flags::NONE, &mut displaced, |slot| slot.replace(val(3)));
        assert_eq!(before.map(|v| *v), Some(2), "the write sees the recent value");
        assert_eq!(displaced.len(), 1);
        drop(displaced);
        assert!(first_alive.upgrade().is_none());
        assert!(map.recent.is_none());
        assert_eq!(read(&map, 0), Some(3));
    }
}
