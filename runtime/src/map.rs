//! The persistent map behind every context: small integer keys to type-erased values.
//!
//! A radix trie over the key's bits, `BITS` bits per level, with reference-counted nodes.
//! Cloning a map clones one `Arc`; a write copies the nodes on the path to its key when they
//! are shared and mutates them in place when they are not (the common case: a context that
//! nobody has taken a snapshot of). Keys are dense (handed out in order of first use), so
//! the trie is as shallow as the highest key allows: one level up to 16 variables, three up
//! to 4,096.
//!
//! Every node also keeps two bitmaps per slot: whether a variable that is not inherited lives
//! below it, so that the copy into a child task skips straight to those variables; and
//! whether a *marked* key lives below it. A key is marked where a `#[propagate(back)]`
//! function's change (or a join's delivery of one) landed: a plain `.await` of the task
//! delivers the marked keys, found without visiting the unmarked subtrees. A mark belongs to
//! the key, not to the value: it stays when the value is replaced or unset.

use std::sync::Arc;

use crate::value::{Slot, Stored, Value};

const BITS: u32 = 4;
const WIDTH: usize = 1 << BITS;
const MASK: u32 = WIDTH as u32 - 1;
/// Enough levels for every `u32` key.
const MAX_HEIGHT: u32 = 32u32.div_ceil(BITS) - 1;

/// A persistent map from keys to values. `Clone` is O(1).
#[derive(Clone, Default)]
pub(crate) struct Map {
    root: Option<Arc<Node>>,
    /// Levels below the root: the root covers keys below `WIDTH^(height + 1)`.
    height: u32,
}

#[derive(Clone)]
enum Node {
    Branch(Branch),
    Leaf(Leaf),
}

#[derive(Clone, Default)]
struct Branch {
    children: [Option<Arc<Node>>; WIDTH],
    /// Bit `i`: `children[i]` is `Some`.
    present: u32,
    /// Bit `i`: some variable below `children[i]` is not inherited.
    not_inherited: u32,
    /// Bit `i`: some key below `children[i]` is marked.
    marked: u32,
}

#[derive(Clone, Default)]
struct Leaf {
    values: [Option<Value>; WIDTH],
    /// Bit `i`: `values[i]` is `Some`.
    present: u32,
    /// Bit `i`: `values[i]` belongs to a variable that is not inherited.
    not_inherited: u32,
    /// Bit `i`: key `i` is marked (whether or not it holds a value).
    marked: u32,
}

impl Node {
    fn empty(height: u32) -> Node {
        if height == 0 { Node::Leaf(Leaf::default()) } else { Node::Branch(Branch::default()) }
    }

    /// Neither a value nor a mark: the node can go.
    #[inline]
    fn is_empty(&self) -> bool {
        match self {
            Node::Branch(b) => b.present == 0,
            Node::Leaf(l) => l.present == 0 && l.marked == 0,
        }
    }

    fn not_inherited(&self) -> u32 {
        match self {
            Node::Branch(b) => b.not_inherited,
            Node::Leaf(l) => l.not_inherited,
        }
    }

    fn marked(&self) -> u32 {
        match self {
            Node::Branch(b) => b.marked,
            Node::Leaf(l) => l.marked,
        }
    }
}

/// What `Map::update` does to the mark of the key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mark {
    /// Leaves it as it is.
    Keep,
    /// Marks the key.
    Set,
}

#[inline]
fn index(key: u32, height: u32) -> usize {
    ((key >> (height * BITS)) & MASK) as usize
}

#[inline]
fn covers(height: u32, key: u32) -> bool {
    height >= MAX_HEIGHT || key >> ((height + 1) * BITS) == 0
}

impl Map {
    /// The empty map; `const` so that a thread's context needs no lazy initialisation.
    pub(crate) const EMPTY: Map = Map { root: None, height: 0 };

    /// Swaps two maps field by field (see `current::swap` for why not `mem::swap`).
    #[inline]
    pub(crate) fn swap(&mut self, other: &mut Map) {
        std::mem::swap(&mut self.root, &mut other.root);
        std::mem::swap(&mut self.height, &mut other.height);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.root.is_none()
    }

    /// Whether dropping this map may drop values: no other map shares its root.
    #[inline]
    pub(crate) fn is_last_holder(&self) -> bool {
        self.root.as_ref().is_some_and(|root| Arc::strong_count(root) == 1)
    }

    /// The value stored under `key`.
    #[inline]
    pub(crate) fn get(&self, key: u32) -> Option<&Value> {
        let mut node = self.root.as_deref()?;
        if !covers(self.height, key) {
            return None;
        }
        let mut height = self.height;
        loop {
            match node {
                Node::Branch(branch) => {
                    node = branch.children[index(key, height)].as_deref()?;
                    height -= 1;
                }
                Node::Leaf(leaf) => return leaf.values[index(key, 0)].as_ref(),
            }
        }
    }

    /// The value under `key` if nothing on its path, the value included, is shared with
    /// another map: then it may be overwritten in place. The fast path of `set`.
    #[inline]
    pub(crate) fn unique_mut(&mut self, key: u32) -> Option<&mut Slot<dyn Stored>> {
        if !covers(self.height, key) {
            return None;
        }
        let mut node = Arc::get_mut(self.root.as_mut()?)?;
        let mut height = self.height;
        loop {
            match node {
                Node::Branch(branch) => {
                    node = Arc::get_mut(branch.children[index(key, height)].as_mut()?)?;
                    height -= 1;
                }
                Node::Leaf(leaf) => {
                    return Arc::get_mut(leaf.values[index(key, 0)].as_mut()?);
                }
            }
        }
    }

    /// Calls `f` with the slot of `key`, creating the path to it; shared nodes on that path
    /// are copied first. `not_inherited` says whether the variable of `key` is kept from
    /// children. The key's mark is left as it is. Empty nodes left behind are removed.
    #[inline]
    pub(crate) fn update<R>(
        &mut self,
        key: u32,
        not_inherited: bool,
        f: impl FnOnce(&mut Option<Value>) -> R,
    ) -> R {
        self.update_marked(key, not_inherited, Mark::Keep, f)
    }

    /// [`update`](Self::update), which also sets or clears the key's mark.
    #[inline]
    pub(crate) fn update_marked<R>(
        &mut self,
        key: u32,
        not_inherited: bool,
        mark: Mark,
        f: impl FnOnce(&mut Option<Value>) -> R,
    ) -> R {
        while !covers(self.height, key) {
            self.grow();
        }
        let height = self.height;
        let root = self.root.get_or_insert_with(|| Arc::new(Node::empty(height)));
        let result = update_node(Arc::make_mut(root), height, key, not_inherited, mark, f);
        if root.is_empty() {
            self.root = None;
            self.height = 0;
        }
        result
    }

    /// Adds a level above the root, which becomes the first child of the new root.
    fn grow(&mut self) {
        match self.root.take() {
            None => self.height += 1,
            Some(old) => {
                let mut branch = Branch { present: 1, ..Branch::default() };
                if old.not_inherited() != 0 {
                    branch.not_inherited = 1;
                }
                if old.marked() != 0 {
                    branch.marked = 1;
                }
                branch.children[0] = Some(old);
                self.root = Some(Arc::new(Node::Branch(branch)));
                self.height += 1;
            }
        }
    }

    /// This map without the values of variables that are not inherited and without marks
    /// (a child delivers only what was marked in it), or `None` when there is nothing to leave
    /// out (the map itself is then the child's start). Copies only the paths that lead to
    /// them.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))] // used by the spawns of `task.rs`
    pub(crate) fn inherited(&self) -> Option<Map> {
        match &self.root {
            Some(root) if root.not_inherited() | root.marked() != 0 => {
                let root = strip(root);
                Some(Map { height: if root.is_some() { self.height } else { 0 }, root })
            }
            _ => None,
        }
    }

    /// Calls `f(key, before, after)` for every key whose value differs between `before` and
    /// `after` (by identity: a value set again is a change). Subtrees the two maps share
    /// are skipped, so the cost follows the number of changes, not the size of the maps.
    pub(crate) fn diff(before: &Map, after: &Map, f: &mut impl FnMut(u32, Option<&Value>, Option<&Value>)) {
        let height = before.height.max(after.height);
        diff_rec(Sub::of(before), Sub::of(after), height, 0, f);
    }

    /// Whether both maps are the same map (not merely equal): O(1).
    pub(crate) fn same(&self, other: &Map) -> bool {
        self.height == other.height
            && match (&self.root, &other.root) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            }
    }

    /// Like [`diff`](Self::diff), but also sees marks: calls `f(key, before, after)` for every
    /// key whose value differs, and gives up (returns `false`) at a key whose mark alone
    /// differs, when `f` returns `false`, or when the maps are of different heights. Shared
    /// subtrees are skipped.
    pub(crate) fn diff_exact(
        before: &Map,
        after: &Map,
        f: &mut impl FnMut(u32, Option<&Value>, Option<&Value>) -> bool,
    ) -> bool {
        before.height == after.height
            && diff_exact_rec(before.root.as_ref(), after.root.as_ref(), before.height, 0, f)
    }

    /// Whether the map holds a value (and not only marks); stops at the first one.
    pub(crate) fn has_values(&self) -> bool {
        fn walk(node: &Node) -> bool {
            match node {
                Node::Leaf(leaf) => leaf.present != 0,
                Node::Branch(branch) => branch.children.iter().flatten().any(|child| walk(child)),
            }
        }
        self.root.as_deref().is_some_and(walk)
    }

    /// Whether `key` is marked.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))] // used by the joins
    pub(crate) fn is_marked(&self, key: u32) -> bool {
        let Some(mut node) = self.root.as_deref() else { return false };
        if !covers(self.height, key) {
            return false;
        }
        let mut height = self.height;
        loop {
            let bit = 1 << index(key, height);
            if node.marked() & bit == 0 {
                return false;
            }
            match node {
                Node::Branch(branch) => {
                    let Some(child) = branch.children[index(key, height)].as_deref() else { return false };
                    node = child;
                    height -= 1;
                }
                Node::Leaf(_) => return true,
            }
        }
    }

    /// Calls `f(key, value)` for every marked key, in key order. Subtrees without a mark are
    /// not visited: the cost follows the number of marked keys.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))] // used by the joins
    pub(crate) fn for_each_marked(&self, f: &mut impl FnMut(u32, Option<&Value>)) {
        fn walk(node: &Node, height: u32, prefix: u32, f: &mut impl FnMut(u32, Option<&Value>)) {
            let mut slots = node.marked();
            while slots != 0 {
                let i = slots.trailing_zeros();
                slots &= slots - 1;
                let key = prefix | (i << (height * BITS));
                match node {
                    Node::Leaf(leaf) => f(key, leaf.values[i as usize].as_ref()),
                    Node::Branch(branch) => {
                        if let Some(child) = branch.children[i as usize].as_deref() {
                            walk(child, height - 1, key, f);
                        }
                    }
                }
            }
        }
        if let Some(root) = self.root.as_deref() {
            walk(root, self.height, 0, f);
        }
    }

    /// Every key and value, in key order.
    pub(crate) fn for_each(&self, f: &mut impl FnMut(u32, &Value)) {
        Map::diff(&Map::EMPTY, self, &mut |key, _, value| {
            if let Some(value) = value {
                f(key, value);
            }
        });
    }
}

fn update_node<R>(
    node: &mut Node,
    height: u32,
    key: u32,
    not_inherited: bool,
    mark: Mark,
    f: impl FnOnce(&mut Option<Value>) -> R,
) -> R {
    let i = index(key, height);
    let bit = 1u32 << i;
    match node {
        Node::Leaf(leaf) => {
            let result = f(&mut leaf.values[i]);
            let present = leaf.values[i].is_some();
            set_bit(&mut leaf.present, bit, present);
            set_bit(&mut leaf.not_inherited, bit, present && not_inherited);
            if mark == Mark::Set {
                leaf.marked |= bit;
            }
            result
        }
        Node::Branch(branch) => {
            let child = branch.children[i].get_or_insert_with(|| Arc::new(Node::empty(height - 1)));
            let child_node = Arc::make_mut(child);
            let result = update_node(child_node, height - 1, key, not_inherited, mark, f);
            let (empty, below) = (child_node.is_empty(), child_node.not_inherited() != 0);
            let marked_below = child_node.marked() != 0;
            if empty {
                branch.children[i] = None;
            }
            set_bit(&mut branch.present, bit, !empty);
            set_bit(&mut branch.not_inherited, bit, below);
            set_bit(&mut branch.marked, bit, marked_below);
            result
        }
    }
}

#[inline]
fn set_bit(bits: &mut u32, bit: u32, on: bool) {
    if on { *bits |= bit } else { *bits &= !bit }
}

#[cfg_attr(not(feature = "tokio"), allow(dead_code))] // used by the spawns of `task.rs`
fn strip(node: &Arc<Node>) -> Option<Arc<Node>> {
    if node.not_inherited() | node.marked() == 0 {
        return Some(Arc::clone(node));
    }
    let mut copy = Node::clone(node);
    match &mut copy {
        Node::Leaf(leaf) => {
            for i in 0..WIDTH {
                if leaf.not_inherited & (1 << i) != 0 {
                    leaf.values[i] = None;
                }
            }
            leaf.present &= !leaf.not_inherited;
            leaf.not_inherited = 0;
            leaf.marked = 0;
        }
        Node::Branch(branch) => {
            for i in 0..WIDTH {
                if (branch.not_inherited | branch.marked) & (1 << i) != 0 {
                    branch.children[i] = branch.children[i].as_ref().and_then(strip);
                    set_bit(&mut branch.present, 1 << i, branch.children[i].is_some());
                }
            }
            branch.not_inherited = 0;
            branch.marked = 0;
        }
    }
    if copy.is_empty() { None } else { Some(Arc::new(copy)) }
}

/// A subtree seen at a given height of a (possibly taller) other map: a lower root stands
/// for the first child at every level above it.
#[derive(Clone, Copy)]
enum Sub<'a> {
    Empty,
    Node(&'a Arc<Node>, u32),
}

impl<'a> Sub<'a> {
    fn of(map: &'a Map) -> Sub<'a> {
        match &map.root {
            Some(root) => Sub::Node(root, map.height),
            None => Sub::Empty,
        }
    }

    fn of_child(child: &'a Option<Arc<Node>>, height: u32) -> Sub<'a> {
        match child {
            Some(node) => Sub::Node(node, height),
            None => Sub::Empty,
        }
    }

    /// Child `i` of this subtree seen at `height`.
    fn child(self, i: usize, height: u32) -> Sub<'a> {
        match self {
            Sub::Empty => Sub::Empty,
            Sub::Node(node, own) if own < height => {
                if i == 0 {
                    Sub::Node(node, own)
                } else {
                    Sub::Empty
                }
            }
            Sub::Node(node, _) => match &**node {
                Node::Branch(branch) => match &branch.children[i] {
                    Some(child) => Sub::Node(child, height - 1),
                    None => Sub::Empty,
                },
                Node::Leaf(_) => unreachable!("a leaf has no children"),
            },
        }
    }

    /// Which slots of this subtree, seen at `height`, hold something.
    fn present(self, height: u32) -> u32 {
        match self {
            Sub::Empty => 0,
            Sub::Node(_, own) if own < height => 1,
            Sub::Node(node, _) => match &**node {
                Node::Branch(branch) => branch.present,
                Node::Leaf(leaf) => leaf.present,
            },
        }
    }

    fn value(self, i: usize) -> Option<&'a Value> {
        match self {
            Sub::Node(node, 0) => match &**node {
                Node::Leaf(leaf) => leaf.values[i].as_ref(),
                Node::Branch(_) => unreachable!("a branch at height 0"),
            },
            _ => None,
        }
    }
}

fn diff_rec(
    a: Sub<'_>,
    b: Sub<'_>,
    height: u32,
    prefix: u32,
    f: &mut impl FnMut(u32, Option<&Value>, Option<&Value>),
) {
    match (a, b) {
        (Sub::Empty, Sub::Empty) => return,
        (Sub::Node(x, hx), Sub::Node(y, hy)) if hx == height && hy == height => {
            return diff_nodes(x, y, height, prefix, f);
        }
        _ => {}
    }
    // Only the slots present on either side can differ.
    let mut slots = a.present(height) | b.present(height);
    while slots != 0 {
        let i = slots.trailing_zeros() as usize;
        slots &= slots - 1;
        let key = prefix | ((i as u32) << (height * BITS));
        if height == 0 {
            let (before, after) = (a.value(i), b.value(i));
            if !crate::value::same(before, after) {
                f(key, before, after);
            }
        } else {
            diff_rec(a.child(i, height), b.child(i, height), height - 1, key, f);
        }
    }
}

/// `diff_rec` for two real nodes of the same height, the common case: shared children are
/// skipped by a pointer comparison before any call.
fn diff_nodes(
    x: &Arc<Node>,
    y: &Arc<Node>,
    height: u32,
    prefix: u32,
    f: &mut impl FnMut(u32, Option<&Value>, Option<&Value>),
) {
    if Arc::ptr_eq(x, y) {
        return;
    }
    match (&**x, &**y) {
        (Node::Branch(bx), Node::Branch(by)) => {
            let mut slots = bx.present | by.present;
            while slots != 0 {
                let i = slots.trailing_zeros() as usize;
                slots &= slots - 1;
                let key = prefix | ((i as u32) << (height * BITS));
                match (&bx.children[i], &by.children[i]) {
                    (Some(cx), Some(cy)) => diff_nodes(cx, cy, height - 1, key, f),
                    (cx, cy) => diff_rec(
                        Sub::of_child(cx, height - 1),
                        Sub::of_child(cy, height - 1),
                        height - 1,
                        key,
                        f,
                    ),
                }
            }
        }
        (Node::Leaf(lx), Node::Leaf(ly)) => {
            let mut slots = lx.present | ly.present;
            while slots != 0 {
                let i = slots.trailing_zeros() as usize;
                slots &= slots - 1;
                let (before, after) = (lx.values[i].as_ref(), ly.values[i].as_ref());
                if !crate::value::same(before, after) {
                    f(prefix | i as u32, before, after);
                }
            }
        }
        _ => unreachable!("two nodes of one height are of one kind"),
    }
}

fn diff_exact_rec(
    x: Option<&Arc<Node>>,
    y: Option<&Arc<Node>>,
    height: u32,
    prefix: u32,
    f: &mut impl FnMut(u32, Option<&Value>, Option<&Value>) -> bool,
) -> bool {
    if let (Some(x), Some(y)) = (x, y)
        && Arc::ptr_eq(x, y)
    {
        return true;
    }
    match (x.map(|x| &**x), y.map(|y| &**y)) {
        (None, None) => true,
        (Some(Node::Branch(_)), _) | (_, Some(Node::Branch(_))) => {
            fn child(node: Option<&Arc<Node>>, i: usize) -> Option<&Arc<Node>> {
                match node.map(|node| &**node) {
                    Some(Node::Branch(branch)) => branch.children[i].as_ref(),
                    _ => None,
                }
            }
            let present = |node: Option<&Arc<Node>>| match node.map(|node| &**node) {
                Some(Node::Branch(branch)) => branch.present,
                _ => 0,
            };
            let mut slots = present(x) | present(y);
            while slots != 0 {
                let i = slots.trailing_zeros() as usize;
                slots &= slots - 1;
                let key = prefix | ((i as u32) << (height * BITS));
                if !diff_exact_rec(child(x, i), child(y, i), height - 1, key, f) {
                    return false;
                }
            }
            true
        }
        (lx, ly) => {
            fn leaf(node: Option<&Node>) -> Option<&Leaf> {
                match node {
                    Some(Node::Leaf(leaf)) => Some(leaf),
                    _ => None,
                }
            }
            let (lx, ly) = (leaf(lx), leaf(ly));
            let bits = |leaf: Option<&Leaf>| leaf.map_or((0, 0), |leaf| (leaf.present, leaf.marked));
            let ((px, mx), (py, my)) = (bits(lx), bits(ly));
            let mut slots = px | py | mx | my;
            while slots != 0 {
                let i = slots.trailing_zeros() as usize;
                slots &= slots - 1;
                let before = lx.and_then(|leaf| leaf.values[i].as_ref());
                let after = ly.and_then(|leaf| leaf.values[i].as_ref());
                if !crate::value::same(before, after) {
                    if !f(prefix | i as u32, before, after) {
                        return false;
                    }
                } else if (mx ^ my) & (1 << i) != 0 {
                    return false;
                }
            }
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::var::ContextVar;

    static V: ContextVar<u32> = ContextVar::new("V", || 0);

    fn val(n: u32) -> Value {
        crate::value::store(&V, n)
    }

    fn read(map: &Map, key: u32) -> Option<u32> {
        map.get(key).and_then(|stored| crate::value::typed(&V, stored)).copied()
    }

    #[test]
    fn insert_get_remove_across_heights() {
        let mut map = Map::default();
        for key in [0, 5, 15, 16, 300, 70_000, u32::MAX] {
            map.update(key, false, |slot| *slot = Some(val(key)));
        }
        for key in [0, 5, 15, 16, 300, 70_000, u32::MAX] {
            assert_eq!(read(&map, key), Some(key));
        }
        assert_eq!(read(&map, 1), None);
        for key in [0, 5, 15, 16, 300, 70_000, u32::MAX] {
            map.update(key, false, |slot| *slot = None);
        }
        assert!(map.is_empty());
    }

    #[test]
    fn clone_is_a_snapshot() {
        let mut map = Map::default();
        map.update(3, false, |slot| *slot = Some(val(1)));
        let snapshot = map.clone();
        map.update(3, false, |slot| *slot = Some(val(2)));
        map.update(40, false, |slot| *slot = Some(val(3)));
        assert_eq!(read(&snapshot, 3), Some(1));
        assert_eq!(read(&snapshot, 40), None);
        assert_eq!(read(&map, 3), Some(2));
    }

    #[test]
    fn diff_reports_changes_only_across_heights() {
        let mut before = Map::default();
        before.update(1, false, |slot| *slot = Some(val(1)));
        before.update(2, false, |slot| *slot = Some(val(2)));
        let mut after = before.clone();
        after.update(2, false, |slot| *slot = None);
        after.update(500, false, |slot| *slot = Some(val(5)));
        let mut seen = Vec::new();
        Map::diff(&before, &after, &mut |key, a, b| seen.push((key, a.is_some(), b.is_some())));
        assert_eq!(seen, vec![(2, true, false), (500, false, true)]);
    }

    #[test]
    fn has_values_ignores_marks() {
        let mut map = Map::default();
        assert!(!map.has_values());
        map.update_marked(4_000, false, Mark::Set, |slot| *slot = None);
        assert!(!map.has_values() && !map.is_empty());
        map.update(7, false, |slot| *slot = Some(val(7)));
        assert!(map.has_values());
    }

    fn marked_keys(map: &Map) -> Vec<(u32, Option<u32>)> {
        let mut keys = Vec::new();
        map.for_each_marked(&mut |key, value| {
            keys.push((key, value.and_then(|stored| crate::value::typed(&V, stored)).copied()))
        });
        keys
    }

    #[test]
    fn marks_stay_with_the_key_and_are_listed_in_key_order() {
        let mut map = Map::default();
        map.update(1, false, |slot| *slot = Some(val(1)));
        map.update_marked(300, false, Mark::Set, |slot| *slot = Some(val(3)));
        map.update_marked(2, false, Mark::Set, |slot| *slot = Some(val(2)));
        let snapshot = map.clone();
        // A plain write keeps the mark; an unset keeps it too (the unset is what flows).
        map.update(300, false, |slot| *slot = None);
        assert_eq!(marked_keys(&map), [(2, Some(2)), (300, None)]);
        assert!(map.is_marked(300) && map.is_marked(2) && !map.is_marked(1) && !map.is_marked(70_000));
        assert_eq!(marked_keys(&snapshot), [(2, Some(2)), (300, Some(3))]);
        // Without its values the map still holds the marks: the unsets flow.
        map.update(1, false, |slot| *slot = None);
        map.update(2, false, |slot| *slot = None);
        assert!(!map.is_empty() && !map.has_values());
        assert_eq!(marked_keys(&map), [(2, None), (300, None)]);
    }

    #[test]
    fn diff_exact_reports_values_and_gives_up_on_a_mark_alone() {
        let mut before = Map::default();
        before.update(1, false, |slot| *slot = Some(val(1)));
        before.update(300, false, |slot| *slot = Some(val(3)));
        let mut after = before.clone();
        after.update(300, false, |slot| *slot = Some(val(4)));
        let mut seen = Vec::new();
        assert!(Map::diff_exact(&before, &after, &mut |key, _, _| {
            seen.push(key);
            true
        }));
        assert_eq!(seen, [300]);
        // The same value, marked: no change, but not the same map either.
        let mut marked = before.clone();
        marked.update_marked(1, false, Mark::Set, |_| ());
        assert!(!Map::diff_exact(&before, &marked, &mut |_, _, _| true));
        assert!(!Map::diff_exact(&before, &after, &mut |_, _, _| false));
    }

    #[test]
    fn inherited_leaves_marks_out() {
        let mut map = Map::default();
        map.update_marked(5, false, Mark::Set, |slot| *slot = Some(val(5)));
        map.update_marked(600, false, Mark::Set, |slot| *slot = None);
        let child = map.inherited().expect("marks to leave out");
        assert_eq!(read(&child, 5), Some(5));
        assert!(marked_keys(&child).is_empty());
        assert_eq!(marked_keys(&map).len(), 2);
    }

    #[test]
    fn inherited_drops_marked_values_only() {
        let mut map = Map::default();
        map.update(1, false, |slot| *slot = Some(val(1)));
        map.update(200, true, |slot| *slot = Some(val(2)));
        let child = map.inherited().expect("a variable to leave out");
        assert_eq!(read(&child, 1), Some(1));
        assert_eq!(read(&child, 200), None);
        assert_eq!(read(&map, 200), Some(2));
        map.update(200, true, |slot| *slot = None);
        assert!(map.root.as_ref().is_some_and(|r| r.not_inherited() == 0));
    }
}
