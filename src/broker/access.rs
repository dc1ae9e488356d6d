//! Who may connect and what they may do: the listeners' anonymous policy, the password file and
//! the ACL, combined into the decisions the engine asks for. Pure.
//!
//! Connect rules (Mosquitto 2 semantics):
//! - a client without a username is anonymous: accepted only on a listener that allows
//!   anonymous clients;
//! - with a password file, a client with a username must give that user's password;
//! - without a password file, a username is not checked, so it counts as anonymous;
//! - with an ACL, a client whose will topic it may not publish to is refused at CONNECT.
//!
//! Without an ACL every client may publish and subscribe to everything.

use super::acl::{Acl, Client};
use super::passwd::{PasswordFile, Verdict};

/// Why a connect was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No username (or an unchecked one) on a listener that refuses anonymous clients.
    AnonymousNotAllowed,
    /// The username is not in the password file.
    UnknownUser,
    /// The password does not match.
    WrongPassword,
    /// A username without a password while a password file is in use.
    NoPassword,
    /// The ACL does not allow publishing the will message.
    WillDenied,
}

impl Refusal {
    /// A bad username or password (as opposed to "not allowed").
    pub fn is_bad_credentials(self) -> bool {
        matches!(
            self,
            Refusal::UnknownUser | Refusal::WrongPassword | Refusal::NoPassword
        )
    }

    /// For logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::AnonymousNotAllowed => "anonymous clients are not allowed on this listener",
            Refusal::UnknownUser => "unknown user",
            Refusal::WrongPassword => "wrong password",
            Refusal::NoPassword => "no password given",
            Refusal::WillDenied => "the ACL does not allow its will topic",
        }
    }
}

/// What a connecting client presents.
#[derive(Debug, Clone, Copy)]
pub struct Credentials<'a> {
    pub client_id: &'a str,
    pub username: Option<&'a str>,
    pub password: Option<&'a [u8]>,
    pub will_topic: Option<&'a str>,
}

/// The access decisions of one broker.
#[derive(Debug, Clone, Default)]
pub struct Access {
    passwords: Option<PasswordFile>,
    acl: Option<Acl>,
}

impl Access {
    pub fn new(passwords: Option<PasswordFile>, acl: Option<Acl>) -> Self {
        Self { passwords, acl }
    }

    /// Whether an ACL is in force (otherwise every access is allowed).
    pub fn has_acl(&self) -> bool {
        self.acl.is_some()
    }

    /// Decides a CONNECT on a listener that does (`anonymous_ok`) or does not accept clients
    /// without checked credentials.
    pub fn authenticate(&self, anonymous_ok: bool, c: Credentials<'_>) -> Result<(), Refusal> {
        match (&self.passwords, c.username) {
            (Some(file), Some(user)) => {
                let Some(password) = c.password else {
                    return Err(Refusal::NoPassword);
                };
                match file.verify(user, password) {
                    Verdict::Valid => {}
                    Verdict::WrongPassword => return Err(Refusal::WrongPassword),
                    Verdict::UnknownUser => return Err(Refusal::UnknownUser),
                }
            }
            _ if anonymous_ok => {}
            _ => return Err(Refusal::AnonymousNotAllowed),
        }
        if let Some(topic) = c.will_topic {
            if !self.may_write(c.client_id, c.username, topic) {
                return Err(Refusal::WillDenied);
            }
        }
        Ok(())
    }

    pub fn may_write(&self, client_id: &str, username: Option<&str>, topic: &str) -> bool {
        self.acl.as_ref().is_none_or(|acl| {
            acl.may_write(
                Client {
                    id: client_id,
                    username,
                },
                topic,
            )
        })
    }

    pub fn may_read(&self, client_id: &str, username: Option<&str>, topic: &str) -> bool {
        self.acl.as_ref().is_none_or(|acl| {
            acl.may_read(
                Client {
                    id: client_id,
                    username,
                },
                topic,
            )
        })
    }

    pub fn may_subscribe(&self, client_id: &str, username: Option<&str>, filter: &str) -> bool {
        self.acl.as_ref().is_none_or(|acl| {
            acl.may_subscribe(
                Client {
                    id: client_id,
                    username,
                },
                filter,
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use super::*;
    use crate::broker::passwd;

    fn access(passwords: bool, acl: Option<&str>) -> Access {
        let n = NonZeroU32::new(1).expect("non-zero");
        let file = passwords.then(|| {
            let line = passwd::entry("alice", "pw", n).expect("entry");
            PasswordFile::parse(&line).expect("valid")
        });
        Access::new(file, acl.map(|a| Acl::parse(a).expect("acl")))
    }

    fn creds<'a>(user: Option<&'a str>, password: Option<&'a [u8]>) -> Credentials<'a> {
        Credentials {
            client_id: "c1",
            username: user,
            password,
            will_topic: None,
        }
    }

    #[test]
    fn anonymous_clients_only_where_allowed() {
        let a = access(true, None);
        assert_eq!(a.authenticate(true, creds(None, None)), Ok(()));
        assert_eq!(
            a.authenticate(false, creds(None, None)),
            Err(Refusal::AnonymousNotAllowed)
        );
        assert_eq!(a.authenticate(false, creds(Some("alice"), Some(b"pw"))), Ok(()));
        assert_eq!(
            a.authenticate(true, creds(Some("alice"), Some(b"nope"))),
            Err(Refusal::WrongPassword),
            "a username is checked even where anonymous clients are allowed"
        );
        assert_eq!(
            a.authenticate(false, creds(Some("mallory"), Some(b"pw"))),
            Err(Refusal::UnknownUser)
        );
        assert_eq!(
            a.authenticate(false, creds(Some("alice"), None)),
            Err(Refusal::NoPassword)
        );
    }

    #[test]
    fn without_a_password_file_usernames_count_as_anonymous() {
        let a = access(false, None);
        assert_eq!(a.authenticate(true, creds(Some("x"), Some(b"y"))), Ok(()));
        assert_eq!(
            a.authenticate(false, creds(Some("x"), Some(b"y"))),
            Err(Refusal::AnonymousNotAllowed)
        );
    }

    #[test]
    fn the_acl_checks_the_will_topic_and_defaults_to_allow() {
        let a = access(false, Some("topic write lan/#\n"));
        let mut c = creds(None, None);
        c.will_topic = Some("lan/will");
        assert_eq!(a.authenticate(true, c), Ok(()));
        c.will_topic = Some("other/will");
        assert_eq!(a.authenticate(true, c), Err(Refusal::WillDenied));
        let open = access(false, None);
        assert!(open.may_write("c", None, "x") && open.may_read("c", None, "x"));
        assert!(open.may_subscribe("c", None, "#"));
        assert!(!a.may_subscribe("c", None, "lan/#"), "write-only rule");
    }
}
