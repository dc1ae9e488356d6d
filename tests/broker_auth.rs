//! The embedded broker's access control with real clients: Mosquitto password files (written
//! by the real `mosquitto_passwd`, and by `ferrule passwd` for a real Mosquitto), CONNACK codes
//! for refused clients (mosquitto_pub and paho, MQTT 3.1.1 and 5), the anonymous policy of
//! network listeners, and ACL files: SUBACK 0x80 / 0x87, refused publishes, per-message read
//! access, the will topic, and ferrule's own command topics.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::mqtt::{self, Protocol, SubOptions};
use common::{program, Ferrule, Mosquitto, TIMEOUT};

const WAIT: Duration = Duration::from_secs(20);

/// A gateway named `b` with one unreachable device `dev` (point `p`) and this `broker` section.
fn agent(dir: &Path, broker: &str) -> Ferrule {
    let yaml = format!(
        "site: b\nbroker:\n{broker}\ndevices:\n  - {{name: dev, tcp: \"127.0.0.1:9\", timeout: 100ms, \
         points: [{{name: p, kind: holding, address: 0, writable: true}}]}}\n"
    );
    Ferrule::run(&Ferrule::write_config(dir, &yaml))
}

/// `mosquitto_passwd -b [-H hash] FILE USER PASSWORD` (creating the file with `-c`).
fn mosquitto_passwd(file: &Path, create: bool, hash: &str, user: &str, password: &str) {
    let mut cmd = Command::new(program("mosquitto_passwd", "FERRULE_MOSQUITTO_PASSWD"));
    if create {
        cmd.arg("-c");
    }
    cmd.args(["-H", hash, "-b"])
        .arg(file)
        .args([user, password]);
    let done = common::process::run("mosquitto_passwd", &mut cmd, TIMEOUT);
    assert!(
        done.status.success(),
        "mosquitto_passwd failed:\n{}",
        done.tail()
    );
}

fn creds<'a>(user: &'a str, password: &'a str) -> Vec<&'a str> {
    vec!["--user", user, "--password", password]
}

#[test]
fn a_password_file_from_mosquitto_passwd_works_and_bad_credentials_get_a_connack() {
    let dir = tempfile::tempdir().expect("tempdir");
    let passwd = dir.path().join("passwd");
    mosquitto_passwd(&passwd, true, "sha512-pbkdf2", "alice", "s3cret");
    mosquitto_passwd(&passwd, false, "sha512", "legacy", "0ld");
    let agent = agent(
        dir.path(),
        "  listeners: [{bind: \"127.0.0.1:0\", allow_anonymous: false}]\n  password_file: passwd",
    );
    let port = agent.listener_addr().port();

    // Both hash kinds log in, with mosquitto_pub (3.1.1 and 5) and paho.
    for version in ["mqttv311", "mqttv5"] {
        for (user, password) in [("alice", "s3cret"), ("legacy", "0ld")] {
            mqtt::publish_args(
                port,
                &[
                    "-V", version, "-u", user, "-P", password, "-t", "x", "-m", "1", "-q", "1",
                ],
            );
        }
    }
    for protocol in ["311", "5"] {
        let mut args = vec!["--protocol", protocol];
        args.extend(creds("alice", "s3cret"));
        assert_eq!(mqtt::connect(port, &args).code, 0);
    }

    // Refusals: CONNACK 0x05 (3.1.1, as Mosquitto) and 0x86 / 0x87 (5), never a silent close.
    let cases: [(&[&str], u8); 5] = [
        (&["--user", "alice", "--password", "guess1"], 5),
        (&["--user", "nobody", "--password", "s3cret"], 5),
        (&[], 5),
        (
            &["--protocol", "5", "--user", "alice", "--password", "guess2"],
            0x86,
        ),
        (&["--protocol", "5"], 0x87),
    ];
    for (args, code) in cases {
        assert_eq!(mqtt::connect(port, args).code, code, "{args:?}");
    }
    // mosquitto_pub exits with the CONNACK code.
    let out = mqtt::mosquitto_pub(port, &["-u", "alice", "-P", "nope", "-t", "x", "-m", "1"]);
    assert_eq!(out.status.code(), Some(5), "{}", out.tail());
    assert!(out.tail().contains("not authorised"), "{}", out.tail());
    let out = mqtt::mosquitto_pub(
        port,
        &[
            "-V", "mqttv5", "-u", "legacy", "-P", "nope", "-t", "x", "-m", "1",
        ],
    );
    assert_eq!(out.status.code(), Some(0x86), "{}", out.tail());

    // Refusals are logged (never the password).
    let line = agent.wait_for_line("client refused", WAIT);
    for password in ["nope", "guess1", "guess2", "s3cret"] {
        assert!(!line.contains(password), "{line}");
    }
}

#[test]
fn ferrule_passwd_writes_entries_that_mosquitto_accepts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("passwd");
    let file_arg = file.to_str().expect("UTF-8");
    let set = |flags: &[&str], user: &str, password: &str| {
        let mut args = vec!["passwd"];
        args.extend_from_slice(flags);
        args.extend(["--stdin", file_arg, user]);
        let mut p = Ferrule::start_with(Ferrule::bin(), &args, &[]);
        p.proc().write_line(password);
        p.proc().close_stdin();
        let status = p.wait_exit(WAIT);
        assert!(
            status.success(),
            "ferrule passwd {user}: {status}\n{}",
            p.tail()
        );
    };
    // Without -c the file must exist.
    let out = Ferrule::output(&["passwd", "--stdin", file_arg, "x"], WAIT);
    assert_eq!(out.status.code(), Some(1), "{}", out.tail());
    assert!(out.tail().contains("use -c to create it"), "{}", out.tail());
    set(&["-c"], "alice", "pässwörd");
    set(&[], "bob", "hunter2");
    set(&["-I", "1000"], "carol", "c");
    set(&[], "bob", "changed");
    let out = Ferrule::output(&["passwd", "-D", file_arg, "carol"], WAIT);
    assert!(out.status.success(), "{}", out.tail());
    // Batch mode, as `mosquitto_passwd -b FILE USER PASSWORD`.
    let out = Ferrule::output(&["passwd", "-b", file_arg, "dave", "d4ve"], WAIT);
    assert!(out.status.success(), "{}", out.tail());
    // No terminal: the password and its repetition from standard input, as mosquitto_passwd
    // reads them in a script; a mismatch exits with 2 and changes nothing.
    let piped = |user: &str, first: &str, again: &str| {
        let mut p = Ferrule::start_with(Ferrule::bin(), &["passwd", file_arg, user], &[]);
        p.proc().write_line(first);
        p.proc().write_line(again);
        p.proc().close_stdin();
        let status = p.wait_exit(WAIT);
        (status, p.tail())
    };
    let (status, tail) = piped("erin", "e1", "e1");
    assert!(
        status.success() && tail.contains("Reenter password:"),
        "{status}\n{tail}"
    );
    let before = std::fs::read_to_string(&file).expect("passwd");
    let (status, tail) = piped("frank", "one", "two");
    assert_eq!(status.code(), Some(2), "{tail}");
    assert!(tail.contains("passwords do not match"), "{tail}");
    assert_eq!(std::fs::read_to_string(&file).expect("passwd"), before);
    let text = std::fs::read_to_string(&file).expect("passwd");
    assert_eq!(text.lines().count(), 4, "{text}");
    assert!(text.starts_with("alice:$7$101$"), "{text}");

    // A real Mosquitto reads the file.
    let contents = text.clone();
    let mut broker = Mosquitto::with_files(
        &[("passwd", &contents)],
        &["allow_anonymous false", "password_file {dir}/passwd"],
    );
    let port = broker.port();
    mqtt::publish_args(
        port,
        &["-u", "alice", "-P", "pässwörd", "-t", "t", "-m", "1"],
    );
    mqtt::publish_args(port, &["-u", "bob", "-P", "changed", "-t", "t", "-m", "1"]);
    mqtt::publish_args(port, &["-u", "dave", "-P", "d4ve", "-t", "t", "-m", "1"]);
    mqtt::publish_args(port, &["-u", "erin", "-P", "e1", "-t", "t", "-m", "1"]);
    for (user, password) in [("bob", "hunter2"), ("carol", "c"), ("alice", "x")] {
        let out = mqtt::mosquitto_pub(port, &["-u", user, "-P", password, "-t", "t", "-m", "1"]);
        assert_eq!(out.status.code(), Some(5), "{user}: {}", out.tail());
    }
    broker.stop();
}

#[test]
fn network_listeners_refuse_anonymous_clients_unless_allowed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = agent(
        dir.path(),
        "  listeners:\n    - bind: \"127.0.0.1:0\"\n    - bind: \"0.0.0.0:0\"\n    - {bind: \"0.0.0.0:0\", allow_anonymous: true}",
    );
    let ports: Vec<u16> = agent.listener_addrs(3).iter().map(|a| a.port()).collect();
    assert_eq!(
        mqtt::connect(ports[0], &[]).code,
        0,
        "loopback: anonymous by default"
    );
    assert_eq!(
        mqtt::connect(ports[1], &[]).code,
        5,
        "network: refused by default"
    );
    assert_eq!(mqtt::connect(ports[1], &["--protocol", "5"]).code, 0x87);
    // Without a password file a username is not checked: still anonymous.
    assert_eq!(mqtt::connect(ports[1], &creds("u", "p")).code, 5);
    assert_eq!(
        mqtt::connect(ports[2], &[]).code,
        0,
        "allow_anonymous: true"
    );
    let out = mqtt::mosquitto_pub(ports[1], &["-t", "x", "-m", "1"]);
    assert_eq!(out.status.code(), Some(5), "{}", out.tail());
}

const ACL: &str = "\
# anonymous clients: the public area only
topic read public/#

user alice
topic readwrite alice/#
topic read b/#
topic deny b/secret/#

user operator
topic read b/#
topic write b/+/+/set

user admin
topic readwrite #
topic read $SYS/#

pattern readwrite clients/%u/#
";

fn acl_agent(dir: &Path) -> (Ferrule, u16) {
    let passwd = dir.join("passwd");
    mosquitto_passwd(&passwd, true, "sha512-pbkdf2", "alice", "a");
    for user in ["operator", "admin", "bob"] {
        mosquitto_passwd(&passwd, false, "sha512-pbkdf2", user, user);
    }
    std::fs::write(dir.join("acl"), ACL).expect("acl");
    let agent = agent(
        dir,
        "  listeners: [{bind: \"127.0.0.1:0\"}]\n  password_file: passwd\n  acl_file: acl",
    );
    let port = agent.listener_addr().port();
    (agent, port)
}

fn user_sub(user: &str, protocol: Protocol, filters: &[&str], port: u16) -> mqtt::Subscription {
    let password = if user == "alice" { "a" } else { user };
    mqtt::sub_with(
        port,
        filters,
        &SubOptions {
            protocol,
            user: Some(user.into()),
            password: Some(password.into()),
            ..SubOptions::default()
        },
    )
}

/// The SUBACK codes `mqtt_tool.py sub` printed for one subscribe.
fn suback(port: u16, protocol: &str, user: &str, password: &str, filter: &str) -> Vec<u8> {
    let port = port.to_string();
    let out = mqtt::tool(
        &[
            "sub",
            "--port",
            &port,
            "--protocol",
            protocol,
            "--user",
            user,
            "--password",
            password,
            "--topic",
            filter,
            "--count",
            "1",
            "--timeout",
            "2",
        ],
        WAIT,
    );
    let line = out
        .stdout
        .iter()
        .find_map(|l| l.strip_prefix("SUBACK "))
        .unwrap_or_else(|| panic!("no SUBACK:\n{}", out.tail()))
        .to_owned();
    line.split(',').map(|c| c.parse().expect("code")).collect()
}

#[test]
fn the_acl_refuses_subscriptions_with_0x80_and_filters_what_wide_ones_deliver() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_agent, port) = acl_agent(dir.path());
    assert_eq!(suback(port, "311", "alice", "a", "alice/#"), vec![1]);
    assert_eq!(suback(port, "311", "alice", "a", "b/secret/x"), vec![0x80]);
    // MQTT 5 gets 0x80 too (0x87 would be as valid; the Paho interoperability suite's
    // test_subscribe_failure accepts only 0x80).
    assert_eq!(suback(port, "5", "alice", "a", "b/secret/#"), vec![0x80]);
    assert_eq!(suback(port, "5", "alice", "a", "$SYS/#"), vec![0x80]);
    // A shared subscription is checked on its filter, without `$share/group/`.
    assert_eq!(suback(port, "5", "alice", "a", "$share/g/b/open"), vec![1]);
    assert_eq!(
        suback(port, "5", "alice", "a", "$share/g/b/secret/x"),
        vec![0x80]
    );
    assert_eq!(
        suback(port, "5", "alice", "a", "$share/g/other/x"),
        vec![0x80]
    );
    assert_eq!(suback(port, "311", "bob", "bob", "clients/bob/#"), vec![1]);
    assert_eq!(
        suback(port, "311", "bob", "bob", "clients/alice/#"),
        vec![0x80]
    );
    // mosquitto_sub reports the refusal too.
    let out = mqtt::mosquitto_sub_once(
        port,
        &[
            "-V",
            "mqttv311",
            "-u",
            "alice",
            "-P",
            "a",
            "-t",
            "b/secret/x",
            "-W",
            "1",
        ],
    );
    assert!(
        out.tail().contains("Subscribed (mid: 1): 128"),
        "{}",
        out.tail()
    );

    // A granted wide subscription only delivers what alice may read.
    let wide = user_sub("alice", Protocol::V311, &["#"], port);
    for topic in ["b/secret/plan", "b/open", "other/x", "alice/own"] {
        mqtt::publish_args(
            port,
            &[
                "-u", "admin", "-P", "admin", "-t", topic, "-m", topic, "-q", "1",
            ],
        );
    }
    wide.wait_for(WAIT, |m| m.topic == "alice/own");
    let topics: Vec<String> = wide.messages().iter().map(|m| m.topic.clone()).collect();
    assert!(topics.contains(&"b/open".to_owned()), "{topics:?}");
    assert!(
        !topics
            .iter()
            .any(|t| t == "b/secret/plan" || t == "other/x"),
        "{topics:?}"
    );
}

#[test]
fn the_acl_drops_refused_publishes_in_311_and_answers_0x87_in_5() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (agent, port) = acl_agent(dir.path());
    let watcher = user_sub("admin", Protocol::V311, &["#"], port);
    // MQTT 3.1.1: acknowledged (as Mosquitto does) but not delivered.
    mqtt::publish_args(
        port,
        &["-u", "alice", "-P", "a", "-t", "b/x", "-m", "no", "-q", "1"],
    );
    // MQTT 5: PUBACK with reason 0x87.
    let out = mqtt::mosquitto_pub(
        port,
        &[
            "-V", "mqttv5", "-u", "alice", "-P", "a", "-t", "b/y", "-m", "no", "-q", "1",
        ],
    );
    assert!(out.tail().contains("Not authorized"), "{}", out.tail());
    let port_s = port.to_string();
    let out = mqtt::tool(
        &[
            "pub",
            "--port",
            &port_s,
            "--protocol",
            "5",
            "--user",
            "alice",
            "--password",
            "a",
            "--topic",
            "b/z",
            "--qos",
            "1",
        ],
        WAIT,
    );
    assert_eq!(out.status.code(), Some(2), "{}", out.tail());
    assert!(out.tail().contains("Not authorized"), "{}", out.tail());
    // Allowed publishes still flow; the refused ones never arrived.
    mqtt::publish_args(
        port,
        &[
            "-u", "alice", "-P", "a", "-t", "alice/ok", "-m", "yes", "-q", "1",
        ],
    );
    watcher.wait_for(WAIT, |m| m.topic == "alice/ok");
    assert!(
        watcher
            .messages()
            .iter()
            .all(|m| m.text() != "no" && m.topic != "b/z"),
        "{:?}",
        watcher.messages()
    );
    agent.wait_for_line("publish refused by the ACL", WAIT);
}

#[test]
fn the_acl_protects_ferrules_command_topics_and_the_will_topic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_agent, port) = acl_agent(dir.path());
    let results = user_sub("admin", Protocol::V311, &["b/dev/p/set/result"], port);
    // alice may read b/# but not write commands: the agent never sees her command.
    mqtt::publish_args(
        port,
        &[
            "-u",
            "alice",
            "-P",
            "a",
            "-t",
            "b/dev/p/set",
            "-m",
            "1",
            "-q",
            "1",
        ],
    );
    // The operator may: the agent answers (the device is unreachable).
    mqtt::publish_args(
        port,
        &[
            "-u",
            "operator",
            "-P",
            "operator",
            "-t",
            "b/dev/p/set",
            "-m",
            "{\"value\":2,\"id\":\"op\"}",
            "-q",
            "1",
        ],
    );
    let result = results.wait_for(WAIT, |m| m.topic == "b/dev/p/set/result");
    assert_eq!(result.json()["id"], "op", "{result:?}");
    results.assert_none_for(Duration::from_millis(500), |m| m.json()["id"] != "op");
    assert_eq!(results.count(), 1, "{:?}", results.messages());

    // A will the client may not publish refuses the connection.
    let mut args = creds("alice", "a");
    args.extend(["--will-topic", "other/will"]);
    assert_eq!(mqtt::connect(port, &args).code, 5);
    args.extend(["--protocol", "5"]);
    assert_eq!(mqtt::connect(port, &args).code, 0x87);
    let mut ok = creds("alice", "a");
    ok.extend(["--will-topic", "alice/will"]);
    assert_eq!(mqtt::connect(port, &ok).code, 0);
}

#[test]
fn ferrule_passwd_prompts_on_the_terminal_without_echo() {
    // `script` gives ferrule a terminal; the password goes in through it.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("passwd");
    let command = format!(
        "{} passwd -c {} dave",
        Ferrule::bin().display(),
        file.display()
    );
    let mut p = common::process::Proc::spawn(
        "script",
        Command::new("script").args(["-qec", &command, "/dev/null"]),
    );
    // The terminal buffers both lines until ferrule reads them after its prompts.
    p.write_line("pr0mpted");
    p.write_line("pr0mpted");
    assert!(p.wait_exit(WAIT).success(), "{}", p.tail());
    assert!(p.tail().contains("Reenter password:"), "{}", p.tail());
    let users = ferrule::broker::passwd::PasswordFile::load(&file).expect("password file");
    assert_eq!(
        users.verify("dave", b"pr0mpted"),
        ferrule::broker::passwd::Verdict::Valid
    );
}

#[test]
fn check_warns_about_passwords_in_plain_text_on_the_network() {
    let dir = tempfile::tempdir().expect("tempdir");
    mosquitto_passwd(&dir.path().join("passwd"), true, "sha512-pbkdf2", "u", "p");
    let yaml = "site: b\nbroker:\n  listeners: [{bind: \"0.0.0.0:1883\"}]\n  password_file: passwd\n\
                devices:\n  - {name: dev, tcp: \"127.0.0.1:9\", points: [{name: p, kind: holding, address: 0}]}\n";
    let path = Ferrule::write_config(dir.path(), yaml);
    let out = Ferrule::output(&["check", path.to_str().expect("UTF-8")], WAIT);
    assert_eq!(out.status.code(), Some(0), "{}", out.tail());
    assert!(
        out.lines
            .iter()
            .any(|l| l.starts_with("warning: broker.listeners[0] (`0.0.0.0:1883`) is plain text")),
        "{}",
        out.tail()
    );
    // A broken ACL file stops `check` (and `run`), naming the line.
    std::fs::write(dir.path().join("acl"), "topic read a\nuser\n").expect("acl");
    let yaml = yaml.replace(
        "password_file: passwd",
        "password_file: passwd\n  acl_file: acl",
    );
    let path = Ferrule::write_config(dir.path(), &yaml);
    let out = Ferrule::output(&["check", path.to_str().expect("UTF-8")], WAIT);
    assert_eq!(out.status.code(), Some(2), "{}", out.tail());
    assert!(
        out.tail().contains("acl:2: `user` needs a username"),
        "{}",
        out.tail()
    );
    let mut run = Ferrule::run(&path);
    assert!(!run.wait_exit(WAIT).success());
    assert!(
        run.tail().contains("acl:2: `user` needs a username"),
        "{}",
        run.tail()
    );
}
