//! Counted prefix subscriptions: a path-compressed (radix) trie in an arena, with no recursion
//! anywhere, so 100,000 subscriptions or a 64 KiB topic cannot overflow the stack (the
//! CVE-2021-20236 class).
//!
//! Each node holds the label of the edge that leads to it, so a topic costs one or two nodes
//! plus its bytes, not a node per byte (a 64 KiB topic used to cost 65,536 nodes, about 145 times
//! its size). Nodes split when a new topic diverges inside a label and merge back when a removal
//! leaves a node with one child and no subscribers.
//!
//! Matching walks the message's first frame once, collecting every subscriber whose topic is a
//! prefix of it; "" (the root) matches everything.

#[derive(Debug)]
struct Node<K> {
    parent: u32,
    /// The bytes on the edge from the parent; empty only for the root.
    label: Box<[u8]>,
    /// Children, sorted by the first byte of their labels (distinct by construction).
    children: Vec<u32>,
    /// (subscriber, how many times it subscribed to exactly this topic).
    subscribers: Vec<(K, u32)>,
}

impl<K> Node<K> {
    fn new(parent: u32, label: &[u8]) -> Self {
        Self { parent, label: label.into(), children: Vec::new(), subscribers: Vec::new() }
    }
}

const ROOT: u32 = 0;

#[derive(Debug)]
pub struct Trie<K> {
    nodes: Vec<Node<K>>,
    free: Vec<u32>,
}

impl<K: Copy + Ord> Default for Trie<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Copy + Ord> Trie<K> {
    pub fn new() -> Self {
        Self { nodes: vec![Node::new(ROOT, &[])], free: Vec::new() }
    }

    /// Adds one subscription of `key` to `topic`; true when it is `key`'s first for that topic.
    pub fn add(&mut self, topic: &[u8], key: K) -> bool {
        let node = self.insert_path(topic);
        let subscribers = &mut self.nodes[node as usize].subscribers;
        match subscribers.iter_mut().find(|(k, _)| *k == key) {
            Some((_, count)) => {
                *count = count.saturating_add(1);
                false
            }
            None => {
                subscribers.push((key, 1));
                true
            }
        }
    }

    /// Removes one subscription of `key` to `topic`; true when that was its last one.
    pub fn remove(&mut self, topic: &[u8], key: K) -> bool {
        self.remove_times(topic, key, 1)
    }

    /// Removes `times` subscriptions of `key` to `topic` at once (a peer leaving).
    pub fn remove_times(&mut self, topic: &[u8], key: K, times: u32) -> bool {
        let Some(node) = self.find(topic) else { return false };
        let subscribers = &mut self.nodes[node as usize].subscribers;
        let Some(pos) = subscribers.iter().position(|(k, _)| *k == key) else { return false };
        subscribers[pos].1 = subscribers[pos].1.saturating_sub(times);
        if subscribers[pos].1 > 0 {
            return false;
        }
        subscribers.swap_remove(pos);
        self.prune(node);
        true
    }

    /// Every distinct subscriber with a topic that prefixes `data`, into `out` (cleared, sorted).
    pub fn matches(&self, data: &[u8], out: &mut Vec<K>) {
        out.clear();
        let mut node = ROOT;
        let mut rest = data;
        loop {
            out.extend(self.nodes[node as usize].subscribers.iter().map(|(k, _)| *k));
            let Some(child) = self.child(node, rest) else { break };
            let label = &self.nodes[child as usize].label;
            if !rest.starts_with(label) {
                break;
            }
            rest = &rest[label.len()..];
            node = child;
        }
        out.sort_unstable();
        out.dedup();
    }

    /// Nodes in use (the root included); for memory checks.
    #[cfg(test)]
    pub fn node_count(&self) -> usize {
        self.nodes.len() - self.free.len()
    }

    /// Label bytes held by the nodes in use: at most the bytes of the distinct topics.
    #[cfg(test)]
    pub fn label_bytes(&self) -> usize {
        self.nodes.iter().map(|n| n.label.len()).sum()
    }

    /// The child of `node` whose label starts with `rest`'s first byte.
    fn child(&self, node: u32, rest: &[u8]) -> Option<u32> {
        let &first = rest.first()?;
        let children = &self.nodes[node as usize].children;
        let at = children.binary_search_by_key(&first, |&c| self.first_byte(c)).ok()?;
        Some(children[at])
    }

    fn first_byte(&self, node: u32) -> u8 {
        self.nodes[node as usize].label.first().copied().unwrap_or(0)
    }

    /// The node that stands for exactly `topic`, if there is one.
    fn find(&self, topic: &[u8]) -> Option<u32> {
        let mut node = ROOT;
        let mut rest = topic;
        while !rest.is_empty() {
            let child = self.child(node, rest)?;
            let label = &self.nodes[child as usize].label;
            rest = rest.strip_prefix(&label[..])?;
            node = child;
        }
        Some(node)
    }

    /// The node for exactly `topic`, made by adding a leaf or splitting a label as needed.
    fn insert_path(&mut self, topic: &[u8]) -> u32 {
        let mut node = ROOT;
        let mut rest = topic;
        while !rest.is_empty() {
            let Some(child) = self.child(node, rest) else { return self.new_child(node, rest) };
            let label = &self.nodes[child as usize].label;
            let common = label.iter().zip(rest).take_while(|(a, b)| a == b).count();
            let next = if common < label.len() { self.split(child, common) } else { child };
            rest = &rest[common..];
            node = next;
        }
        node
    }

    /// Splits `node`'s label after `at` bytes: a new node takes the first part and becomes
    /// `node`'s parent. Returns the new node.
    fn split(&mut self, node: u32, at: usize) -> u32 {
        let parent = self.nodes[node as usize].parent;
        let label = std::mem::take(&mut self.nodes[node as usize].label);
        let middle = self.alloc(Node::new(parent, &label[..at]));
        self.nodes[middle as usize].children.push(node);
        let child = &mut self.nodes[node as usize];
        child.label = label[at..].into();
        child.parent = middle;
        let siblings = &mut self.nodes[parent as usize].children;
        if let Some(slot) = siblings.iter_mut().find(|c| **c == node) {
            *slot = middle; // same first byte, so the order holds
        }
        middle
    }

    fn new_child(&mut self, parent: u32, label: &[u8]) -> u32 {
        let index = self.alloc(Node::new(parent, label));
        let first = label[0];
        let at = {
            let children = &self.nodes[parent as usize].children;
            children.binary_search_by_key(&first, |&c| self.first_byte(c)).unwrap_or_else(|i| i)
        };
        self.nodes[parent as usize].children.insert(at, index);
        index
    }

    fn alloc(&mut self, node: Node<K>) -> u32 {
        match self.free.pop() {
            Some(index) => {
                self.nodes[index as usize] = node;
                index
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as u32
            }
        }
    }

    /// After a removal at `node`: frees nodes left with no subscribers and no children, and
    /// merges a node left with no subscribers and one child into that child. Iterative.
    fn prune(&mut self, mut node: u32) {
        while node != ROOT {
            let current = &self.nodes[node as usize];
            if !current.subscribers.is_empty() {
                break;
            }
            let parent = current.parent;
            match current.children.len() {
                0 => {
                    self.nodes[parent as usize].children.retain(|&c| c != node);
                    self.release(node);
                    node = parent;
                }
                1 => {
                    self.merge_into_child(node);
                    break;
                }
                _ => break,
            }
        }
        if self.free.len() > 1024 && self.free.len() * 2 > self.nodes.len() {
            self.compact();
        }
    }

    /// Replaces `node` (no subscribers, one child) by its child, whose label grows in front.
    fn merge_into_child(&mut self, node: u32) {
        let parent = self.nodes[node as usize].parent;
        let child = self.nodes[node as usize].children[0];
        let mut label = std::mem::take(&mut self.nodes[node as usize].label).into_vec();
        label.extend_from_slice(&self.nodes[child as usize].label);
        let merged = &mut self.nodes[child as usize];
        merged.label = label.into_boxed_slice();
        merged.parent = parent;
        if let Some(slot) = self.nodes[parent as usize].children.iter_mut().find(|c| **c == node) {
            *slot = child; // same first byte, so the order holds
        }
        self.release(node);
    }

    fn release(&mut self, node: u32) {
        self.nodes[node as usize] = Node::new(ROOT, &[]);
        self.free.push(node);
    }

    /// Returns memory when most nodes are free: renumbers the live nodes into a new arena.
    /// Runs only after the free list grew past half the arena, so its cost is amortized.
    fn compact(&mut self) {
        let mut is_free = vec![false; self.nodes.len()];
        for &index in &self.free {
            is_free[index as usize] = true;
        }
        let mut renumbered = vec![0u32; self.nodes.len()];
        let mut next = 0;
        for (old, free) in is_free.iter().enumerate() {
            if !free {
                renumbered[old] = next;
                next += 1;
            }
        }
        let nodes = std::mem::take(&mut self.nodes);
        self.nodes = nodes
            .into_iter()
            .zip(is_free)
            .filter(|(_, free)| !free)
            .map(|(mut node, _)| {
                node.parent = renumbered[node.parent as usize];
                for child in &mut node.children {
                    *child = renumbered[*child as usize];
                }
                node
            })
            .collect();
        self.free = Vec::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matched(trie: &Trie<u32>, data: &[u8]) -> Vec<u32> {
        let mut out = Vec::new();
        trie.matches(data, &mut out);
        out
    }

    #[test]
    fn prefixes_match_across_split_labels() {
        let mut trie = Trie::new();
        trie.add(b"foobar", 1);
        trie.add(b"foo", 2); // splits "foobar" into "foo" + "bar"
        trie.add(b"fox", 3); // splits "foo" into "fo" + "o"
        trie.add(b"", 4);
        assert_eq!(matched(&trie, b"foobarbaz"), vec![1, 2, 4]);
        assert_eq!(matched(&trie, b"foo"), vec![2, 4]);
        assert_eq!(matched(&trie, b"fo"), vec![4]);
        assert_eq!(matched(&trie, b"fox!"), vec![3, 4]);
        assert_eq!(matched(&trie, b"bar"), vec![4]);
    }

    #[test]
    fn removals_merge_nodes_back_and_free_them_all() {
        let mut trie = Trie::new();
        for topic in [&b"foobar"[..], b"foo", b"fox", b"f", b"zz"] {
            assert!(trie.add(topic, 7));
        }
        assert!(!trie.add(b"foo", 7), "a second subscription to the same topic is counted");
        assert!(!trie.remove(b"foo", 7));
        for topic in [&b"foo"[..], b"f", b"fox"] {
            assert!(trie.remove(topic, 7));
        }
        assert_eq!(matched(&trie, b"foobar"), vec![7]);
        assert_eq!(trie.node_count(), 3, "root, foobar, zz: the chain merged back into one node");
        assert!(trie.remove(b"foobar", 7) && trie.remove(b"zz", 7));
        assert_eq!((trie.node_count(), trie.label_bytes()), (1, 0));
        assert!(!trie.remove(b"never", 7));
    }

    #[test]
    fn compaction_after_mass_removal_keeps_what_is_left() {
        let mut trie = Trie::new();
        let topic = |i: u32| format!("t/{i}/x").into_bytes();
        for i in 0..5_000 {
            trie.add(&topic(i), i);
        }
        let before = trie.node_count();
        for i in (0..5_000).filter(|i| i % 10 != 0) {
            assert!(trie.remove(&topic(i), i));
        }
        assert!(trie.node_count() < before / 5, "{} of {before}", trie.node_count());
        assert!(trie.nodes.len() < before / 2, "the arena was compacted: {}", trie.nodes.len());
        for i in (0..5_000).step_by(10) {
            assert_eq!(matched(&trie, &topic(i)), vec![i]);
        }
    }

    #[test]
    fn a_long_topic_costs_its_bytes_not_a_node_per_byte() {
        let mut trie = Trie::new();
        for i in 0..16u8 {
            let mut topic = vec![i; 64 << 10];
            topic[0] = i;
            trie.add(&topic, u32::from(i));
        }
        assert_eq!(trie.node_count(), 17);
        assert_eq!(trie.label_bytes(), 16 * (64 << 10));
    }

    #[test]
    fn a_hundred_thousand_subscriptions_and_a_64_kib_topic_come_and_go_without_recursion() {
        let mut trie: Trie<u32> = Trie::new();
        let long_topic = vec![b'x'; 64 << 10];
        assert!(trie.add(&long_topic, 1));
        for i in 0..100_000u32 {
            trie.add(format!("topic/{i}").as_bytes(), 2);
        }
        let mut out = Vec::new();
        let mut message = long_topic.clone();
        message.extend_from_slice(b"more");
        trie.matches(&message, &mut out);
        assert_eq!(out, vec![1]);
        trie.matches(b"topic/99999/x", &mut out);
        assert_eq!(out, vec![2]);
        assert!(trie.node_count() > 100_000);
        for i in 0..100_000u32 {
            assert!(trie.remove(format!("topic/{i}").as_bytes(), 2));
        }
        assert!(trie.remove(&long_topic, 1));
        assert_eq!(trie.node_count(), 1, "every node was freed");
        drop(trie); // dropping a deep trie must not recurse either
    }
}
