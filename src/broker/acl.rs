//! Mosquitto ACL files (`acl_file`): parsing and access decisions.
//!
//! The format is Mosquitto's:
//! - `topic [read|write|readwrite|deny] <filter>`: a rule for the clients of the current section;
//!   `topic` lines before the first `user` line are the anonymous section (clients without a
//!   username); the access defaults to `readwrite`;
//! - `user <name>`: starts the section of that user;
//! - `pattern [read|write|readwrite|deny] <filter>`: a rule for every client, where `%c` is the
//!   client id and `%u` the username (a `%u` pattern never applies to an anonymous client);
//! - `#` comments and blank lines.
//!
//! Decisions follow Mosquitto 2: a client's own section is checked first, then the patterns; in
//! each, `deny` rules come first; the first rule that matches decides (a matching `deny` refuses,
//! a matching grant allows); nothing matching refuses. When patterns exist, a client whose
//! username or client id contains `+` or `#` is refused everything (it could widen a pattern).
//!
//! Subscriptions (where Mosquitto 2 grants every SUBSCRIBE and filters each message instead):
//! a filter is refused (SUBACK 0x80 / 0x87) when a `deny` rule covers all of it or no rule that
//! grants `read` overlaps it; a granted filter that is wider than the client's read rights (`#`)
//! still only delivers the messages the client may read, decided per message with
//! [`Acl::may_read`]. So a subscription is refused exactly when it could never deliver anything.
//!
//! Invariant: a file that parses is fully checked (every filter valid), so decisions never fail.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::topics;

/// Errors of reading an ACL file.
#[derive(Debug, thiserror::Error)]
pub enum AclError {
    #[error("cannot read ACL file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

/// What a rule grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
    ReadWrite,
    Deny,
}

impl Access {
    fn grants(self, want: Want) -> bool {
        matches!(
            (self, want),
            (Access::ReadWrite, _) | (Access::Read, Want::Read) | (Access::Write, Want::Write)
        )
    }
}

/// The access a decision is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Read,
    Write,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    access: Access,
    filter: String,
}

/// A parsed ACL file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acl {
    anonymous: Vec<Rule>,
    users: HashMap<String, Vec<Rule>>,
    patterns: Vec<Rule>,
}

/// Who is asking: the client id and username of a connection.
#[derive(Debug, Clone, Copy)]
pub struct Client<'a> {
    pub id: &'a str,
    pub username: Option<&'a str>,
}

impl Acl {
    /// Reads and parses the file at `path`.
    pub fn load(path: &Path) -> Result<Acl, AclError> {
        let text = std::fs::read_to_string(path).map_err(|source| AclError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|(line, message)| AclError::Invalid {
            path: path.to_owned(),
            line,
            message,
        })
    }

    /// Parses an ACL file's text; the error is the first bad line (1-based) and why.
    pub fn parse(text: &str) -> Result<Acl, (usize, String)> {
        let mut acl = Acl::default();
        let mut user: Option<String> = None;
        for (i, raw) in text.lines().enumerate() {
            let n = i + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (keyword, rest) = line.split_once([' ', '\t']).unwrap_or((line, ""));
            let rest = rest.trim();
            match keyword {
                "user" => {
                    if rest.is_empty() {
                        return Err((n, "`user` needs a username".to_owned()));
                    }
                    acl.users.entry(rest.to_owned()).or_default();
                    user = Some(rest.to_owned());
                }
                "topic" | "pattern" => {
                    let rule = rule(rest).map_err(|why| (n, format!("`{keyword}`: {why}")))?;
                    let list = match (keyword, &user) {
                        ("pattern", _) => &mut acl.patterns,
                        (_, Some(u)) => acl.users.entry(u.clone()).or_default(),
                        (_, None) => &mut acl.anonymous,
                    };
                    push(list, rule);
                }
                other => {
                    return Err((
                        n,
                        format!("unknown keyword `{other}`; expected `topic`, `pattern` or `user`"),
                    ))
                }
            }
        }
        Ok(acl)
    }

    /// Number of rules (for the start-up log).
    pub fn rule_count(&self) -> usize {
        self.anonymous.len()
            + self.patterns.len()
            + self.users.values().map(Vec::len).sum::<usize>()
    }

    /// Whether `client` may publish to `topic`.
    pub fn may_write(&self, client: Client<'_>, topic: &str) -> bool {
        self.decide(client, Want::Write, |rule| topics::matches(rule, topic))
            .unwrap_or(false)
    }

    /// Whether `client` may receive a message published to `topic`.
    pub fn may_read(&self, client: Client<'_>, topic: &str) -> bool {
        self.decide(client, Want::Read, |rule| topics::matches(rule, topic))
            .unwrap_or(false)
    }

    /// Whether `client` may subscribe to `filter` (see the module docs).
    pub fn may_subscribe(&self, client: Client<'_>, filter: &str) -> bool {
        if self.dangerous(client) {
            return false;
        }
        for (rule, access) in self.rules(client) {
            match access {
                Access::Deny if topics::filter_covers(&rule, filter) => return false,
                a if a.grants(Want::Read) && topics::filters_overlap(&rule, filter) => return true,
                _ => {}
            }
        }
        false
    }

    /// The first rule for which `hits` holds decides.
    fn decide(&self, client: Client<'_>, want: Want, hits: impl Fn(&str) -> bool) -> Option<bool> {
        if self.dangerous(client) {
            return Some(false);
        }
        for (rule, access) in self.rules(client) {
            if hits(&rule) {
                if access == Access::Deny {
                    return Some(false);
                }
                if access.grants(want) {
                    return Some(true);
                }
            }
        }
        None
    }

    /// A username or client id with a wildcard could widen a pattern: Mosquitto refuses it all.
    fn dangerous(&self, client: Client<'_>) -> bool {
        let wild = |s: &str| s.contains(['+', '#']);
        !self.patterns.is_empty() && (wild(client.id) || client.username.is_some_and(wild))
    }

    /// The client's own section, then the patterns filled in for it, each deny-first.
    fn rules<'s>(
        &'s self,
        client: Client<'s>,
    ) -> impl Iterator<Item = (Cow<'s, str>, Access)> + 's {
        let own = match client.username {
            Some(u) => self.users.get(u).map(Vec::as_slice).unwrap_or_default(),
            None => self.anonymous.as_slice(),
        };
        let own = own
            .iter()
            .map(|r| (Cow::Borrowed(r.filter.as_str()), r.access));
        let patterns = self
            .patterns
            .iter()
            .filter_map(move |r| fill(&r.filter, client).map(|f| (f, r.access)));
        own.chain(patterns)
    }
}

/// A pattern with `%c` and `%u` replaced; `None` when it needs a username the client lacks.
fn fill<'p>(pattern: &'p str, client: Client<'_>) -> Option<Cow<'p, str>> {
    if !pattern.contains('%') {
        return Some(Cow::Borrowed(pattern));
    }
    let mut out = String::with_capacity(pattern.len() + client.id.len());
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('%', Some('c')) => {
                chars.next();
                out.push_str(client.id);
            }
            ('%', Some('u')) => {
                chars.next();
                out.push_str(client.username?);
            }
            _ => out.push(c),
        }
    }
    Some(Cow::Owned(out))
}

/// Deny rules go before the grants of their list (Mosquitto's order).
fn push(list: &mut Vec<Rule>, rule: Rule) {
    if rule.access == Access::Deny {
        let at = list.iter().take_while(|r| r.access == Access::Deny).count();
        list.insert(at, rule);
    } else {
        list.push(rule);
    }
}

/// `[access] filter` after `topic` / `pattern`.
fn rule(rest: &str) -> Result<Rule, String> {
    if rest.is_empty() {
        return Err("missing topic filter".to_owned());
    }
    let (first, after) = rest.split_once([' ', '\t']).unwrap_or((rest, ""));
    let after = after.trim();
    let (access, filter) = match (first, after.is_empty()) {
        (_, true) => (Access::ReadWrite, first),
        ("read", false) => (Access::Read, after),
        ("write", false) => (Access::Write, after),
        ("readwrite", false) => (Access::ReadWrite, after),
        ("deny", false) => (Access::Deny, after),
        (other, false) => {
            return Err(format!(
                "`{other}` is not an access type; expected read, write, readwrite or deny"
            ))
        }
    };
    topics::check_filter(filter)
        .map_err(|why| format!("invalid topic filter `{filter}`: it {why}"))?;
    Ok(Rule {
        access,
        filter: filter.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
# anonymous clients
topic read public/#
topic deny public/secret

user alice
topic readwrite plant/#
topic deny plant/boiler/+/set
topic write alice/inbox

user bob
topic plant/boiler/#
topic read $SYS/#

pattern readwrite clients/%c/#
pattern write users/%u/out
";

    fn acl() -> Acl {
        Acl::parse(FILE).expect("valid")
    }

    fn anon(id: &str) -> Client<'_> {
        Client { id, username: None }
    }

    fn user<'a>(id: &'a str, name: &'a str) -> Client<'a> {
        Client {
            id,
            username: Some(name),
        }
    }

    #[test]
    fn anonymous_section_applies_only_without_username() {
        let acl = acl();
        assert!(acl.may_read(anon("c1"), "public/news"));
        assert!(!acl.may_write(anon("c1"), "public/news"));
        assert!(!acl.may_read(anon("c1"), "public/secret"), "deny first");
        assert!(!acl.may_read(user("c1", "carol"), "public/news"));
    }

    #[test]
    fn user_sections_with_deny_before_grants() {
        let acl = acl();
        let alice = user("a1", "alice");
        assert!(acl.may_write(alice, "plant/boiler/temp"));
        assert!(acl.may_read(alice, "plant/x"));
        assert!(
            !acl.may_write(alice, "plant/boiler/sp/set"),
            "deny beats the earlier grant"
        );
        assert!(acl.may_write(alice, "alice/inbox"));
        assert!(!acl.may_read(alice, "alice/inbox"), "write-only");
        assert!(!acl.may_write(alice, "other"));
        let bob = user("b1", "bob");
        assert!(
            acl.may_write(bob, "plant/boiler/sp/set"),
            "default readwrite"
        );
        assert!(acl.may_read(bob, "$SYS/broker/uptime"));
        assert!(
            !acl.may_read(alice, "$SYS/broker/uptime"),
            "# does not cover $SYS"
        );
    }

    #[test]
    fn patterns_fill_in_client_id_and_username() {
        let acl = acl();
        assert!(acl.may_write(anon("dev7"), "clients/dev7/x"));
        assert!(!acl.may_write(anon("dev7"), "clients/dev8/x"));
        assert!(
            !acl.may_write(anon("dev7"), "users/dev7/out"),
            "%u skips anonymous"
        );
        assert!(acl.may_write(user("x", "alice"), "users/alice/out"));
        assert!(!acl.may_read(user("x", "alice"), "users/alice/out"));
        // A wildcard in the client id or username would widen a pattern: refused.
        assert!(!acl.may_write(anon("#"), "clients/#/x"));
        assert!(!acl.may_read(user("ok", "a+b"), "clients/ok/x"));
    }

    #[test]
    fn subscriptions_need_overlapping_read_rights_and_no_covering_deny() {
        let acl = acl();
        let alice = user("a1", "alice");
        assert!(acl.may_subscribe(alice, "plant/#"));
        assert!(
            acl.may_subscribe(alice, "#"),
            "wider than allowed: filtered per message"
        );
        assert!(
            !acl.may_subscribe(alice, "plant/boiler/+/set"),
            "covered by a deny"
        );
        assert!(!acl.may_subscribe(alice, "alice/inbox"), "write-only");
        assert!(!acl.may_subscribe(alice, "$SYS/#"));
        assert!(acl.may_subscribe(anon("c"), "public/+"));
        assert!(!acl.may_subscribe(anon("c"), "public/secret"));
        assert!(!acl.may_subscribe(anon("c"), "private/#"));
        assert!(acl.may_subscribe(anon("dev7"), "clients/dev7/#"));
        assert!(!acl.may_subscribe(anon("dev7"), "clients/dev8/#"));
    }

    #[test]
    fn no_rules_refuse_everything() {
        let acl = Acl::parse("# nothing\n").expect("valid");
        assert!(!acl.may_read(anon("c"), "a"));
        assert!(!acl.may_write(anon("c"), "a"));
        assert!(!acl.may_subscribe(anon("c"), "#"));
        assert_eq!(acl.rule_count(), 0);
    }

    #[test]
    fn filters_with_spaces_and_bad_lines() {
        let acl = Acl::parse("topic read a b/c d\n").expect("valid");
        assert!(acl.may_read(anon("c"), "a b/c d"));
        let cases = [
            ("user\n", "`user` needs a username"),
            ("topic\n", "missing topic filter"),
            ("topic reed a/b\n", "`reed` is not an access type"),
            ("topic read a/#/b\n", "invalid topic filter `a/#/b`"),
            ("pattern write a+\n", "invalid topic filter `a+`"),
            ("acl x\n", "unknown keyword `acl`"),
        ];
        for (text, why) in cases {
            let (line, message) = Acl::parse(text).expect_err(text);
            assert_eq!(line, 1);
            assert!(message.contains(why), "{text}: {message}");
        }
        let (line, _) = Acl::parse("# c\n\ntopic read ok\nbad\n").expect_err("bad");
        assert_eq!(line, 4);
    }
}
