//! Recognises a Mosquitto configuration given where a ferrule config is expected, so that
//! `check` and `run` can say so and name `ferrule migrate` instead of a YAML error.
//!
//! Invariant: only a text whose every significant line starts with a Mosquitto option name
//! (and which does not parse as a YAML mapping) is taken for a Mosquitto config.

/// What `check` and `run` say about the Mosquitto config `file`.
pub fn message(file: &str) -> String {
    format!(
        "this looks like a Mosquitto configuration (mosquitto.conf), not a ferrule config; \
         convert it with `ferrule migrate {file} -o ferrule.yaml`, which also lists the options \
         ferrule cannot honour"
    )
}

/// Option names that start lines of a `mosquitto.conf` (Mosquitto 2.0, `man mosquitto.conf`).
const OPTIONS: &[&str] = &[
    "acl_file",
    "address",
    "addresses",
    "allow_anonymous",
    "allow_duplicate_messages",
    "allow_zero_length_clientid",
    "auth_plugin",
    "auth_opt_",
    "auto_id_prefix",
    "autosave_interval",
    "autosave_on_changes",
    "bind_address",
    "bind_interface",
    "bridge_attempt_unsubscribe",
    "bridge_bind_address",
    "bridge_cafile",
    "bridge_capath",
    "bridge_certfile",
    "bridge_identity",
    "bridge_insecure",
    "bridge_keyfile",
    "bridge_max_packet_size",
    "bridge_outgoing_retain",
    "bridge_protocol_version",
    "bridge_psk",
    "bridge_require_ocsp",
    "bridge_tls_version",
    "cafile",
    "capath",
    "certfile",
    "check_retain_source",
    "ciphers",
    "ciphers_tls1.3",
    "cleansession",
    "clientid",
    "clientid_prefixes",
    "connection",
    "connection_messages",
    "crlfile",
    "dhparamfile",
    "enable_control_api",
    "http_dir",
    "idle_timeout",
    "include_dir",
    "keepalive_interval",
    "keyfile",
    "listener",
    "local_cleansession",
    "local_clientid",
    "local_password",
    "local_username",
    "log_dest",
    "log_facility",
    "log_timestamp",
    "log_timestamp_format",
    "log_type",
    "max_connections",
    "max_inflight_bytes",
    "max_inflight_messages",
    "max_keepalive",
    "max_packet_size",
    "max_qos",
    "max_queued_bytes",
    "max_queued_messages",
    "max_topic_alias",
    "memory_limit",
    "message_size_limit",
    "mount_point",
    "notifications",
    "notification_topic",
    "notifications_local_only",
    "password_file",
    "per_listener_settings",
    "persistence",
    "persistence_file",
    "persistence_location",
    "persistent_client_expiration",
    "pid_file",
    "plugin",
    "plugin_opt_",
    "port",
    "protocol",
    "psk_file",
    "psk_hint",
    "queue_qos0_messages",
    "remote_clientid",
    "remote_password",
    "remote_username",
    "require_certificate",
    "restart_timeout",
    "retain_available",
    "round_robin",
    "set_tcp_nodelay",
    "socket_domain",
    "start_type",
    "sys_interval",
    "threshold",
    "tls_engine",
    "tls_keyform",
    "tls_version",
    "topic",
    "try_private",
    "upgrade_outgoing_qos",
    "use_identity_as_username",
    "use_subject_as_username",
    "use_username_as_clientid",
    "user",
    "websockets_headers_size",
    "websockets_log_level",
];

/// Whether `text` reads as a Mosquitto config: at least one option line, every non-comment
/// line an option name followed by a space (or alone), none in YAML `key: value` form.
pub fn looks_like_mosquitto(text: &str) -> bool {
    let mut options = 0;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let word = line.split_whitespace().next().unwrap_or_default();
        let known = OPTIONS
            .iter()
            .any(|o| word == *o || (o.ends_with('_') && word.starts_with(o)));
        if !known || word.ends_with(':') {
            return false;
        }
        options += 1;
    }
    options > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mosquitto_configs_are_recognised_and_yaml_is_not() {
        let debian = "# Place your local configuration in /etc/mosquitto/conf.d/\n\
            pid_file /run/mosquitto/mosquitto.pid\n\npersistence true\n\
            persistence_location /var/lib/mosquitto/\n\n\
            log_dest file /var/log/mosquitto/mosquitto.log\n\ninclude_dir /etc/mosquitto/conf.d\n";
        assert!(looks_like_mosquitto(debian));
        assert!(looks_like_mosquitto(
            "listener 18970\nallow_anonymous true\n"
        ));
        assert!(!looks_like_mosquitto("site: plant1\n"));
        assert!(!looks_like_mosquitto("# only a comment\n"));
        assert!(!looks_like_mosquitto("listener 1883\nsite plant\n"));
    }
}
