//! What `ferrule check` says about the `broker` section beyond the config file itself: whether
//! the password, ACL and TLS files it names can be used, and which settings are risky.
//!
//! Errors are what would stop `ferrule run` (a missing or malformed file); warnings are setups
//! that run but are probably not what was meant (passwords in clear text over the network, a
//! listener nobody can log in to).

use super::acl::Acl;
use super::passwd::PasswordFile;
use crate::config::BrokerConfig;

/// The findings about a broker configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Each stops `ferrule run`; they name the file and line.
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

/// Loads the files `config` names and looks at its listeners.
pub fn check(config: &BrokerConfig) -> Report {
    let mut report = Report::default();
    if let Some(path) = &config.password_file {
        if let Err(e) = PasswordFile::load(path) {
            report.errors.push(format!("broker.password_file: {e}"));
        }
    }
    if let Some(path) = &config.acl_file {
        if let Err(e) = Acl::load(path) {
            report.errors.push(format!("broker.acl_file: {e}"));
        }
    }
    for (i, l) in config.listeners.iter().enumerate() {
        let at = format!("broker.listeners[{i}] (`{}`)", l.bind);
        if let Some(tls) = &l.tls {
            if let Err(e) = super::tls::server_config(tls) {
                report.errors.push(format!("{at}.tls: {e}"));
            }
        }
        if l.bind.ip().is_loopback() {
            continue;
        }
        let anonymous = config.anonymous_allowed(l);
        if l.tls.is_none() && config.password_file.is_some() {
            report.warnings.push(format!(
                "{at} is plain text on a non-loopback address: the passwords of \
                 broker.password_file cross the network unencrypted; add `tls` to it"
            ));
        }
        if l.tls.is_none() && anonymous {
            report.warnings.push(format!(
                "{at} accepts anonymous clients in plain text from the network \
                 (allow_anonymous: true)"
            ));
        }
        if !anonymous && config.password_file.is_none() {
            report.warnings.push(format!(
                "no client can connect on {at}: anonymous clients are refused on a non-loopback \
                 address and there is no broker.password_file; add one or set \
                 allow_anonymous: true"
            ));
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::config::Listener;

    fn config(binds: &[&str]) -> BrokerConfig {
        let listeners = binds
            .iter()
            .map(|b| Listener::plain(b.parse().expect("addr")))
            .collect();
        BrokerConfig::with_listeners(listeners, Path::new("/tmp"))
    }

    #[test]
    fn loopback_only_is_quiet() {
        assert_eq!(
            check(&config(&["127.0.0.1:1883", "[::1]:1883"])),
            Report::default()
        );
    }

    #[test]
    fn network_listeners_without_tls_or_credentials_are_flagged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let passwd = dir.path().join("passwd");
        std::fs::write(&passwd, "").expect("write");
        let mut c = config(&["0.0.0.0:1883"]);
        let r = check(&c);
        assert_eq!(r.errors, Vec::<String>::new());
        assert!(r.warnings[0].contains("no client can connect"), "{r:?}");
        c.password_file = Some(passwd);
        let r = check(&c);
        assert_eq!(r.warnings.len(), 1, "{r:?}");
        assert!(
            r.warnings[0].contains("cross the network unencrypted"),
            "{r:?}"
        );
        c.allow_anonymous = Some(true);
        let r = check(&c);
        assert_eq!(r.warnings.len(), 2, "{r:?}");
        assert!(
            r.warnings[1].contains("anonymous clients in plain text"),
            "{r:?}"
        );
    }

    #[test]
    fn unusable_files_are_errors_naming_the_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let acl = dir.path().join("acl");
        std::fs::write(&acl, "topic read ok\ntopic reed x\n").expect("write");
        let mut c = config(&["127.0.0.1:1883"]);
        c.acl_file = Some(acl.clone());
        c.password_file = Some(PathBuf::from("/nonexistent/passwd"));
        let r = check(&c);
        assert_eq!(r.errors.len(), 2, "{r:?}");
        assert!(r.errors[0]
            .starts_with("broker.password_file: cannot read password file /nonexistent/passwd"));
        assert_eq!(
            r.errors[1],
            format!(
                "broker.acl_file: {}:2: `topic`: `reed` is not an access type; expected read, write, readwrite or deny",
                acl.display()
            )
        );
    }
}
