//! The persistent radix trie under a map: small integer keys to values, `BITS` bits per level.

use triomphe::Arc;

use super::{Flagged, Flags, Shared, same, set_bit};

const BITS: u32 = 4;
const WIDTH: usize = 1 << BITS;
const MASK: u32 = WIDTH as u32 - 1;
/// Enough levels for every `u32` key.
const MAX_HEIGHT: u32 = 32u32.div_ceil(BITS) - 1;

/// A persistent map from keys to values. `Clone` is O(1).
///
/// A radix trie over the key's bits with reference-counted nodes. A write copies the nodes
/// on the path to its key when they are shared and mutates them in place when they are not.
/// Keys are dense (handed out in order of first use), so the trie is as shallow as the
/// highest key allows: one level up to 16 keys, three up to 4,096.
pub(super) struct Trie<V> {
    root: Option<Arc<Node<V>>>,
    /// Levels below the root: the root covers keys below `WIDTH^(height + 1)`.
    height: u32,
}

// By hand: a derive would ask for `V: Clone`/`V: Default`, which the map does not need.
impl<V> Clone for Trie<V> {
    fn clone(&self) -> Self {
        Trie { root: self.root.clone(), height: self.height }
    }
}

#[derive(Clone)]
enum Node<V> {
    Branch(Branch<V>),
    Leaf(Leaf<V>),
}

#[derive(Clone)]
struct Branch<V> {
    children: [Option<Arc<Node<V>>>; WIDTH],
    /// Bit `i`: `children[i]` is `Some`.
    present: u32,
    /// Bit `i` of kind `k`: some value below `children[i]` carries flag `k`.
    flagged: Flagged,
}

#[derive(Clone)]
struct Leaf<V> {
    values: [Option<V>; WIDTH],
    /// Bit `i`: `values[i]` is `Some`.
    present: u32,
    /// Bit `i` of kind `k`: `values[i]` carries flag `k`.
    flagged: Flagged,
}

impl<V> Node<V> {
    fn empty(height: u32) -> Node<V> {
        if height == 0 {
            Node::Leaf(Leaf { values: [const { None }; WIDTH], present: 0, flagged: Flagged::default() })
        } else {
            Node::Branch(Branch {
                children: [const { None }; WIDTH],
                present: 0,
                flagged: Flagged::default(),
            })
        }
    }

    #[inline]
    fn is_empty(&self) -> bool {
        match self {
            Node::Branch(b) => b.present == 0,
            Node::Leaf(l) => l.present == 0,
        }
    }

    fn flagged(&self) -> &Flagged {
        match self {
            Node::Branch(b) => &b.flagged,
            Node::Leaf(l) => &l.flagged,
        }
    }
}

#[inline]
fn index(key: u32, height: u32) -> usize {
    ((key >> (height * BITS)) & MASK) as usize
}

#[inline]
fn covers(height: u32, key: u32) -> bool {
    height >= MAX_HEIGHT || key >> ((height + 1) * BITS) == 0
}

impl<V> Trie<V> {
    /// The empty map; `const` so that a thread's context needs no lazy initialisation.
    pub(super) const EMPTY: Trie<V> = Trie { root: None, height: 0 };

    /// Swaps two tries field by field (see `current::Enter::swap` for why not `mem::swap`).
    #[inline]
    pub(super) fn swap(&mut self, other: &mut Trie<V>) {
        std::mem::swap(&mut self.root, &mut other.root);
        std::mem::swap(&mut self.height, &mut other.height);
    }

    /// Lets go of this trie: it comes back when no other trie held its root, else `None`
    /// and this trie's hold on the root is gone (see `last_hold`: of tries let go of at once
    /// on several threads, exactly one gets the root back).
    #[inline]
    pub(super) fn let_go(mut self) -> Option<Trie<V>> {
        let root = super::last_hold(self.root.take()?)?.shareable();
        Some(Trie { root: Some(root), height: self.height })
    }

    pub(super) fn is_empty(&self) -> bool {
        self.root.is_none()
    }

    /// Whether some value carries one of `flags`: O(1), from the root's summary.
    pub(super) fn has_flagged(&self, flags: Flags) -> bool {
        self.root.as_ref().is_some_and(|root| root.flagged().any_of(flags) != 0)
    }

    /// The value stored under `key`.
    #[inline]
    pub(super) fn get(&self, key: u32) -> Option<&V> {
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

    /// The value under `key` if no node on its path is shared with another map: then the
    /// value may be replaced (or, if it is not shared either, overwritten) in place. The fast
    /// path of `set`.
    #[inline(always)]
    pub(super) fn unique_mut(&mut self, key: u32) -> Option<&mut V> {
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
                Node::Leaf(leaf) => return leaf.values[index(key, 0)].as_mut(),
            }
        }
    }

    /// Whether a write of `key` would copy no node: every node on its path (as far as it
    /// exists) is held by this trie alone.
    #[inline]
    pub(super) fn path_is_unique(&self, key: u32) -> bool {
        let Some(mut node) = self.root.as_ref() else {
            return true;
        };
        if !covers(self.height, key) {
            // A write grows the trie above the root and creates the whole path anew.
            return true;
        }
        let mut height = self.height;
        loop {
            if Arc::strong_count(node) != 1 {
                return false;
            }
            match &**node {
                Node::Leaf(_) => return true,
                Node::Branch(branch) => match &branch.children[index(key, height)] {
                    Some(child) => node = child,
                    None => return true,
                },
            }
            height -= 1;
        }
    }

    /// Whether the trie holds a value under `key` on a path no other trie shares: a value
    /// that a recent write shadows and that a write of `key` may now let go of.
    #[inline]
    pub(super) fn releases_shadowed(&self, key: u32) -> bool {
        self.path_is_unique(key) && self.get(key).is_some()
    }

    /// Calls `f` with the entry of `key`, creating the path to it; shared nodes on that path
    /// are copied first. A value left there carries `flags`. Empty nodes left behind are
    /// removed.
    pub(super) fn update<R>(&mut self, key: u32, flags: Flags, f: impl FnOnce(&mut Option<V>) -> R) -> R
    where
        V: Clone,
    {
        while !covers(self.height, key) {
            self.grow();
        }
        let height = self.height;
        let root = self.root.get_or_insert_with(|| Arc::new(Node::empty(height)));
        let result = update_node(Arc::make_mut(root), height, key, flags, f);
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
                let Node::Branch(mut branch) = Node::empty(1) else { unreachable!("height 1 is a branch") };
                branch.present = 1;
                branch.flagged.set(1, old.flagged().summary());
                branch.children[0] = Some(old);
                self.root = Some(Arc::new(Node::Branch(branch)));
                self.height += 1;
            }
        }
    }

    /// This map without the values that carry any of `flags`, or `None` when there are none
    /// to leave out (the map itself is then the answer). Copies only the paths that lead to
    /// them.
    pub(super) fn without(&self, flags: Flags) -> Option<Trie<V>>
    where
        V: Clone,
    {
        match &self.root {
            Some(root) if root.flagged().any_of(flags) != 0 => {
                let root = strip(root, flags);
                Some(Trie { height: if root.is_some() { self.height } else { 0 }, root })
            }
            _ => None,
        }
    }

    /// Whether both tries are the same trie (not merely equal): O(1).
    pub(super) fn same(&self, other: &Trie<V>) -> bool {
        self.height == other.height
            && match (&self.root, &other.root) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            }
    }

    /// Like [`diff`](Self::diff), but may stop early: calls `f(key, before, after)` for every
    /// key whose value differs, and gives up (returns `false`) when `f` returns `false`, or
    /// when the tries are of different heights.
    pub(super) fn diff_exact(
        before: &Trie<V>,
        after: &Trie<V>,
        f: &mut impl FnMut(u32, Option<&V>, Option<&V>) -> bool,
    ) -> bool
    where
        V: Shared,
    {
        before.height == after.height
            && diff_exact_rec(before.root.as_ref(), after.root.as_ref(), before.height, 0, f)
    }

    /// Calls `f(key, before, after)` for every key whose value differs between `before` and
    /// `after` (by identity: a value set again is a change). Subtrees the two maps share
    /// are skipped, so the cost follows the number of changes, not the size of the maps.
    pub(super) fn diff(before: &Trie<V>, after: &Trie<V>, f: &mut impl FnMut(u32, Option<&V>, Option<&V>))
    where
        V: Shared,
    {
        let height = before.height.max(after.height);
        diff_rec(Sub::of(before), Sub::of(after), height, 0, f);
    }
}

fn update_node<V: Clone, R>(
    node: &mut Node<V>,
    height: u32,
    key: u32,
    flags: Flags,
    f: impl FnOnce(&mut Option<V>) -> R,
) -> R {
    let i = index(key, height);
    let bit = 1u32 << i;
    match node {
        Node::Leaf(leaf) => {
            let result = f(&mut leaf.values[i]);
            let present = leaf.values[i].is_some();
            set_bit(&mut leaf.present, bit, present);
            leaf.flagged.set(bit, if present { flags } else { Flags::NONE });
            result
        }
        Node::Branch(branch) => {
            let child = branch.children[i].get_or_insert_with(|| Arc::new(Node::empty(height - 1)));
            let child_node = Arc::make_mut(child);
            let result = update_node(child_node, height - 1, key, flags, f);
            let (empty, below) = (child_node.is_empty(), child_node.flagged().summary());
            if empty {
                branch.children[i] = None;
            }
            set_bit(&mut branch.present, bit, !empty);
            branch.flagged.set(bit, below);
            result
        }
    }
}

/// `node` without the values that carry any of `flags`; `None` if nothing is left.
fn strip<V: Clone>(node: &Arc<Node<V>>, flags: Flags) -> Option<Arc<Node<V>>> {
    let flagged = node.flagged().any_of(flags);
    if flagged == 0 {
        return Some(Arc::clone(node));
    }
    let mut copy = Node::clone(node);
    match &mut copy {
        Node::Leaf(leaf) => {
            for i in 0..WIDTH {
                if flagged & (1 << i) != 0 {
                    leaf.values[i] = None;
                }
            }
            leaf.present &= !flagged;
            leaf.flagged.clear(flagged);
        }
        Node::Branch(branch) => {
            for i in 0..WIDTH {
                if flagged & (1 << i) != 0 {
                    let child = branch.children[i].as_ref().and_then(|child| strip(child, flags));
                    let bit = 1 << i;
                    set_bit(&mut branch.present, bit, child.is_some());
                    branch.flagged.set(bit, child.as_ref().map_or(Flags::NONE, |c| c.flagged().summary()));
                    branch.children[i] = child;
                }
            }
        }
    }
    if copy.is_empty() { None } else { Some(Arc::new(copy)) }
}

/// A subtree seen at a given height of a (possibly taller) other map: a lower root stands
/// for the first child at every level above it.
enum Sub<'a, V> {
    Empty,
    Node(&'a Arc<Node<V>>, u32),
}

// By hand: a derive would ask for `V: Copy`.
impl<V> Clone for Sub<'_, V> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<V> Copy for Sub<'_, V> {}

impl<'a, V> Sub<'a, V> {
    fn of(map: &'a Trie<V>) -> Sub<'a, V> {
        match &map.root {
            Some(root) => Sub::Node(root, map.height),
            None => Sub::Empty,
        }
    }

    fn of_child(child: &'a Option<Arc<Node<V>>>, height: u32) -> Sub<'a, V> {
        match child {
            Some(node) => Sub::Node(node, height),
            None => Sub::Empty,
        }
    }

    /// Child `i` of this subtree seen at `height`.
    fn child(self, i: usize, height: u32) -> Sub<'a, V> {
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

    fn value(self, i: usize) -> Option<&'a V> {
        match self {
            Sub::Node(node, 0) => match &**node {
                Node::Leaf(leaf) => leaf.values[i].as_ref(),
                Node::Branch(_) => unreachable!("a branch at height 0"),
            },
            _ => None,
        }
    }
}

fn diff_rec<V: Shared>(
    a: Sub<'_, V>,
    b: Sub<'_, V>,
    height: u32,
    prefix: u32,
    f: &mut impl FnMut(u32, Option<&V>, Option<&V>),
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
            if !same(before, after) {
                f(key, before, after);
            }
        } else {
            diff_rec(a.child(i, height), b.child(i, height), height - 1, key, f);
        }
    }
}

/// `diff_rec` for two real nodes of the same height, the common case: shared children are
/// skipped by a pointer comparison before any call.
fn diff_nodes<V: Shared>(
    x: &Arc<Node<V>>,
    y: &Arc<Node<V>>,
    height: u32,
    prefix: u32,
    f: &mut impl FnMut(u32, Option<&V>, Option<&V>),
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
                if !same(before, after) {
                    f(prefix | i as u32, before, after);
                }
            }
        }
        _ => unreachable!("two nodes of one height are of one kind"),
    }
}

fn diff_exact_rec<V: Shared>(
    x: Option<&Arc<Node<V>>>,
    y: Option<&Arc<Node<V>>>,
    height: u32,
    prefix: u32,
    f: &mut impl FnMut(u32, Option<&V>, Option<&V>) -> bool,
) -> bool {
    if let (Some(x), Some(y)) = (x, y)
        && Arc::ptr_eq(x, y)
    {
        return true;
    }
    match (x.map(|x| &**x), y.map(|y| &**y)) {
        (None, None) => true,
        (Some(Node::Branch(_)), _) | (_, Some(Node::Branch(_))) => {
            fn child<V>(node: Option<&Arc<Node<V>>>, i: usize) -> Option<&Arc<Node<V>>> {
                match node.map(|node| &**node) {
                    Some(Node::Branch(branch)) => branch.children[i].as_ref(),
                    _ => None,
                }
            }
            fn present<V>(node: Option<&Arc<Node<V>>>) -> u32 {
                match node.map(|node| &**node) {
                    Some(Node::Branch(branch)) => branch.present,
                    _ => 0,
                }
            }
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
            fn leaf<V>(node: Option<&Node<V>>) -> Option<&Leaf<V>> {
                match node {
                    Some(Node::Leaf(leaf)) => Some(leaf),
                    _ => None,
                }
            }
            let (lx, ly) = (leaf(lx), leaf(ly));
            let present = |leaf: Option<&Leaf<V>>| leaf.map_or(0, |leaf| leaf.present);
            let mut slots = present(lx) | present(ly);
            while slots != 0 {
                let i = slots.trailing_zeros() as usize;
                slots &= slots - 1;
                let before = lx.and_then(|leaf| leaf.values[i].as_ref());
                let after = ly.and_then(|leaf| leaf.values[i].as_ref());
                if !same(before, after) && !f(prefix | i as u32, before, after) {
                    return false;
                }
            }
            true
        }
    }
}
