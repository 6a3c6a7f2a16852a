//! The marked keys of a map: a persistent set of keys, kept apart from the trie of values.
//!
//! Apart, so that the copy a child starts from (which has no marks) is the parent's trie as
//! it is, in O(1) whatever was marked, instead of a copy of every path that leads to a mark.
//! Setting a mark copies the nodes on its path when they are shared, as the trie does, but
//! these nodes hold bits and child pointers only: no value's reference count is touched.
//! Marking a key that is marked already copies nothing.
//!
//! The first [`FEW`] keys are held inline, without a node: copying the set (with the map's
//! list of recent writes, at every write after a snapshot) then touches no reference count.

use triomphe::Arc;

/// Bits of the key a leaf covers: one `u64` of 64 keys.
const LEAF_BITS: u32 = 6;
/// Bits of the key per branch level.
const BITS: u32 = 4;
const WIDTH: usize = 1 << BITS;

/// How many keys the set holds inline, before it moves them into nodes.
const FEW: usize = 4;

/// A persistent set of keys. `Clone` is O(1).
#[derive(Clone, Default)]
pub(super) struct Marks {
    /// Up to [`FEW`] keys, in the order they were added, while `root` is `None`.
    few: [u32; FEW],
    len: u8,
    /// Its height is in the node.
    root: Option<Arc<Node>>,
}

#[derive(Clone)]
enum Node {
    /// Bit `i`: key `prefix + i` is in the set.
    Leaf(u64),
    /// `height` levels of branches down to the leaves, this one included.
    Branch { height: u32, children: [Option<Arc<Node>>; WIDTH] },
}

impl Node {
    fn empty(height: u32) -> Node {
        if height == 0 { Node::Leaf(0) } else { Node::Branch { height, children: [const { None }; WIDTH] } }
    }

    #[inline]
    fn height(&self) -> u32 {
        match self {
            Node::Leaf(_) => 0,
            Node::Branch { height, .. } => *height,
        }
    }
}

/// Whether a node of `height` covers `key`.
#[inline]
fn covers(height: u32, key: u32) -> bool {
    let bits = LEAF_BITS + height * BITS;
    bits >= u32::BITS || key >> bits == 0
}

/// The child of a branch of `height` that covers `key`.
#[inline]
fn index(key: u32, height: u32) -> usize {
    ((key >> (LEAF_BITS + (height - 1) * BITS)) as usize) & (WIDTH - 1)
}

impl Marks {
    /// The empty set; `const` so that the empty map is.
    pub(super) const EMPTY: Marks = Marks { few: [0; FEW], len: 0, root: None };

    pub(super) fn is_empty(&self) -> bool {
        self.len == 0 && self.root.is_none()
    }

    /// Whether both are the same set: the same inline keys in the same order, or the same
    /// nodes (not compared key by key: O(1), and `false` for some equal sets).
    #[inline]
    pub(super) fn same(&self, other: &Marks) -> bool {
        self.len == other.len
            && self.few == other.few
            && match (&self.root, &other.root) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            }
    }

    #[inline]
    pub(super) fn contains(&self, key: u32) -> bool {
        if self.few[..self.len as usize].contains(&key) {
            return true;
        }
        let Some(mut node) = self.root.as_deref() else { return false };
        if !covers(node.height(), key) {
            return false;
        }
        loop {
            match node {
                Node::Leaf(bits) => return bits & (1 << (key & 63)) != 0,
                Node::Branch { height, children } => match children[index(key, *height)].as_deref() {
                    Some(child) => node = child,
                    None => return false,
                },
            }
        }
    }

    /// Adds `key`; nothing is copied when it is in the set already.
    pub(super) fn insert(&mut self, key: u32) {
        if self.contains(key) {
            return;
        }
        if self.root.is_none() && (self.len as usize) < FEW {
            self.few[self.len as usize] = key;
            self.len += 1;
            return;
        }
        // Full inline: every key moves into the nodes.
        let few = std::mem::take(&mut self.few);
        let len = std::mem::take(&mut self.len) as usize;
        for key in few[..len].iter().copied().chain([key]) {
            self.insert_node(key);
        }
    }

    fn insert_node(&mut self, key: u32) {
        let root = self.root.get_or_insert_with(|| Arc::new(Node::empty(0)));
        while !covers(root.height(), key) {
            let height = root.height() + 1;
            let mut children = [const { None }; WIDTH];
            children[0] = Some(Arc::clone(root));
            *root = Arc::new(Node::Branch { height, children });
        }
        insert_below(Arc::make_mut(root), key);
    }

    /// Calls `f(key)` for every key in the set, in key order.
    pub(super) fn for_each(&self, f: &mut impl FnMut(u32)) {
        let mut few = self.few;
        let few = &mut few[..self.len as usize];
        few.sort_unstable();
        few.iter().for_each(|&key| f(key));
        fn walk(node: &Node, prefix: u32, f: &mut impl FnMut(u32)) {
            match node {
                Node::Leaf(bits) => {
                    let mut bits = *bits;
                    while bits != 0 {
                        f(prefix | bits.trailing_zeros());
                        bits &= bits - 1;
                    }
                }
                Node::Branch { height, children } => {
                    for (i, child) in children.iter().enumerate() {
                        if let Some(child) = child {
                            walk(child, prefix | ((i as u32) << (LEAF_BITS + (height - 1) * BITS)), f);
                        }
                    }
                }
            }
        }
        if let Some(root) = self.root.as_deref() {
            walk(root, 0, f);
        }
    }
}

fn insert_below(node: &mut Node, key: u32) {
    match node {
        Node::Leaf(bits) => *bits |= 1 << (key & 63),
        Node::Branch { height, children } => {
            let below = *height - 1;
            let child = children[index(key, *height)].get_or_insert_with(|| Arc::new(Node::empty(below)));
            insert_below(Arc::make_mut(child), key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(marks: &Marks) -> Vec<u32> {
        let mut keys = Vec::new();
        marks.for_each(&mut |key| keys.push(key));
        keys
    }

    #[test]
    fn insert_contains_and_order_across_heights() {
        let mut marks = Marks::EMPTY;
        let added = [70_000, 3, 63, 64, 1_023, 1_024, 5, u32::MAX, 8_191];
        for key in added {
            marks.insert(key);
        }
        let mut sorted = added.to_vec();
        sorted.sort_unstable();
        assert_eq!(keys(&marks), sorted);
        for key in added {
            assert!(marks.contains(key), "{key}");
        }
        for key in [0, 4, 62, 65, 1_025, 69_999, u32::MAX - 1] {
            assert!(!marks.contains(key), "{key}");
        }
    }

    #[test]
    fn a_clone_is_a_snapshot_and_a_present_key_copies_nothing() {
        let mut marks = Marks::EMPTY;
        marks.insert(10);
        let snapshot = marks.clone();
        marks.insert(10);
        assert!(marks.same(&snapshot), "marking a marked key copies nothing");
        marks.insert(2_000);
        assert!(!marks.same(&snapshot));
        assert_eq!(keys(&snapshot), vec![10]);
        assert_eq!(keys(&marks), vec![10, 2_000]);
        assert!(Marks::EMPTY.same(&Marks::default()) && Marks::EMPTY.is_empty());
    }

    #[test]
    fn a_few_keys_inline_then_all_in_nodes() {
        let mut marks = Marks::EMPTY;
        for key in [9, 2, 700] {
            marks.insert(key);
        }
        assert!(marks.root.is_none(), "held inline");
        let snapshot = marks.clone();
        marks.insert(5);
        marks.insert(2);
        assert!(marks.root.is_none() && marks.len as usize == FEW);
        marks.insert(1);
        assert!(marks.root.is_some() && marks.len == 0, "the fifth key moves them all");
        assert_eq!(keys(&marks), vec![1, 2, 5, 9, 700]);
        assert_eq!(keys(&snapshot), vec![2, 9, 700]);
        assert!(!marks.same(&snapshot) && snapshot.contains(700) && !snapshot.contains(5));
    }
}
