//! Counted prefix subscriptions: a byte trie in an arena, with no recursion anywhere, so 100,000
//! subscriptions or a 64 KiB topic cannot overflow the stack (the CVE-2021-20236 class).
//!
//! Matching walks the message's first frame once, collecting every subscriber whose topic is a
//! prefix of it; "" (the root) matches everything.

#[derive(Debug)]
struct Node<K> {
    parent: u32,
    /// (byte, child index), sorted by byte.
    children: Vec<(u8, u32)>,
    /// (subscriber, how many times it subscribed to exactly this topic).
    subscribers: Vec<(K, u32)>,
}

impl<K> Node<K> {
    fn new(parent: u32) -> Self {
        Self { parent, children: Vec::new(), subscribers: Vec::new() }
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
        Self { nodes: vec![Node::new(ROOT)], free: Vec::new() }
    }

    /// Adds one subscription of `key` to `topic`; true when it is `key`'s first for that topic.
    pub fn add(&mut self, topic: &[u8], key: K) -> bool {
        let mut node = ROOT;
        for &byte in topic {
            node = match self.child(node, byte) {
                Some(child) => child,
                None => self.new_child(node, byte),
            };
        }
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
        let mut node = ROOT;
        for &byte in topic {
            match self.child(node, byte) {
                Some(child) => node = child,
                None => return false,
            }
        }
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
        out.extend(self.nodes[ROOT as usize].subscribers.iter().map(|(k, _)| *k));
        for &byte in data {
            match self.child(node, byte) {
                Some(child) => node = child,
                None => break,
            }
            out.extend(self.nodes[node as usize].subscribers.iter().map(|(k, _)| *k));
        }
        out.sort_unstable();
        out.dedup();
    }

    /// Nodes in use (the root included); for memory checks.
    pub fn node_count(&self) -> usize {
        self.nodes.len() - self.free.len()
    }

    fn child(&self, node: u32, byte: u8) -> Option<u32> {
        let children = &self.nodes[node as usize].children;
        children.binary_search_by_key(&byte, |&(b, _)| b).ok().map(|i| children[i].1)
    }

    fn new_child(&mut self, parent: u32, byte: u8) -> u32 {
        let index = match self.free.pop() {
            Some(index) => {
                self.nodes[index as usize] = Node::new(parent);
                index
            }
            None => {
                self.nodes.push(Node::new(parent));
                (self.nodes.len() - 1) as u32
            }
        };
        let children = &mut self.nodes[parent as usize].children;
        let at = children.binary_search_by_key(&byte, |&(b, _)| b).unwrap_or_else(|i| i);
        children.insert(at, (byte, index));
        index
    }

    /// Frees empty nodes from `node` up towards the root, iteratively.
    fn prune(&mut self, mut node: u32) {
        while node != ROOT {
            let current = &self.nodes[node as usize];
            if !current.subscribers.is_empty() || !current.children.is_empty() {
                return;
            }
            let parent = current.parent;
            self.nodes[parent as usize].children.retain(|&(_, c)| c != node);
            self.nodes[node as usize] = Node::new(ROOT);
            self.free.push(node);
            node = parent;
        }
        if self.free.len() > 1024 && self.free.len() * 2 > self.nodes.len() {
            self.shrink_free_tail();
        }
    }

    /// Returns memory when most nodes are free: drops free nodes at the end of the arena.
    fn shrink_free_tail(&mut self) {
        self.free.sort_unstable();
        while let Some(&last) = self.free.last() {
            if last as usize + 1 != self.nodes.len() {
                break;
            }
            self.free.pop();
            self.nodes.pop();
        }
        self.nodes.shrink_to_fit();
        self.free.shrink_to_fit();
    }
}
