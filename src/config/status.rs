//! The `status` section: the live status page (see `crate::status`).
//!
//! ```yaml
//! status: {bind: "127.0.0.1:9109"}
//! ```
//!
//! Present means on; `status: {}` listens on [`DEFAULT_STATUS_BIND`] (loopback). An empty
//! `status:` is absent (off), as for the other sections. Who may log in and write is the
//! broker's business (`password_file`, `acl_file`): the page has no users of its own.

use std::net::{Ipv4Addr, SocketAddr};

use serde_yaml::Value;

use super::decode::{map, Ctx};

/// Where the status page listens when the section is present without `bind`: loopback only.
pub const DEFAULT_STATUS_BIND: &str = "127.0.0.1:9109";

const KEYS: &[&str] = &["bind"];

/// The `status` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusConfig {
    /// Address of the page's HTTP(S) listener (defaults to [`DEFAULT_STATUS_BIND`]); port 0
    /// picks a free port (logged at start). Anything but loopback requires a login.
    pub bind: SocketAddr,
}

impl StatusConfig {
    /// Whether the page is reachable from the network (and so needs a login and TLS).
    pub fn is_exposed(&self) -> bool {
        !self.bind.ip().is_loopback()
    }
}

/// Decodes the section.
pub(super) fn status(cx: &mut Ctx, node: &Value) -> Option<StatusConfig> {
    let m = map(cx, node, KEYS)?;
    let default = DEFAULT_STATUS_BIND
        .parse()
        .unwrap_or(SocketAddr::from((Ipv4Addr::LOCALHOST, 9109)));
    let bind = m.or(cx, "bind", default);
    Some(StatusConfig { bind: bind? })
}

#[cfg(test)]
mod tests {
    use crate::config::parse;
    use crate::config::testing::{origin, MINIMAL};

    #[test]
    fn status_is_off_by_default_and_on_loopback_when_present(
    ) -> Result<(), Box<dyn std::error::Error>> {
        assert_eq!(parse(MINIMAL, &origin())?.status, None);
        let on = parse(&format!("{MINIMAL}status: {{}}\n"), &origin())?.status;
        assert_eq!(
            on.map(|s| s.bind.to_string()).as_deref(),
            Some("127.0.0.1:9109")
        );
        assert_eq!(on.map(|s| s.is_exposed()), Some(false));
        let open = parse(
            &format!("{MINIMAL}status: {{bind: \"0.0.0.0:8080\"}}\n"),
            &origin(),
        )?;
        assert_eq!(open.status.map(|s| s.is_exposed()), Some(true));
        let bad = parse(
            &format!("{MINIMAL}status: {{bind: 8080, user: x}}\n"),
            &origin(),
        );
        let text = bad.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            text.contains("status.bind") && text.contains("user"),
            "{text}"
        );
        Ok(())
    }
}
