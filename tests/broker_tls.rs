//! TLS and WebSocket listeners of the embedded broker, with certificates made by `openssl` in
//! the test: server-only TLS and mutual TLS (mosquitto_pub/sub and paho), MQTT over
//! WebSockets and secure WebSockets (paho). TLS is served by the broker itself: no plain
//! socket stands behind a TLS listener.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::mqtt::{self, Protocol, SubOptions};
use common::process;
use common::{Ferrule, TIMEOUT};

const WAIT: Duration = Duration::from_secs(20);

/// A CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn new(dir: &Path) -> Pki {
        let openssl = |args: &[&str]| {
            let mut cmd = Command::new("openssl");
            cmd.args(args).current_dir(dir);
            let done = process::run("openssl", &mut cmd, TIMEOUT);
            assert!(done.status.success(), "openssl {args:?}:\n{}", done.tail());
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let mut ca = vec!["req", "-x509", "-days", "2", "-subj", "/CN=ferrule test CA"];
        ca.extend(ec);
        ca.extend(["-keyout", "ca.key", "-out", "ca.crt"]);
        openssl(&ca);
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
        )
        .expect("ext");
        std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").expect("ext");
        for (name, cn) in [("server", "localhost"), ("client", "sensor-7")] {
            let subj = format!("/CN={cn}");
            let key = format!("{name}.key");
            let csr = format!("{name}.csr");
            let mut req = vec!["req", "-subj", &subj];
            req.extend(ec);
            req.extend(["-keyout", &key, "-out", &csr]);
            openssl(&req);
            let crt = format!("{name}.crt");
            let ext = format!("{name}.ext");
            openssl(&[
                "x509",
                "-req",
                "-days",
                "2",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &crt,
                "-extfile",
                &ext,
            ]);
        }
        Pki {
            dir: dir.to_owned(),
        }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_str().expect("UTF-8").to_owned()
    }
}

fn agent(dir: &Path) -> Ferrule {
    let yaml = r#"
site: t
broker:
  allow_anonymous: true
  listeners:
    - bind: "127.0.0.1:0"
      tls: {cert: server.crt, key: server.key}
    - bind: "127.0.0.1:0"
      tls: {cert: server.crt, key: server.key, ca: ca.crt, require_certificate: true}
    - {bind: "127.0.0.1:0", protocol: websockets}
    - bind: "127.0.0.1:0"
      protocol: websockets
      tls: {cert: server.crt, key: server.key}
    - bind: "127.0.0.1:0"
devices:
  - {name: dev, tcp: "127.0.0.1:9", timeout: 100ms, points: [{name: p, kind: holding, address: 0}]}
"#;
    Ferrule::run(&Ferrule::write_config(dir, yaml))
}

#[test]
fn tls_and_websocket_listeners_serve_real_clients() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::new(dir.path());
    let agent = agent(dir.path());
    let ports: Vec<u16> = agent.listener_addrs(5).iter().map(|a| a.port()).collect();
    let (tls, mutual, ws, wss, plain) = (ports[0], ports[1], ports[2], ports[3], ports[4]);
    let ca = pki.path("ca.crt");
    let (cert, key) = (pki.path("client.crt"), pki.path("client.key"));
    let everything = mqtt::sub(plain, "lan/#");

    // Server-only TLS: mosquitto_pub (3.1.1 and 5) and a paho subscriber over TLS.
    let tls_sub = mqtt::sub_with(
        tls,
        &["lan/#"],
        &SubOptions {
            protocol: Protocol::V5,
            extra: vec!["--cafile".into(), ca.clone()],
            ..SubOptions::default()
        },
    );
    for v in ["mqttv311", "mqttv5"] {
        let topic = format!("lan/tls/{v}");
        mqtt::publish_args(
            tls,
            &["--cafile", &ca, "-V", v, "-t", &topic, "-m", "x", "-q", "1"],
        );
    }
    tls_sub.wait_for(WAIT, |m| m.topic == "lan/tls/mqttv5");
    everything.wait_for(WAIT, |m| m.topic == "lan/tls/mqttv311");

    // Mutual TLS: a client certificate signed by the CA is required.
    mqtt::publish_args(
        mutual,
        &[
            "--cafile",
            &ca,
            "--cert",
            &cert,
            "--key",
            &key,
            "-t",
            "lan/mutual",
            "-m",
            "m",
            "-q",
            "1",
        ],
    );
    everything.wait_for(WAIT, |m| m.topic == "lan/mutual");
    let port = mutual.to_string();
    let paho = mqtt::tool(
        &[
            "pub",
            "--port",
            &port,
            "--cafile",
            &ca,
            "--certfile",
            &cert,
            "--keyfile",
            &key,
            "--topic",
            "lan/mutual/paho",
            "--qos",
            "1",
        ],
        WAIT,
    );
    assert!(paho.status.success(), "{}", paho.tail());
    everything.wait_for(WAIT, |m| m.topic == "lan/mutual/paho");
    let refused = mqtt::mosquitto_pub(mutual, &["--cafile", &ca, "-t", "lan/no-cert", "-m", "x"]);
    assert!(!refused.status.success(), "{}", refused.tail());
    agent.wait_for_line("TLS connection refused", WAIT);
    // A plain-text client on a TLS port gets no MQTT session.
    let plain_on_tls = mqtt::mosquitto_pub(tls, &["-t", "lan/plain-on-tls", "-m", "x"]);
    assert!(!plain_on_tls.status.success(), "{}", plain_on_tls.tail());

    // WebSockets and secure WebSockets (paho; subprotocol `mqtt`).
    for (port, extra) in [(ws, vec![]), (wss, vec!["--cafile", ca.as_str()])] {
        for protocol in ["311", "5"] {
            let topic = format!("lan/ws/{port}/{protocol}");
            let port_s = port.to_string();
            let mut args = vec![
                "pub",
                "--port",
                &port_s,
                "--websockets",
                "--protocol",
                protocol,
                "--topic",
                &topic,
                "--qos",
                "1",
            ];
            args.extend(&extra);
            let out = mqtt::tool(&args, WAIT);
            assert!(out.status.success(), "{topic}: {}", out.tail());
            everything.wait_for(WAIT, |m| m.topic == topic);
        }
    }
    let ws_sub = mqtt::sub_with(
        wss,
        &["lan/#"],
        &SubOptions {
            extra: vec!["--websockets".into(), "--cafile".into(), ca.clone()],
            ..SubOptions::default()
        },
    );
    mqtt::publish(plain, "lan/to-wss", "w", 1);
    ws_sub.wait_for(WAIT, |m| m.topic == "lan/to-wss" && m.text() == "w");

    everything.assert_none_for(Duration::from_millis(300), |m| {
        m.topic == "lan/no-cert" || m.topic == "lan/plain-on-tls"
    });
}

#[test]
fn check_reports_unusable_tls_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::new(dir.path());
    let yaml = r#"
site: t
broker:
  listeners:
    - bind: "127.0.0.1:8883"
      tls: {cert: server.crt, key: missing.key}
    - bind: "127.0.0.1:8884"
      tls: {cert: ca.key, key: server.key}
devices:
  - {name: dev, tcp: "127.0.0.1:9", points: [{name: p, kind: holding, address: 0}]}
"#;
    let path = Ferrule::write_config(dir.path(), yaml);
    let out = Ferrule::output(&["check", path.to_str().expect("UTF-8")], WAIT);
    assert_eq!(out.status.code(), Some(2), "{}", out.tail());
    let text = out.lines.join("\n");
    assert!(
        text.contains("broker.listeners[0] (`127.0.0.1:8883`).tls: cannot read TLS key file")
            && text.contains(&pki.path("missing.key")),
        "{text}"
    );
    assert!(
        text.contains("broker.listeners[1] (`127.0.0.1:8884`).tls: TLS certificate file")
            && text.contains("holds no PEM certificate"),
        "{text}"
    );
}
