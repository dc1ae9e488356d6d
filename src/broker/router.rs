//! The subscription index: a trie of topic-filter levels, matched against topic names.
//!
//! Each subscription is stored at the node of its filter's last literal/`+` level: in `exact`
//! when the filter ends there, in `hash` when it ends with `/#` (so `a/#` sits at `a`, and
//! also matches `a` itself, as MQTT-4.7.1-2 wants). Shared subscriptions
//! (`$share/{group}/{filter}`) sit at their filter's node too, grouped by name; a message
//! goes to one member of each group (round robin, connected members first).
//!
//! Invariants:
//! - one entry per (subscriber, filter, group): subscribing again replaces the options;
//! - topics starting with `$` are never matched by a filter starting with `+` or `#`
//!   (MQTT-4.7.2-1);
//! - nodes without subscriptions and without children are removed, so the trie only holds
//!   what is subscribed now.
//!
//! The trie knows nothing about sessions: a subscriber is any [`Subscriber`] (the engine's
//! session handle), compared by identity.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

/// What the trie needs of a subscriber.
pub trait Subscriber: Clone {
    /// Same subscriber (identity, not equality of contents).
    fn same(&self, other: &Self) -> bool;
    /// Connected now: shared subscriptions prefer such members.
    fn available(&self) -> bool;
}

/// The options of one subscription, as MQTT 5 names them (MQTT 3.1.1 uses only `qos`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubOpts {
    /// Maximum QoS granted.
    pub qos: u8,
    pub no_local: bool,
    pub retain_as_published: bool,
    /// Subscription identifier (MQTT 5), 0 when none.
    pub sub_id: u32,
}

/// One match of a topic: a subscriber and the options of the subscription that matched.
#[derive(Debug, Clone)]
pub struct Match<S> {
    pub subscriber: S,
    pub opts: SubOpts,
    /// Matched through a shared subscription (no-local does not apply, MQTT-3.8.3-4).
    pub shared: bool,
}

#[derive(Debug)]
struct Entry<S> {
    subscriber: S,
    opts: SubOpts,
}

#[derive(Debug)]
struct Group<S> {
    name: Box<str>,
    members: Vec<Entry<S>>,
    next: AtomicUsize,
}

#[derive(Debug)]
struct Subs<S> {
    plain: Vec<Entry<S>>,
    groups: Vec<Group<S>>,
}

impl<S> Default for Subs<S> {
    fn default() -> Self {
        Self {
            plain: Vec::new(),
            groups: Vec::new(),
        }
    }
}

impl<S: Subscriber> Subs<S> {
    fn is_empty(&self) -> bool {
        self.plain.is_empty() && self.groups.is_empty()
    }

    /// Adds or replaces; returns whether the subscription is new.
    fn insert(&mut self, group: Option<&str>, subscriber: &S, opts: SubOpts) -> bool {
        let list = match group {
            None => &mut self.plain,
            Some(name) => {
                let at = match self.groups.iter().position(|g| &*g.name == name) {
                    Some(at) => at,
                    None => {
                        self.groups.push(Group {
                            name: name.into(),
                            members: Vec::new(),
                            next: AtomicUsize::new(0),
                        });
                        self.groups.len() - 1
                    }
                };
                &mut self.groups[at].members
            }
        };
        match list.iter_mut().find(|e| e.subscriber.same(subscriber)) {
            Some(e) => {
                e.opts = opts;
                false
            }
            None => {
                list.push(Entry {
                    subscriber: subscriber.clone(),
                    opts,
                });
                true
            }
        }
    }

    fn remove(&mut self, group: Option<&str>, subscriber: &S) -> bool {
        let remove_from = |list: &mut Vec<Entry<S>>| match list
            .iter()
            .position(|e| e.subscriber.same(subscriber))
        {
            Some(at) => {
                list.swap_remove(at);
                true
            }
            None => false,
        };
        match group {
            None => remove_from(&mut self.plain),
            Some(name) => {
                let Some(at) = self.groups.iter().position(|g| &*g.name == name) else {
                    return false;
                };
                let removed = remove_from(&mut self.groups[at].members);
                if self.groups[at].members.is_empty() {
                    self.groups.swap_remove(at);
                }
                removed
            }
        }
    }

    fn collect(&self, out: &mut Vec<Match<S>>) {
        out.extend(self.plain.iter().map(|e| Match {
            subscriber: e.subscriber.clone(),
            opts: e.opts,
            shared: false,
        }));
        for g in &self.groups {
            if let Some(e) = pick(g) {
                out.push(Match {
                    subscriber: e.subscriber.clone(),
                    opts: e.opts,
                    shared: true,
                });
            }
        }
    }
}

/// The next member of a group in round-robin order, preferring connected members.
fn pick<S: Subscriber>(g: &Group<S>) -> Option<&Entry<S>> {
    let n = g.members.len();
    if n == 0 {
        return None;
    }
    let start = g.next.fetch_add(1, Ordering::Relaxed) % n;
    (0..n)
        .map(|i| &g.members[(start + i) % n])
        .find(|e| e.subscriber.available())
        .or_else(|| g.members.get(start))
}

#[derive(Debug)]
struct Node<S> {
    children: HashMap<Box<str>, Node<S>>,
    plus: Option<Box<Node<S>>>,
    /// Filters ending at this node.
    exact: Subs<S>,
    /// Filters ending with `/#` after this node (or `#` alone, at the root).
    hash: Subs<S>,
}

impl<S> Default for Node<S> {
    fn default() -> Self {
        Self {
            children: HashMap::new(),
            plus: None,
            exact: Subs::default(),
            hash: Subs::default(),
        }
    }
}

impl<S: Subscriber> Node<S> {
    fn is_empty(&self) -> bool {
        self.children.is_empty()
            && self.plus.is_none()
            && self.exact.is_empty()
            && self.hash.is_empty()
    }

    fn walk<'a>(&self, mut levels: std::str::Split<'a, char>, root_dollar: bool, out: &mut Vec<Match<S>>) {
        if !root_dollar {
            self.hash.collect(out);
        }
        let Some(level) = levels.next() else {
            self.exact.collect(out);
            return;
        };
        if let Some(child) = self.children.get(level) {
            child.walk(levels.clone(), false, out);
        }
        if !root_dollar {
            if let Some(plus) = &self.plus {
                plus.walk(levels, false, out);
            }
        }
    }

    fn remove(&mut self, mut levels: std::str::Split<'_, char>, group: Option<&str>, s: &S) -> bool {
        match levels.next() {
            None => self.exact.remove(group, s),
            Some("#") => self.hash.remove(group, s),
            Some("+") => {
                let Some(plus) = self.plus.as_mut() else {
                    return false;
                };
                let removed = plus.remove(levels, group, s);
                if plus.is_empty() {
                    self.plus = None;
                }
                removed
            }
            Some(level) => {
                let Some(child) = self.children.get_mut(level) else {
                    return false;
                };
                let removed = child.remove(levels, group, s);
                if child.is_empty() {
                    self.children.remove(level);
                }
                removed
            }
        }
    }
}

/// The subscriptions of every subscriber.
#[derive(Debug)]
pub struct Router<S> {
    root: Node<S>,
    count: usize,
}

impl<S> Default for Router<S> {
    fn default() -> Self {
        Self {
            root: Node::default(),
            count: 0,
        }
    }
}

impl<S: Subscriber> Router<S> {
    /// Adds (or replaces the options of) `subscriber`'s subscription to `filter` (a valid
    /// filter, without its `$share/{group}/` prefix). Returns whether it is new.
    pub fn subscribe(&mut self, filter: &str, group: Option<&str>, subscriber: &S, opts: SubOpts) -> bool {
        let mut node = &mut self.root;
        let mut levels = filter.split('/').peekable();
        let mut ends_with_hash = false;
        while let Some(level) = levels.next() {
            if level == "#" && levels.peek().is_none() {
                ends_with_hash = true;
                break;
            }
            node = if level == "+" {
                node.plus.get_or_insert_with(Box::default)
            } else {
                node.children.entry(level.into()).or_default()
            };
        }
        let subs = if ends_with_hash {
            &mut node.hash
        } else {
            &mut node.exact
        };
        let added = subs.insert(group, subscriber, opts);
        if added {
            self.count += 1;
        }
        added
    }

    /// Removes `subscriber`'s subscription to `filter`; returns whether it existed.
    pub fn unsubscribe(&mut self, filter: &str, group: Option<&str>, subscriber: &S) -> bool {
        let removed = self.root.remove(filter.split('/'), group, subscriber);
        if removed {
            self.count -= 1;
        }
        removed
    }

    /// Appends to `out` every subscription matching `topic` (a valid topic name): one entry per
    /// matching plain subscription, one member per matching shared group.
    pub fn matches(&self, topic: &str, out: &mut Vec<Match<S>>) {
        self.root.walk(topic.split('/'), topic.starts_with('$'), out);
    }

    /// Number of subscriptions (each shared member counts once).
    pub fn len(&self) -> usize {
        self.count
    }

    /// Number of shared-subscription groups (for `$SYS`).
    pub fn shared_groups(&self) -> usize {
        fn count<S: Subscriber>(n: &Node<S>) -> usize {
            n.exact.groups.len()
                + n.hash.groups.len()
                + n.children.values().map(count).sum::<usize>()
                + n.plus.as_deref().map_or(0, count)
        }
        count(&self.root)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone)]
    struct Sub(Arc<(u32, AtomicBool)>);

    impl Sub {
        fn new(id: u32) -> Self {
            Sub(Arc::new((id, AtomicBool::new(true))))
        }
        fn id(&self) -> u32 {
            self.0 .0
        }
    }

    impl Subscriber for Sub {
        fn same(&self, other: &Self) -> bool {
            Arc::ptr_eq(&self.0, &other.0)
        }
        fn available(&self) -> bool {
            self.0 .1.load(Ordering::Relaxed)
        }
    }

    fn opts(qos: u8) -> SubOpts {
        SubOpts {
            qos,
            no_local: false,
            retain_as_published: false,
            sub_id: 0,
        }
    }

    fn ids(r: &Router<Sub>, topic: &str) -> Vec<u32> {
        let mut out = Vec::new();
        r.matches(topic, &mut out);
        let mut ids: Vec<u32> = out.iter().map(|m| m.subscriber.id()).collect();
        ids.sort_unstable();
        ids
    }

    #[test]
    fn wildcards_match_like_the_specification_says() {
        let mut r = Router::default();
        let subs: Vec<Sub> = (0..8).map(Sub::new).collect();
        for (s, f) in subs.iter().zip([
            "a/b", "a/+", "a/#", "#", "+/+", "+", "a/+/c", "$SYS/#",
        ]) {
            r.subscribe(f, None, s, opts(0));
        }
        assert_eq!(ids(&r, "a/b"), [0, 1, 2, 3, 4]);
        assert_eq!(ids(&r, "a"), [2, 3, 5], "a/# matches the parent level");
        assert_eq!(ids(&r, "a/x/c"), [2, 3, 6]);
        assert_eq!(ids(&r, "b"), [3, 5]);
        assert_eq!(ids(&r, "/b"), [3, 4], "an empty first level is a level");
        assert_eq!(ids(&r, "$SYS/x"), [7], "no leading wildcard matches a $ topic");
        assert_eq!(ids(&r, "$SYS"), [7]);
        assert_eq!(ids(&r, "a/$x"), [1, 2, 3, 4], "$ only matters at the first level");
        assert_eq!(r.len(), 8);
    }

    #[test]
    fn subscribing_again_replaces_and_unsubscribe_prunes() {
        let mut r = Router::default();
        let s = Sub::new(1);
        assert!(r.subscribe("a/+/c", None, &s, opts(0)));
        assert!(!r.subscribe("a/+/c", None, &s, opts(2)));
        let mut out = Vec::new();
        r.matches("a/b/c", &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].opts.qos, 2);
        assert!(r.unsubscribe("a/+/c", None, &s));
        assert!(!r.unsubscribe("a/+/c", None, &s));
        assert!(r.root.is_empty(), "no empty nodes stay");
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn shared_groups_deliver_to_one_member_in_turn_preferring_connected_ones() {
        let mut r = Router::default();
        let (a, b, c) = (Sub::new(1), Sub::new(2), Sub::new(3));
        r.subscribe("t/#", Some("g"), &a, opts(1));
        r.subscribe("t/#", Some("g"), &b, opts(1));
        r.subscribe("t/#", Some("h"), &c, opts(1));
        let mut seen = Vec::new();
        for _ in 0..4 {
            let got = ids(&r, "t/x");
            assert_eq!(got.len(), 2, "one per group: {got:?}");
            assert!(got.contains(&3));
            seen.push(got[0]);
        }
        assert_eq!(seen, [1, 2, 1, 2]);
        b.0 .1.store(false, Ordering::Relaxed);
        for _ in 0..3 {
            assert_eq!(ids(&r, "t/x"), [1, 3], "the offline member is skipped");
        }
        assert_eq!(r.shared_groups(), 2);
        r.unsubscribe("t/#", Some("g"), &a);
        r.unsubscribe("t/#", Some("g"), &b);
        assert_eq!(r.shared_groups(), 1);
    }

    fn matches_naively(filter: &str, topic: &str) -> bool {
        crate::topics::matches(filter, topic)
    }

    proptest! {
        #[test]
        fn agrees_with_the_plain_matcher(
            filters in proptest::collection::vec("(a|b|\\+|\\$s)(/(a|b|\\+|c|#)){0,3}", 1..8),
            topic in "(a|b|c|\\$s|)(/(a|b|c|)){0,4}",
        ) {
            let mut r = Router::default();
            let valid: Vec<&String> = filters
                .iter()
                .filter(|f| !f.contains("#/") && !f.ends_with("#/"))
                .collect();
            let subs: Vec<Sub> = (0..valid.len() as u32).map(Sub::new).collect();
            for (s, f) in subs.iter().zip(&valid) {
                r.subscribe(f, None, s, opts(0));
            }
            let want: Vec<u32> = valid
                .iter()
                .zip(&subs)
                .filter(|(f, _)| matches_naively(f, &topic))
                .map(|(_, s)| s.id())
                .collect();
            prop_assert_eq!(ids(&r, &topic), want);
        }
    }
}
