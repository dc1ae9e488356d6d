//! The ways to reach a cloud broker, each against a real Mosquitto: mutual TLS with
//! certificates made by `openssl` (and what happens with the wrong CA or no client
//! certificate), username and password from a file or the environment, and WebSocket (plain and
//! TLS).

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::certs::Pki;
use common::mqtt::{self, SubOptions};
use common::{free_port, Ferrule, Mosquitto};

const WAIT: Duration = Duration::from_secs(30);

/// A gateway forwarding `l/lan/#` upstream; `uplink` is the rest of the uplink section
/// (`url:` included), two-space indented.
fn config(dir: &Path, uplink: &str) -> PathBuf {
    let yaml = format!(
        r#"
site: l
broker:
  listeners: [{{bind: "127.0.0.1:0"}}]
devices:
  - name: dummy
    tcp: "127.0.0.1:9"
    poll: 1h
    points: [{{name: x, kind: holding, address: 0}}]
uplink:
  reconnect: {{initial: 50ms, max: 200ms}}
  forward: [{{local: "l/lan/#", qos: 1}}]
  queue: {{path: queue.db, durability: normal}}
{uplink}"#
    );
    Ferrule::write_config(dir, &yaml)
}

fn depth(config: &Path) -> u64 {
    let config = config.to_str().expect("UTF-8 path");
    let out = Ferrule::output(
        &[
            "queue",
            "stats",
            "--config",
            config,
            "--json",
            "--interval",
            "0",
        ],
        WAIT,
    );
    assert!(out.status.success(), "{}", out.tail());
    let v: serde_json::Value = serde_json::from_str(&out.stdout.join("\n")).expect("JSON");
    v["depth"].as_u64().expect("depth")
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// Mosquitto whose main listener is TLS with `require_certificate true`, plus a plain
/// listener on `plain` for the test's subscriber.
fn mtls_cloud(pki: &Pki, plain: u16) -> Mosquitto {
    Mosquitto::start_with(&[
        &format!("cafile {}", path(&pki.path("ca.pem"))),
        &format!("certfile {}", path(&pki.path("server.pem"))),
        &format!("keyfile {}", path(&pki.path("server.key"))),
        "require_certificate true",
        &format!("listener {plain} 127.0.0.1"),
    ])
}

#[test]
fn mutual_tls_delivers_and_a_wrong_ca_loses_nothing_and_keeps_retrying() {
    let pki = Pki::new();
    let plain = free_port();
    let cloud = mtls_cloud(&pki, plain);
    let upstream = mqtt::sub(plain, "l/lan/#");
    let dir = tempfile::tempdir().expect("tempdir");
    let uplink = |ca: &str, identity: bool| {
        let mut s = format!(
            "  url: \"mqtts://127.0.0.1:{}\"\n  ca: {}\n",
            cloud.port(),
            path(&pki.path(ca))
        );
        if identity {
            s += &format!(
                "  cert: {}\n  key: {}\n",
                path(&pki.path("client.pem")),
                path(&pki.path("client.key"))
            );
        }
        s
    };

    // The wrong CA: a clear error, retried, and everything published meanwhile stays queued.
    let config = config(dir.path(), &uplink("other-ca.pem", true));
    let mut agent = Ferrule::run(&config);
    let line = agent.wait_for_line("uplink disconnected", WAIT);
    assert!(
        line.contains("certificate is not trusted")
            && line.contains("UnknownIssuer")
            && line.contains("uplink.ca"),
        "{line}"
    );
    let local = agent.listener_addr().port();
    mqtt::publish_many_with(local, "l/lan/t", 20, 1, "t-{i}", &[]);
    common::wait::poll_until("three refused handshakes at the broker", WAIT, || {
        let attempts = cloud
            .lines()
            .iter()
            .filter(|l| {
                l.contains("New connection from 127.0.0.1") && l.contains(&cloud.port().to_string())
            })
            .count();
        (attempts >= 3).then_some(())
    });
    assert_eq!(depth(&config), 20, "nothing dropped while the link fails");
    agent.sigterm();
    assert!(agent.wait_exit(WAIT).success());

    // No client certificate: the broker refuses, and the error says what to check.
    let config = crate::config(dir.path(), &uplink("ca.pem", false));
    let mut agent = Ferrule::run(&config);
    let line = agent.wait_for_line("uplink disconnected", WAIT);
    assert!(line.contains("uplink.cert"), "{line}");
    agent.sigterm();
    assert!(agent.wait_exit(WAIT).success());

    // The right CA and a client certificate: the backlog goes up, then live traffic.
    let config = crate::config(dir.path(), &uplink("ca.pem", true));
    let agent = Ferrule::run(&config);
    agent.wait_for_line("uplink connected", WAIT);
    let got = upstream.wait_for_count(20, WAIT);
    let texts: Vec<String> = got.iter().map(|m| m.text()).collect();
    assert_eq!(texts, (0..20).map(|i| format!("t-{i}")).collect::<Vec<_>>());
    mqtt::publish(agent.listener_addr().port(), "l/lan/t", "live", 1);
    upstream.wait_for(WAIT, |m| m.text() == "live");
    cloud.wait_for_line("ferrule-l", WAIT);
}

#[test]
fn username_and_password_come_from_a_file_or_the_environment_and_never_reach_the_log() {
    let secret = "s3cret-Pass_42";
    let cloud = Mosquitto::with_password("gw", secret, &[]);
    let sub_options = SubOptions {
        user: Some("gw".into()),
        password: Some(secret.into()),
        ..SubOptions::default()
    };
    let upstream = mqtt::sub_with(cloud.port(), &["l/lan/#"], &sub_options);
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!(
        "  url: \"mqtt://127.0.0.1:{}\"\n  username: gw\n",
        cloud.port()
    );

    std::fs::write(dir.path().join("password"), format!("{secret}\n")).expect("write");
    let from_file = config(dir.path(), &format!("{url}  password_file: password\n"));
    let mut agent = Ferrule::run(&from_file);
    agent.wait_for_line("uplink connected", WAIT);
    mqtt::publish(agent.listener_addr().port(), "l/lan/a", "from-file", 1);
    upstream.wait_for(WAIT, |m| m.text() == "from-file");
    agent.sigterm();
    assert!(agent.wait_exit(WAIT).success());
    assert!(
        agent.lines().iter().all(|l| !l.contains(secret)),
        "the password was logged"
    );

    let from_env = config(
        dir.path(),
        &format!("{url}  password_env: FERRULE_TEST_UPLINK_PASSWORD\n"),
    );
    let args = ["run", "--config", path(&from_env)];
    let env = [("FERRULE_TEST_UPLINK_PASSWORD", secret)];
    let mut agent = Ferrule::start_with(Ferrule::bin(), &args, &env);
    agent.wait_for_line("uplink connected", WAIT);
    mqtt::publish(agent.listener_addr().port(), "l/lan/a", "from-env", 1);
    upstream.wait_for(WAIT, |m| m.text() == "from-env");
    agent.sigterm();
    assert!(agent.wait_exit(WAIT).success());

    // A wrong password: refused, said so, never printed.
    let env = [("FERRULE_TEST_UPLINK_PASSWORD", "wrong-Pass_99")];
    let agent = Ferrule::start_with(Ferrule::bin(), &args, &env);
    let line = agent.wait_for_line("uplink disconnected", WAIT);
    assert!(
        line.contains("refused the connection") && line.contains("username"),
        "{line}"
    );
    assert!(agent.lines().iter().all(|l| !l.contains("wrong-Pass_99")));

    // A missing variable stops the agent at start with a clear error.
    let out = Ferrule::output_with(Ferrule::bin(), &args, &[], WAIT);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.tail()
            .contains("FERRULE_TEST_UPLINK_PASSWORD is not set"),
        "{}",
        out.tail()
    );
}

#[test]
fn websocket_and_secure_websocket_uplinks() {
    let pki = Pki::new();
    let (ws, wss) = (free_port(), free_port());
    let cloud = Mosquitto::start_with(&[
        &format!("listener {ws} 127.0.0.1"),
        "protocol websockets",
        &format!("listener {wss} 127.0.0.1"),
        "protocol websockets",
        &format!("certfile {}", path(&pki.path("server.pem"))),
        &format!("keyfile {}", path(&pki.path("server.key"))),
    ]);
    let upstream = mqtt::sub(cloud.port(), "l/lan/#");
    let (dir_ws, dir_wss) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    let plain = Ferrule::run(&config(
        dir_ws.path(),
        &format!("  url: \"ws://127.0.0.1:{ws}/mqtt\"\n"),
    ));
    let secure = Ferrule::run(&config(
        dir_wss.path(),
        &format!(
            "  url: \"wss://127.0.0.1:{wss}/mqtt\"\n  ca: {}\n  client_id: gw-wss\n",
            path(&pki.path("ca.pem"))
        ),
    ));
    plain.wait_for_line("uplink connected", WAIT);
    secure.wait_for_line("uplink connected", WAIT);
    mqtt::publish(plain.listener_addr().port(), "l/lan/ws", "over ws", 1);
    mqtt::publish(secure.listener_addr().port(), "l/lan/wss", "over wss", 1);
    assert_eq!(upstream.wait_for_topic("l/lan/ws", WAIT).text(), "over ws");
    assert_eq!(
        upstream.wait_for_topic("l/lan/wss", WAIT).text(),
        "over wss"
    );
}
