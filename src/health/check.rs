//! What `ferrule check` warns about for running as a service: endpoints reachable from the
//! network without protection, and ports the shipped unit cannot bind.

use super::metrics;

/// What `ferrule check` warns about for running as a service: a metrics endpoint reachable
/// from the network, and ports below 1024, which the shipped unit (no capabilities) cannot
/// bind.
pub fn check(config: &crate::config::Config) -> Vec<String> {
    let mut warnings = metrics::check(config);
    if let Some(s) = config.status.filter(|s| s.is_exposed()) {
        if config.broker.password_file.is_none() {
            warnings.push(format!(
                "status.bind `{}` is not a loopback address but broker.password_file is not set: \
                 the page requires a login there and nobody can log in; set a password file \
                 (the page's users are the broker's) or bind the page to 127.0.0.1",
                s.bind
            ));
        }
        if !config.broker.listeners.iter().any(|l| l.tls.is_some()) {
            warnings.push(format!(
                "status.bind `{}` is not a loopback address and no broker listener has TLS: \
                 logins to the page travel in clear text (the page uses the certificate of \
                 the first TLS listener)",
                s.bind
            ));
        }
    }
    let ports = config
        .broker
        .listeners
        .iter()
        .enumerate()
        .map(|(i, l)| (format!("broker.listeners[{i}]"), l.bind))
        .chain(config.metrics.map(|m| ("metrics.bind".to_owned(), m.bind)))
        .chain(config.status.map(|s| ("status.bind".to_owned(), s.bind)));
    for (what, addr) in ports {
        if addr.port() != 0 && addr.port() < 1024 {
            warnings.push(format!(
                "{what} `{addr}` is a port below 1024: binding it needs CAP_NET_BIND_SERVICE, \
                 which systemd/ferrule.service does not grant (see the comment there)"
            ));
        }
    }
    warnings
}

#[cfg(test)]
mod tests {
    use crate::config::parse;
    use crate::config::testing::{origin, MINIMAL};

    #[test]
    fn check_warns_about_an_exposed_status_page_without_password_file_or_tls(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let local = parse(&format!("{MINIMAL}status: {{}}\n"), &origin())?;
        assert!(super::check(&local).is_empty());
        let open = parse(
            &format!("{MINIMAL}status: {{bind: \"0.0.0.0:9109\"}}\n"),
            &origin(),
        )?;
        let warnings = super::check(&open).join("\n");
        assert!(
            warnings.contains("status.bind `0.0.0.0:9109`")
                && warnings.contains("password_file is not set")
                && warnings.contains("no broker listener has TLS"),
            "{warnings}"
        );
        Ok(())
    }

    #[test]
    fn metrics_are_off_by_default_and_on_loopback_when_present(
    ) -> Result<(), Box<dyn std::error::Error>> {
        assert_eq!(parse(MINIMAL, &origin())?.metrics, None);
        let on = parse(&format!("{MINIMAL}metrics: {{}}\n"), &origin())?;
        assert_eq!(
            on.metrics.map(|m| m.bind.to_string()).as_deref(),
            Some("127.0.0.1:9108")
        );
        assert!(crate::health::metrics::check(&on).is_empty());
        let bare = parse(&format!("{MINIMAL}metrics:\n"), &origin())?;
        assert_eq!(
            bare.metrics, None,
            "an empty section is absent, as for uplink"
        );
        let open = parse(
            &format!("{MINIMAL}metrics: {{bind: \"0.0.0.0:9108\"}}\n"),
            &origin(),
        )?;
        assert!(crate::health::metrics::check(&open)[0].contains("not a loopback address"));
        let bad = parse(
            &format!("{MINIMAL}metrics: {{bind: nowhere, port: 1}}\n"),
            &origin(),
        );
        let text = bad.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            text.contains("metrics.bind") && text.contains("port"),
            "{text}"
        );
        Ok(())
    }
}
