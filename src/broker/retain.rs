//! Retained messages: one per topic, in a trie of topic levels so that a new subscription's
//! filter (wildcards included) finds its retained messages without a scan of every topic.
//!
//! Invariants:
//! - a retained message lives until it is replaced, cleared by an empty retained publish, or
//!   its MQTT 5 message expiry passes (like Mosquitto; no other expiry);
//! - `$`-topics are not matched by a filter starting with a wildcard (MQTT-4.7.2-1);
//! - empty nodes are pruned, so memory follows what is retained now.
//!
//! Generic over the stored value so it can be tested without the engine's message type.

use std::collections::HashMap;

#[derive(Debug)]
struct Node<V> {
    children: HashMap<Box<str>, Node<V>>,
    value: Option<V>,
}

impl<V> Default for Node<V> {
    fn default() -> Self {
        Self {
            children: HashMap::new(),
            value: None,
        }
    }
}

impl<V: Clone> Node<V> {
    fn collect_all(&self, out: &mut Vec<V>) {
        out.extend(self.value.iter().cloned());
        for child in self.children.values() {
            child.collect_all(out);
        }
    }

    fn walk(&self, mut levels: std::str::Split<'_, char>, root: bool, out: &mut Vec<V>) {
        let Some(level) = levels.next() else {
            out.extend(self.value.iter().cloned());
            return;
        };
        match level {
            "#" => {
                // `a/#` matches `a` too (MQTT-4.7.1-2).
                out.extend(self.value.iter().filter(|_| !root).cloned());
                for (name, child) in &self.children {
                    if !(root && name.starts_with('$')) {
                        child.collect_all(out);
                    }
                }
            }
            "+" => {
                for (name, child) in &self.children {
                    if !(root && name.starts_with('$')) {
                        child.walk(levels.clone(), false, out);
                    }
                }
            }
            literal => {
                if let Some(child) = self.children.get(literal) {
                    child.walk(levels, false, out);
                }
            }
        }
    }

    /// Removes the value at `levels`; returns it.
    fn remove(&mut self, mut levels: std::str::Split<'_, char>) -> Option<V> {
        match levels.next() {
            None => self.value.take(),
            Some(level) => {
                let child = self.children.get_mut(level)?;
                let removed = child.remove(levels);
                if child.value.is_none() && child.children.is_empty() {
                    self.children.remove(level);
                }
                removed
            }
        }
    }
}

/// The retained messages, by topic.
#[derive(Debug)]
pub struct Retained<V> {
    root: Node<V>,
    count: usize,
}

impl<V> Default for Retained<V> {
    fn default() -> Self {
        Self {
            root: Node::default(),
            count: 0,
        }
    }
}

impl<V: Clone> Retained<V> {
    /// Sets the retained message of `topic` (a valid topic name); returns the one replaced.
    pub fn set(&mut self, topic: &str, value: V) -> Option<V> {
        let mut node = &mut self.root;
        for level in topic.split('/') {
            node = node.children.entry(level.into()).or_default();
        }
        let old = node.value.replace(value);
        if old.is_none() {
            self.count += 1;
        }
        old
    }

    /// Clears the retained message of `topic`; returns it.
    pub fn clear(&mut self, topic: &str) -> Option<V> {
        let old = self.root.remove(topic.split('/'));
        if old.is_some() {
            self.count -= 1;
        }
        old
    }

    /// Appends every retained message whose topic matches `filter` (a valid filter).
    pub fn matching(&self, filter: &str, out: &mut Vec<V>) {
        self.root.walk(filter.split('/'), true, out);
    }

    pub fn len(&self) -> usize {
        self.count
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn topics(r: &Retained<String>, filter: &str) -> Vec<String> {
        let mut out = Vec::new();
        r.matching(filter, &mut out);
        out.sort();
        out
    }

    #[test]
    fn filters_find_their_retained_messages() {
        let mut r = Retained::default();
        for t in ["a", "a/b", "a/b/c", "a/c", "$SYS/x", "/x", "b"] {
            r.set(t, t.to_owned());
        }
        assert_eq!(topics(&r, "a/#"), ["a", "a/b", "a/b/c", "a/c"]);
        assert_eq!(topics(&r, "a/+"), ["a/b", "a/c"]);
        assert_eq!(topics(&r, "#"), ["/x", "a", "a/b", "a/b/c", "a/c", "b"]);
        assert_eq!(topics(&r, "+"), ["a", "b"]);
        assert_eq!(topics(&r, "+/x"), ["/x"]);
        assert_eq!(topics(&r, "$SYS/#"), ["$SYS/x"]);
        assert_eq!(topics(&r, "a/b/c"), ["a/b/c"]);
        assert_eq!(r.len(), 7);
        assert_eq!(r.clear("a/b").as_deref(), Some("a/b"));
        assert_eq!(r.clear("a/b"), None);
        assert_eq!(topics(&r, "a/#"), ["a", "a/b/c", "a/c"]);
        assert_eq!(r.len(), 6);
        for t in ["a", "a/b/c", "a/c", "$SYS/x", "/x", "b"] {
            r.clear(t);
        }
        assert!(r.root.children.is_empty(), "pruned");
    }

    proptest! {
        #[test]
        fn agrees_with_the_plain_matcher(
            set in proptest::collection::btree_set("(a|b|\\$s|)(/(a|b|c|)){0,3}", 0..12),
            filter in "(a|b|\\+|#|\\$s)(/(a|b|\\+|c)){0,3}(/#)?",
        ) {
            prop_assume!(!filter.starts_with("#/"));
            let mut r = Retained::default();
            for t in &set {
                r.set(t, t.clone());
            }
            let want: Vec<String> = set
                .iter()
                .filter(|t| crate::topics::matches(&filter, t))
                .cloned()
                .collect();
            prop_assert_eq!(topics(&r, &filter), want);
        }
    }
}
