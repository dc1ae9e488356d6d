//! `ferrule migrate` with real Mosquitto: Debian's shipped `mosquitto.conf`, a configuration
//! exercising the options the migration maps (listeners plain / WebSockets / TLS, password and
//! ACL files, limits, persistence, a bridge with prefixes, credentials and topic directions),
//! and the refusals. The mapped configuration is first served by a real Mosquitto, then by
//! ferrule running the migrated YAML: the same clients with the same credentials get the same
//! answers from both, and the bridge / uplink moves the same messages to the same cloud.

mod common;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::certs::Pki;
use common::mqtt::{self, SubOptions, Subscription};
use common::process::Proc;
use common::{free_port, program, Ferrule, Mosquitto, TIMEOUT};

const WAIT: Duration = Duration::from_secs(30);

/// Exit code of `migrate` when some options are not honoured.
const UNHONOURED: i32 = 3;

/// Debian's /etc/mosquitto/mosquitto.conf (package mosquitto 2.0), as shipped.
const DEBIAN_CONF: &str = "\
# Place your local configuration in /etc/mosquitto/conf.d/
#
# A full description of the configuration file is at
# /usr/share/doc/mosquitto/examples/mosquitto.conf.example

pid_file /run/mosquitto/mosquitto.pid

persistence true
persistence_location /var/lib/mosquitto/

log_dest file /var/log/mosquitto/mosquitto.log

include_dir /etc/mosquitto/conf.d
";

fn migrate(args: &[&str]) -> (i32, String) {
    let mut all = vec!["migrate"];
    all.extend_from_slice(args);
    let out = Ferrule::output(&all, WAIT);
    (out.status.code().unwrap_or(-1), out.lines.join("\n"))
}

fn check_ok(config: &Path) -> String {
    let out = Ferrule::output(&["check", config.to_str().expect("utf-8")], WAIT);
    assert!(out.status.success(), "check failed:\n{}", out.tail());
    out.stdout.join("\n")
}

#[test]
fn debian_shipped_config_migrates_and_lists_what_ferrule_does_not_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The shipped file, read where Debian installs it when present, and as shipped otherwise.
    let installed = Path::new("/etc/mosquitto/mosquitto.conf");
    let conf = if installed.is_file() {
        installed.to_path_buf()
    } else {
        let conf_d = dir.path().join("conf.d");
        std::fs::create_dir(&conf_d).expect("mkdir");
        std::fs::write(
            conf_d.join("README"),
            "Any files placed in this directory that have a \".conf\" ending will be loaded\n",
        )
        .expect("write");
        let path = dir.path().join("mosquitto.conf");
        let text = DEBIAN_CONF.replace("/etc/mosquitto/conf.d", &conf_d.display().to_string());
        std::fs::write(&path, text).expect("write");
        path
    };
    let out = dir.path().join("ferrule.yaml");
    let (code, report) = migrate(&[
        conf.to_str().expect("utf-8"),
        "-o",
        out.to_str().expect("utf-8"),
    ]);
    assert_eq!(code, UNHONOURED, "{report}");
    let name = conf.display().to_string();
    assert!(
        report.contains(&format!("{name}: 2 option(s) mapped")),
        "{report}"
    );
    assert!(report.contains(&format!("{name}:6: not honoured: `pid_file /run/mosquitto/mosquitto.pid`: ferrule writes no pid file")), "{report}");
    assert!(report.contains(&format!("{name}:11: not honoured: `log_dest file /var/log/mosquitto/mosquitto.log`: ferrule logs to stderr only")), "{report}");
    let yaml = std::fs::read_to_string(&out).expect("written");
    assert!(
        yaml.contains(&format!(
            "# {name}:8 `persistence true`\n  persistence: true"
        )),
        "{yaml}"
    );
    assert!(
        yaml.contains("persistence_file: \"/var/lib/mosquitto/ferrule-broker.db\""),
        "{yaml}"
    );
    // No listener in the file: Mosquitto 2's local-only mode, ferrule's default listeners.
    let summary = check_ok(&out);
    assert!(
        summary.contains("broker listeners: 127.0.0.1:1883, [::1]:1883"),
        "{summary}"
    );
    // `check` on the Mosquitto file itself points at `migrate`.
    let out = Ferrule::output(&["check", conf.to_str().expect("utf-8")], WAIT);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.tail().contains(&format!("this looks like a Mosquitto configuration (mosquitto.conf), not a ferrule config; convert it with `ferrule migrate {name} -o ferrule.yaml`")), "{}", out.tail());
}

#[test]
fn refusals_name_the_line_and_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("m.conf");
    std::fs::write(
        &conf,
        "listener 1883\nbind_interface eth0\nmax_connections 10\nlistener 8883\nmax_connections 5\n\
         log_type all\nconnection a\naddress cloud:1883\ntopic # out 1 local/ remote/\nnotifications false\n\
         connection b\naddress other:1883\nmystery_option 1\n",
    )
    .expect("write");
    let (code, report) = migrate(&[conf.to_str().expect("utf-8")]);
    assert_eq!(code, UNHONOURED, "{report}");
    let at = |line: usize| format!("{}:{line}: not honoured: ", conf.display());
    for (line, reason) in [
        (2, "ferrule binds addresses, not interfaces"),
        (
            3,
            "ferrule's max_connections is broker-wide, not per listener",
        ),
        (
            5,
            "ferrule's max_connections is broker-wide, not per listener",
        ),
        (6, "log levels are set with RUST_LOG"),
        (
            9,
            "cannot strip the prefix `local/` before a multi-level wildcard",
        ),
        (
            10,
            "ferrule always publishes its state on `{site}/$agent/state`",
        ),
        (
            11,
            "ferrule has one uplink: only the first `connection` is migrated",
        ),
        (12, "belongs to a second bridge; ferrule has one uplink"),
        (13, "not a Mosquitto 2.0 option ferrule knows"),
    ] {
        let line_report = report
            .lines()
            .find(|l| l.starts_with(&at(line)))
            .unwrap_or_else(|| panic!("nothing about line {line} in:\n{report}"));
        assert!(line_report.contains(reason), "line {line}: {line_report}");
    }
    // Written to standard output, still a valid config.
    assert!(report.contains("url: \"mqtt://cloud:1883\""), "{report}");
}

/// A Mosquitto running `conf` as written (the listeners of the file), ready when `port`
/// accepts connections.
fn mosquitto_with(conf: &Path, port: u16) -> Proc {
    let binary = program("mosquitto", "FERRULE_MOSQUITTO");
    let proc = Proc::spawn(
        "mosquitto (the conf under test)",
        Command::new(binary).arg("-c").arg(conf),
    );
    common::wait::poll_until(format!("mosquitto on port {port}"), TIMEOUT, || {
        TcpStream::connect(("127.0.0.1", port)).ok()
    });
    proc
}

struct Site {
    plain: u16,
    ws: u16,
    tls: u16,
    ca: PathBuf,
}

fn creds(extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = ["--user", "alice", "--password", "wonderland"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    v.extend(extra.iter().map(|s| (*s).to_owned()));
    v
}

/// What a client of the site sees; the same for Mosquitto and for ferrule.
fn observe(site: &Site, cloud: &Mosquitto, cloud_sub: &Subscription, run: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let code = |port: u16, args: &[String]| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        mqtt::connect(port, &args).code
    };
    seen.push(format!("anonymous on plain: {}", code(site.plain, &[])));
    seen.push(format!(
        "wrong password on plain: {}",
        code(
            site.plain,
            &[
                "--user".into(),
                "alice".into(),
                "--password".into(),
                "x".into()
            ]
        )
    ));
    seen.push(format!("alice on plain: {}", code(site.plain, &creds(&[]))));
    seen.push(format!(
        "alice on websockets: {}",
        code(site.ws, &creds(&["--websockets"]))
    ));
    let ca = site.ca.display().to_string();
    seen.push(format!(
        "alice on tls: {}",
        code(site.tls, &creds(&["--cafile", &ca]))
    ));

    // ACL: alice reads sensors/# and cmd/#, writes sensors/#; bob nothing but his own topic.
    let options = SubOptions {
        user: Some("alice".into()),
        password: Some("wonderland".into()),
        ..SubOptions::default()
    };
    let local = mqtt::sub_with(site.plain, &["sensors/#", "cmd/#", "secret/#"], &options);
    let alice = creds(&[]);
    let alice: Vec<&str> = alice.iter().map(String::as_str).collect();
    let payload = format!("{run}-denied");
    mqtt::publish_many_with(site.plain, "secret/x", 1, 1, &payload, &alice);
    let payload = format!("{run}-t1");
    mqtt::publish_many_with(site.plain, "sensors/t1", 1, 1, &payload, &alice);
    let m = local.wait_for(WAIT, |m| m.topic == "sensors/t1");
    seen.push(format!("local sensors/t1: {}", m.text()));
    // Out over the bridge / uplink, under the remote prefix.
    let up = cloud_sub.wait_for(WAIT, |m| m.text() == format!("{run}-t1"));
    seen.push(format!("cloud got {} qos {}", up.topic, up.qos));
    // In from the cloud, the remote prefix removed.
    let payload = format!("{run}-go");
    mqtt::publish_many_with(
        cloud.port(),
        "site1/cmd/go",
        1,
        1,
        &payload,
        &["--user", "bridge", "--password", "secret"],
    );
    let m = local.wait_for(WAIT, |m| m.topic == "cmd/go");
    seen.push(format!("local {}: {}", m.topic, m.text()));
    seen.push(format!(
        "denied publish delivered: {}",
        local
            .messages()
            .iter()
            .any(|m| m.topic.starts_with("secret/"))
    ));
    seen
}

#[test]
fn the_migrated_config_serves_the_same_clients_as_mosquitto() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::new();
    let cloud = Mosquitto::with_password("bridge", "secret", &[]);
    let cloud_options = SubOptions {
        user: Some("bridge".into()),
        password: Some("secret".into()),
        ..SubOptions::default()
    };
    let cloud_sub = mqtt::sub_with(cloud.port(), &["site1/#"], &cloud_options);

    let passwd = dir.path().join("passwd");
    for (i, (user, password)) in [("alice", "wonderland"), ("bob", "builder")]
        .iter()
        .enumerate()
    {
        let mut cmd = Command::new(program("mosquitto_passwd", "FERRULE_MOSQUITTO_PASSWD"));
        if i == 0 {
            cmd.arg("-c");
        }
        cmd.arg("-b").arg(&passwd).args([user, password]);
        let done = common::process::run("mosquitto_passwd", &mut cmd, TIMEOUT);
        assert!(done.status.success(), "{}", done.tail());
    }
    std::fs::write(
        dir.path().join("acl"),
        "user alice\ntopic readwrite sensors/#\ntopic read cmd/#\ntopic read secret/#\n\nuser bob\ntopic bob/#\n",
    )
    .expect("acl");
    let site = Site {
        plain: free_port(),
        ws: free_port(),
        tls: free_port(),
        ca: pki.path("ca.pem"),
    };
    let state = dir.path().join("state");
    std::fs::create_dir(&state).expect("mkdir");
    let conf_text = format!(
        "# a site's broker and its bridge to the cloud
user root
per_listener_settings false
allow_anonymous false
password_file {dir}/passwd
acl_file {dir}/acl
persistence true
persistence_location {state}/
max_queued_messages 500
max_inflight_messages 10
max_packet_size 65536
max_keepalive 120
sys_interval 5
set_tcp_nodelay true
persistent_client_expiration 2d
log_dest stderr
log_type error
log_type warning
log_type notice
log_type information

listener {plain} 127.0.0.1

listener {ws} 127.0.0.1
protocol websockets

listener {tls} 127.0.0.1
certfile {server}
keyfile {key}
cafile {ca}
require_certificate false

connection cloud
address 127.0.0.1:{cloud}
remote_username bridge
remote_password secret
remote_clientid site1-bridge
topic sensors/# out 1 \"\" site1/
topic cmd/+ in 1 \"\" site1/
cleansession true
notifications true
keepalive_interval 30
restart_timeout 1,5
",
        state = state.display(),
        dir = dir.path().display(),
        plain = site.plain,
        ws = site.ws,
        tls = site.tls,
        server = pki.path("server.pem").display(),
        key = pki.path("server.key").display(),
        ca = pki.path("ca.pem").display(),
        cloud = cloud.port(),
    );
    let conf = dir.path().join("mosquitto.conf");
    std::fs::write(&conf, &conf_text).expect("write");

    // Every option maps: exit 0, the password moved to a 0600 file beside the output.
    let out_dir = dir.path().join("ferrule");
    std::fs::create_dir(&out_dir).expect("mkdir");
    let out = out_dir.join("ferrule.yaml");
    let (code, report) = migrate(&[
        conf.to_str().expect("utf-8"),
        "-o",
        out.to_str().expect("utf-8"),
        "--site",
        "site1",
    ]);
    assert_eq!(code, 0, "{report}");
    assert!(report.contains("0 not honoured"), "{report}");
    let yaml = std::fs::read_to_string(&out).expect("written");
    assert!(
        !yaml.contains("secret"),
        "the password stays out of the config:\n{yaml}"
    );
    let secret = out_dir.join("uplink-password");
    assert_eq!(
        std::fs::read_to_string(&secret).expect("password file"),
        "secret"
    );
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&secret)
            .expect("meta")
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let summary = check_ok(&out);
    assert!(
        summary.contains(&format!(
            "broker listeners: 127.0.0.1:{}, 127.0.0.1:{} websockets, 127.0.0.1:{} tls",
            site.plain, site.ws, site.tls
        )),
        "{summary}"
    );
    assert!(
        summary.contains(&format!(
            "uplink: mqtt://127.0.0.1:{} (MQTT 3.1.1) as site1-bridge",
            cloud.port()
        )),
        "{summary}"
    );

    // The reference: Mosquitto itself on the original file.
    let mut reference = mosquitto_with(&conf, site.plain);
    let expected = observe(&site, &cloud, &cloud_sub, "mosquitto");
    reference.signal("TERM");
    reference.wait_exit(TIMEOUT);

    let agent = Ferrule::start_with(
        Ferrule::bin(),
        &["run", "--config", out.to_str().expect("utf-8")],
        &[("STATE_DIRECTORY", state.to_str().expect("utf-8"))],
    );
    agent.wait_for_line("uplink connected", WAIT);
    let got = observe(&site, &cloud, &cloud_sub, "ferrule");
    let normalise = |v: &[String], run: &str| -> Vec<String> {
        v.iter().map(|l| l.replace(run, "RUN")).collect()
    };
    assert_eq!(
        normalise(&got, "ferrule"),
        normalise(&expected, "mosquitto"),
        "ferrule on the migrated config answers as Mosquitto on the original"
    );
    // And the answers are the ones the configuration means.
    let expected = normalise(&expected, "mosquitto");
    assert_eq!(expected[0], "anonymous on plain: 5");
    assert_eq!(expected[2], "alice on plain: 0");
    assert_eq!(expected[6], "cloud got site1/sensors/t1 qos 1");
    assert_eq!(expected[7], "local cmd/go: RUN-go");
    assert_eq!(expected[8], "denied publish delivered: false");
}
