//! Who may see the page and who may write from it: the broker's own users.
//!
//! - A page bound to anything but loopback requires a login, checked against the broker's
//!   `password_file` (Mosquitto hashes, [`crate::broker::passwd`]); without a password file
//!   nobody can log in there (and `ferrule check` warns). On loopback the viewer is anonymous.
//! - A write to a point's `.../set` topic needs `write` access to it in the broker's
//!   `acl_file` ([`crate::broker::acl`]), for the logged-in user (or the anonymous rules); no
//!   ACL file allows every write, as in Mosquitto.
//!
//! The files are read at each login and each write check, so a changed password or ACL takes
//! effect at once, as for the broker after a reload. Sessions are random 256-bit tokens in an
//! `HttpOnly; SameSite=Strict` cookie, kept in memory for [`SESSION_LIFETIME`], at most
//! [`MAX_SESSIONS`] (the oldest goes first).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use ring::rand::{SecureRandom as _, SystemRandom};

use crate::broker::acl::{self, Acl};
use crate::broker::passwd::{PasswordFile, Verdict};
use crate::config::BrokerConfig;

/// How long a login lasts.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at once.
pub const MAX_SESSIONS: usize = 256;
/// The session cookie's name.
pub const COOKIE: &str = "ferrule_session";
/// The client id the page's writes carry (audit trail, ACL `%c` patterns).
pub const CLIENT_ID: &str = "ferrule-status-page";

/// Why a login failed.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("wrong user name or password")]
    Refused,
    #[error(
        "the broker has no password_file: nobody can log in to a page on a non-loopback address"
    )]
    NoPasswordFile,
    #[error("{0}")]
    Unreadable(String),
}

#[derive(Debug, Clone, Default)]
struct Files {
    password_file: Option<PathBuf>,
    acl_file: Option<PathBuf>,
}

/// Logins and write permissions of the page.
#[derive(Debug)]
pub struct Auth {
    required: bool,
    files: RwLock<Files>,
    sessions: Mutex<HashMap<String, (String, Instant)>>,
    rng: SystemRandom,
}

impl Auth {
    /// `required`: the page is bound to a non-loopback address.
    pub fn new(required: bool, broker: &BrokerConfig) -> Self {
        let auth = Self {
            required,
            files: RwLock::default(),
            sessions: Mutex::default(),
            rng: SystemRandom::new(),
        };
        auth.set_broker(broker);
        auth
    }

    /// The broker section in force (after a reload).
    pub fn set_broker(&self, broker: &BrokerConfig) {
        *self.files.write().unwrap_or_else(PoisonError::into_inner) = Files {
            password_file: broker.password_file.clone(),
            acl_file: broker.acl_file.clone(),
        };
    }

    pub fn required(&self) -> bool {
        self.required
    }

    fn files(&self) -> Files {
        self.files
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Checks `user`/`password` (slow on purpose: PBKDF2; call off the async workers) and
    /// opens a session: its token.
    pub fn login(&self, user: &str, password: &str) -> Result<String, LoginError> {
        let path = self
            .files()
            .password_file
            .ok_or(LoginError::NoPasswordFile)?;
        let file = PasswordFile::load(&path).map_err(|e| LoginError::Unreadable(e.to_string()))?;
        if file.verify(user, password.as_bytes()) != Verdict::Valid {
            return Err(LoginError::Refused);
        }
        let mut bytes = [0u8; 32];
        self.rng
            .fill(&mut bytes)
            .map_err(|_| LoginError::Unreadable("no system randomness".into()))?;
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        sessions.retain(|_, (_, at)| at.elapsed() < SESSION_LIFETIME);
        if sessions.len() >= MAX_SESSIONS {
            let oldest = sessions
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(t, _)| t.clone());
            if let Some(t) = oldest {
                sessions.remove(&t);
            }
        }
        sessions.insert(token.clone(), (user.to_owned(), Instant::now()));
        Ok(token)
    }

    /// The user of the session named by a `Cookie` header, if it is valid.
    pub fn user(&self, cookie_header: Option<&str>) -> Option<String> {
        let token = session_token(cookie_header?)?;
        let sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        sessions
            .get(token)
            .filter(|(_, at)| at.elapsed() < SESSION_LIFETIME)
            .map(|(u, _)| u.clone())
    }

    pub fn logout(&self, cookie_header: Option<&str>) {
        if let Some(token) = cookie_header.and_then(session_token) {
            self.sessions
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(token);
        }
    }

    /// The ACL in force (`None`: no ACL file, every write allowed); an unreadable file allows
    /// nothing.
    pub fn acl(&self) -> Result<Option<Acl>, String> {
        match self.files().acl_file {
            None => Ok(None),
            Some(path) => Acl::load(&path).map(Some).map_err(|e| e.to_string()),
        }
    }
}

/// Whether `user` (or an anonymous viewer) may publish to `topic` under `acl`.
pub fn may_write(acl: Option<&Acl>, user: Option<&str>, topic: &str) -> bool {
    acl.is_none_or(|acl| {
        acl.may_write(
            acl::Client {
                id: CLIENT_ID,
                username: user,
            },
            topic,
        )
    })
}

/// The session token in a `Cookie` header (pure).
pub fn session_token(header: &str) -> Option<&str> {
    header
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, v)| v)
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let t = "ab".repeat(32);
        assert_eq!(
            session_token(&format!("a=1; {COOKIE}={t}; b=2")),
            Some(t.as_str())
        );
        assert_eq!(session_token(&format!("{COOKIE}=short")), None);
        assert_eq!(session_token("a=1"), None);
    }

    #[test]
    fn logins_are_checked_against_the_password_file() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("passwd");
        let line = crate::broker::passwd::entry("ann", "secret", std::num::NonZeroU32::MIN)?;
        std::fs::write(&path, format!("{line}\n"))?;
        let origin = crate::config::Origin {
            name: "t.yaml".into(),
            base_dir: dir.path().into(),
            state_dir: dir.path().into(),
        };
        let yaml = "site: p\ndevices:\n  - {name: b, tcp: \"127.0.0.1:502\", points: [{name: t, address: 1}]}\n";
        let mut broker = crate::config::parse(yaml, &origin)?.broker;
        let auth = Auth::new(true, &broker);
        assert!(matches!(
            auth.login("ann", "secret"),
            Err(LoginError::NoPasswordFile)
        ));
        broker.password_file = Some(path);
        auth.set_broker(&broker);
        assert!(matches!(
            auth.login("ann", "wrong"),
            Err(LoginError::Refused)
        ));
        assert!(matches!(
            auth.login("bob", "secret"),
            Err(LoginError::Refused)
        ));
        let token = auth.login("ann", "secret")?;
        let cookie = format!("{COOKIE}={token}");
        assert_eq!(auth.user(Some(&cookie)).as_deref(), Some("ann"));
        auth.logout(Some(&cookie));
        assert_eq!(auth.user(Some(&cookie)), None);
        Ok(())
    }

    #[test]
    fn writes_follow_the_acl() -> Result<(), Box<dyn std::error::Error>> {
        let acl = Acl::parse("user ann\ntopic write p/+/+/set\nuser bob\ntopic read p/#\n")
            .map_err(|(l, m)| format!("{l}: {m}"))?;
        assert!(may_write(Some(&acl), Some("ann"), "p/boiler/sp/set"));
        assert!(!may_write(Some(&acl), Some("bob"), "p/boiler/sp/set"));
        assert!(!may_write(Some(&acl), None, "p/boiler/sp/set"));
        assert!(may_write(None, None, "p/boiler/sp/set"));
        Ok(())
    }
}
