//! Real MQTT clients for tests: paho-mqtt 2.x through `tests/fixtures/mqtt_tool.py`, and
//! Mosquitto's own `mosquitto_pub` / `mosquitto_sub`.
//!
//! A [`Subscription`] is a subscriber process whose messages are collected in the background;
//! it is only returned once the broker's SUBACK arrived, so a test can publish right away.
//! Publishing helpers return only after the broker acknowledged every message.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::process::{self, Finished, Proc, Stdout};
use super::wait::{Watch, TIMEOUT};
use super::{fixture, program, python};

/// MQTT protocol version of a test client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    #[default]
    V311,
    V5,
}

impl Protocol {
    fn arg(self) -> &'static str {
        match self {
            Protocol::V311 => "311",
            Protocol::V5 => "5",
        }
    }
}

/// How a paho subscriber connects and subscribes.
#[derive(Debug, Clone)]
pub struct SubOptions {
    pub qos: u8,
    pub protocol: Protocol,
    /// Empty: the broker assigns one.
    pub client_id: Option<String>,
    /// false: keep the session (clean session / clean start off).
    pub clean: bool,
    /// MQTT 5 session expiry in seconds (with `clean: false`).
    pub session_expiry: u32,
    pub user: Option<String>,
    pub password: Option<String>,
    /// More `mqtt_tool.py sub` arguments (`--no-local`, `--cafile F`, `--websockets`, ...).
    pub extra: Vec<String>,
}

impl Default for SubOptions {
    fn default() -> Self {
        Self {
            qos: 1,
            protocol: Protocol::V311,
            client_id: None,
            clean: true,
            session_expiry: 0,
            user: None,
            password: None,
            extra: Vec::new(),
        }
    }
}

/// A message as a subscriber received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
    pub qos: u8,
    /// MQTT 5 properties (paho subscriber only).
    pub response_topic: Option<String>,
    pub correlation_data: Option<Vec<u8>>,
    pub user_properties: Vec<(String, String)>,
    pub content_type: Option<String>,
    /// The DUP flag (paho subscriber only).
    pub dup: bool,
    /// MQTT 5 message expiry interval as delivered (paho subscriber only).
    pub message_expiry: Option<u32>,
    /// MQTT 5 subscription identifiers (paho subscriber only).
    pub subscription_ids: Vec<u32>,
}

impl Message {
    /// The payload as text (lossy for non-UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }

    /// The payload parsed as JSON; panics naming the message if it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.payload)
            .unwrap_or_else(|err| panic!("payload of {self:?} is not JSON: {err}"))
    }
}

/// The JSON line `mqtt_tool.py` / `mosquitto_sub -F %j` prints per message.
#[derive(Deserialize)]
struct Line {
    topic: String,
    payload: Option<String>,
    payload_base64: Option<String>,
    /// paho: bool; mosquitto_sub: 0/1.
    retain: serde_json::Value,
    qos: u8,
    response_topic: Option<String>,
    correlation_data: Option<String>,
    #[serde(default)]
    user_properties: Vec<(String, String)>,
    content_type: Option<String>,
    #[serde(default)]
    dup: bool,
    message_expiry_interval: Option<u32>,
    #[serde(default)]
    subscription_ids: Vec<u32>,
}

impl Line {
    fn into_message(self) -> Message {
        let payload = match (self.payload, self.payload_base64) {
            (_, Some(b64)) => base64_decode(&b64),
            (Some(text), None) => text.into_bytes(),
            (None, None) => Vec::new(),
        };
        Message {
            retain: self
                .retain
                .as_bool()
                .unwrap_or(self.retain.as_u64() == Some(1)),
            correlation_data: self.correlation_data.as_deref().map(hex_decode),
            topic: self.topic,
            payload,
            qos: self.qos,
            response_topic: self.response_topic,
            user_properties: self.user_properties,
            content_type: self.content_type,
            dup: self.dup,
            message_expiry: self.message_expiry_interval,
            subscription_ids: self.subscription_ids,
        }
    }
}

#[derive(Default)]
struct Received {
    messages: Vec<Message>,
    /// SUBACKs so far: more than one means the client reconnected and subscribed again.
    subscribed: usize,
    /// stdout lines that were neither a message nor a SUBACK report (for failure messages).
    other: Vec<String>,
    /// The subscriber closed its stdout: it has exited.
    ended: bool,
}

/// A subscriber process and the messages it received; killed when dropped.
pub struct Subscription {
    proc: Proc,
    received: Arc<Watch<Received>>,
}

/// Subscribes to `filter` at QoS 1 with paho (MQTT 3.1.1) on 127.0.0.1:`port`.
pub fn sub(port: u16, filter: &str) -> Subscription {
    sub_with(port, &[filter], &SubOptions::default())
}

/// Subscribes to `filters` with paho, as `options` say.
pub fn sub_with(port: u16, filters: &[&str], options: &SubOptions) -> Subscription {
    let mut cmd = Command::new(python());
    cmd.arg(fixture("mqtt_tool.py"))
        .arg("sub")
        .args(["--port", &port.to_string()])
        .args(["--qos", &options.qos.to_string()])
        .args(["--protocol", options.protocol.arg()])
        .args(["--count", "0", "--timeout", "0", "--exit-on-eof"])
        .env("PYTHONUNBUFFERED", "1");
    for filter in filters {
        cmd.args(["--topic", filter]);
    }
    if let Some(id) = &options.client_id {
        cmd.args(["--client-id", id]);
    }
    if !options.clean {
        cmd.arg("--no-clean");
    }
    if options.session_expiry > 0 {
        cmd.args(["--session-expiry", &options.session_expiry.to_string()]);
    }
    add_credentials(
        &mut cmd,
        options.user.as_deref(),
        options.password.as_deref(),
    );
    cmd.args(&options.extra);
    Subscription::spawn(
        &format!("paho-sub {} on port {port}", filters.join(" ")),
        cmd,
        "SUBSCRIBED",
    )
}

/// Subscribes to `filter` at QoS 1 with the real `mosquitto_sub` (MQTT 3.1.1). Payloads are
/// text only (mosquitto_sub's JSON output has no binary form); no MQTT 5 properties.
pub fn sub_mosquitto(port: u16, filter: &str) -> Subscription {
    // mosquitto_sub's stdout is block-buffered when it is a pipe: without line buffering the
    // SUBACK report (and messages) can sit in its buffer until it exits.
    let mut cmd = Command::new("stdbuf");
    cmd.arg("-oL")
        .arg(program("mosquitto_sub", "FERRULE_MOSQUITTO_SUB"));
    // -d prints "Subscribed (mid: 1): <granted qos>" when the SUBACK arrives.
    cmd.args([
        "-h",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-q",
        "1",
        "-t",
        filter,
        "-d",
        "-F",
        "%j",
    ]);
    Subscription::spawn(
        &format!("mosquitto_sub {filter} on port {port}"),
        cmd,
        "Subscribed (mid:",
    )
}

impl Subscription {
    fn spawn(name: &str, mut cmd: Command, subscribed_marker: &'static str) -> Subscription {
        let received = Arc::new(Watch::new(Received::default()));
        let sink = Arc::clone(&received);
        let proc = Proc::spawn_with(
            name,
            &mut cmd,
            Stdout::Each(Box::new(move |line: Option<String>| {
                let Some(line) = line else {
                    sink.update(|r| r.ended = true);
                    return;
                };
                let message = line
                    .starts_with('{')
                    .then(|| serde_json::from_str::<Line>(&line).ok())
                    .flatten();
                // mosquitto_sub: "Subscribed (mid: 1): 128" is a refusal.
                let suback = line.starts_with(subscribed_marker) && !line.ends_with(": 128");
                sink.update(|r| match message {
                    Some(message) => r.messages.push(message.into_message()),
                    None if suback => r.subscribed += 1,
                    None => r.other.push(line),
                });
            })),
        );
        let subscription = Subscription { proc, received };
        subscription.wait_subscribed(1, TIMEOUT);
        subscription
    }

    /// Waits until the client has had `n` SUBACKs (n > 1: it reconnected and subscribed again,
    /// e.g. after the broker restarted).
    pub fn wait_subscribed(&self, n: usize, timeout: Duration) {
        let subscribed = self.received.wait_for(timeout, |r| {
            (r.subscribed >= n || r.ended).then_some(r.subscribed >= n)
        });
        if subscribed != Some(true) {
            self.fail(&format!("SUBACK #{n} within {timeout:?}"));
        }
    }

    /// Unsubscribes from `filter` and waits for the UNSUBACK.
    pub fn unsubscribe(&mut self, filter: &str) {
        let done = |r: &Received| r.other.iter().filter(|l| *l == "UNSUBSCRIBED").count();
        let before = self.received.read(done);
        self.proc.write_line(&format!("unsubscribe {filter}"));
        let acked = self.received.wait_for(TIMEOUT, |r| {
            (done(r) > before || r.ended).then_some(done(r) > before)
        });
        if acked != Some(true) {
            self.fail(&format!("an UNSUBACK for {filter}"));
        }
    }

    /// How many SUBACKs the client has had.
    pub fn subscribed_count(&self) -> usize {
        self.received.read(|r| r.subscribed)
    }

    /// Every message so far, in arrival order.
    pub fn messages(&self) -> Vec<Message> {
        self.received.read(|r| r.messages.clone())
    }

    pub fn count(&self) -> usize {
        self.received.read(|r| r.messages.len())
    }

    /// Waits for the first message (from the start) that `check` accepts.
    pub fn wait_for(&self, timeout: Duration, check: impl Fn(&Message) -> bool) -> Message {
        self.received
            .wait_for(timeout, |r| match r.messages.iter().find(|m| check(m)) {
                Some(m) => Some(Some(m.clone())),
                None => r.ended.then_some(None),
            })
            .flatten()
            .unwrap_or_else(|| self.fail(&format!("a matching message within {timeout:?}")))
    }

    /// Waits for the first message on `topic`.
    pub fn wait_for_topic(&self, topic: &str, timeout: Duration) -> Message {
        self.wait_for(timeout, |m| m.topic == topic)
    }

    /// Waits until at least `n` messages arrived; returns all of them.
    pub fn wait_for_count(&self, n: usize, timeout: Duration) -> Vec<Message> {
        self.received
            .wait_for(timeout, |r| {
                if r.messages.len() >= n {
                    Some(Some(r.messages.clone()))
                } else {
                    r.ended.then_some(None)
                }
            })
            .flatten()
            .unwrap_or_else(|| self.fail(&format!("{n} messages within {timeout:?}")))
    }

    /// Asserts that no message `check` accepts arrives during `period` (or has arrived). This
    /// waits the whole period: use it only to prove an absence, with a short period.
    pub fn assert_none_for(&self, period: Duration, check: impl Fn(&Message) -> bool) {
        if let Some(m) = self
            .received
            .wait_for(period, |r| r.messages.iter().find(|m| check(m)).cloned())
        {
            panic!("unexpected message {m:?} on {}", self.proc.name());
        }
    }

    fn fail(&self, what: &str) -> ! {
        let (got, other, ended) = self.received.read(|r| {
            let got: Vec<String> = r
                .messages
                .iter()
                .map(|m| format!("    {} {:?}", m.topic, m.text()))
                .collect();
            (got, r.other.join("\n    "), r.ended)
        });
        let state = if ended { "has exited" } else { "is running" };
        panic!(
            "{} did not receive {what} (it {state}); received {} messages:\n{}\nother output:\n    {other}\nits log:\n{}",
            self.proc.name(),
            got.len(),
            got.join("\n"),
            self.proc.tail()
        )
    }
}

fn add_credentials(cmd: &mut Command, user: Option<&str>, password: Option<&str>) {
    if let Some(user) = user {
        cmd.args(["--user", user]);
    }
    if let Some(password) = password {
        cmd.args(["--password", password]);
    }
}

/// Publishes one message with the real `mosquitto_pub` and waits until it is acknowledged
/// (mosquitto_pub exits after the PUBACK/PUBCOMP).
pub fn publish(port: u16, topic: &str, payload: &str, qos: u8) {
    publish_args(port, &["-t", topic, "-m", payload, "-q", &qos.to_string()]);
}

/// [`publish`] with the retain flag (an empty payload clears the retained message).
pub fn publish_retained(port: u16, topic: &str, payload: &str, qos: u8) {
    if payload.is_empty() {
        publish_args(port, &["-t", topic, "-n", "-r", "-q", &qos.to_string()]);
    } else {
        publish_args(
            port,
            &["-t", topic, "-m", payload, "-r", "-q", &qos.to_string()],
        );
    }
}

/// Runs `mosquitto_pub -h 127.0.0.1 -p <port> <args>` to completion, whatever its outcome
/// (its exit code is the CONNACK code when the broker refuses it).
pub fn mosquitto_pub(port: u16, args: &[&str]) -> Finished {
    let mut cmd = Command::new(program("mosquitto_pub", "FERRULE_MOSQUITTO_PUB"));
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args);
    process::run("mosquitto_pub", &mut cmd, TIMEOUT)
}

/// Runs `mosquitto_sub -h 127.0.0.1 -p <port> -d <args>` to completion (give it `-C n` or
/// `-W secs` so it ends), whatever its outcome.
pub fn mosquitto_sub_once(port: u16, args: &[&str]) -> Finished {
    let mut cmd = Command::new(program("mosquitto_sub", "FERRULE_MOSQUITTO_SUB"));
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-d"])
        .args(args);
    process::run("mosquitto_sub", &mut cmd, TIMEOUT)
}

/// Runs `mosquitto_pub -h 127.0.0.1 -p <port> <args>`, which must succeed.
pub fn publish_args(port: u16, args: &[&str]) -> Finished {
    let mut cmd = Command::new(program("mosquitto_pub", "FERRULE_MOSQUITTO_PUB"));
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args);
    let what = process::describe_command(&cmd);
    let done = process::run("mosquitto_pub", &mut cmd, TIMEOUT);
    assert!(
        done.status.success(),
        "`{what}` failed ({}):\n{}",
        done.status,
        done.tail()
    );
    done
}

/// Publishes `n` messages `msg-0` .. `msg-{n-1}` to `topic` with paho and asserts that the
/// broker acknowledged every one.
pub fn publish_many(port: u16, topic: &str, n: usize, qos: u8) {
    publish_many_with(port, topic, n, qos, "msg-{i}", &[]);
}

/// [`publish_many`] with a payload template (`{i}` is the message index, also allowed in the
/// topic) and extra `mqtt_tool.py pub` arguments (`--protocol 5`, `--retain`, `--user u`, ...).
pub fn publish_many_with(
    port: u16,
    topic: &str,
    n: usize,
    qos: u8,
    template: &str,
    extra: &[&str],
) {
    let done = mqtt_tool(
        &[
            "pub",
            "--port",
            &port.to_string(),
            "--topic",
            topic,
            "--count",
            &n.to_string(),
        ],
        &["--qos", &qos.to_string(), "--payload-template", template],
        extra,
        TIMEOUT + Duration::from_millis(n as u64 * 10),
    );
    let acked = format!("ACKED {n}");
    assert!(
        done.status.success() && done.stdout.iter().any(|l| l == &acked),
        "publishing {n} messages to {topic} was not fully acknowledged ({}):\n{}",
        done.status,
        done.tail()
    );
}

/// Like [`publish_many_with`], but returns how it ended instead of asserting success: for
/// publishes the broker refuses (exit 2, MQTT 5 reason code) or never acknowledges (exit 1 after
/// `timeout`, e.g. a 3.1.1 client whose connection is closed).
pub fn try_publish_many(
    port: u16,
    topic: &str,
    n: usize,
    qos: u8,
    template: &str,
    extra: &[&str],
    timeout: Duration,
) -> Finished {
    let seconds = format!("{:.3}", timeout.as_secs_f64());
    mqtt_tool(
        &[
            "pub",
            "--port",
            &port.to_string(),
            "--topic",
            topic,
            "--count",
            &n.to_string(),
            "--timeout",
            &seconds,
        ],
        &["--qos", &qos.to_string(), "--payload-template", template],
        extra,
        timeout + TIMEOUT,
    )
}

/// MQTT 5 request/response with paho: publishes `payload` to `topic` with a response topic and
/// `correlation` data, and returns the first message on the response topic (or panics after
/// `timeout`).
pub fn request(
    port: u16,
    topic: &str,
    payload: &str,
    correlation: &[u8],
    timeout: Duration,
) -> Message {
    let hex: String = correlation.iter().map(|b| format!("{b:02x}")).collect();
    let seconds = format!("{:.3}", timeout.as_secs_f64());
    let mut args = vec!["req", "--port"];
    let port = port.to_string();
    args.extend([
        port.as_str(),
        "--topic",
        topic,
        "--payload",
        payload,
        "--timeout",
        &seconds,
    ]);
    if !hex.is_empty() {
        args.extend(["--correlation-hex", &hex]);
    }
    let done = mqtt_tool(&args, &[], &[], timeout + TIMEOUT);
    assert!(
        done.status.success(),
        "request to {topic} got no reply ({}):\n{}",
        done.status,
        done.tail()
    );
    let line = done
        .stdout
        .iter()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("mqtt_tool req printed no message:\n{}", done.tail()));
    serde_json::from_str::<Line>(line)
        .unwrap_or_else(|err| panic!("mqtt_tool req printed {line:?}: {err}"))
        .into_message()
}

/// A CONNACK as `mqtt_tool.py connect` saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connack {
    /// The return code (3.1.1) or reason code (5).
    pub code: u8,
    pub session_present: bool,
}

/// Connects once with paho (`args` are `mqtt_tool.py connect` options such as `--protocol 5`,
/// `--user u --password p`, `--client-id c --no-clean`, `--will-topic t`, `--drop`) and
/// returns the CONNACK; panics when no CONNACK arrived.
pub fn connect(port: u16, args: &[&str]) -> Connack {
    let done = mqtt_tool(
        &["connect", "--port", &port.to_string(), "--timeout", "10"],
        args,
        &[],
        TIMEOUT,
    );
    let line = done
        .stdout
        .iter()
        .find_map(|l| l.strip_prefix("CONNACK "))
        .unwrap_or_else(|| {
            panic!(
                "no CONNACK from port {port} ({}):\n{}",
                done.status,
                done.tail()
            )
        })
        .to_owned();
    let mut parts = line.split(' ');
    let code = parts.next().and_then(|c| c.parse().ok());
    let present = parts.next().map(|p| p == "1");
    match (code, present) {
        (Some(code), Some(session_present)) => Connack {
            code,
            session_present,
        },
        _ => panic!("mqtt_tool printed `CONNACK {line}`"),
    }
}

/// Runs `mqtt_tool.py <args>` to completion (for one-shot checks: SUBACK codes, refusals).
pub fn tool(args: &[&str], timeout: Duration) -> Finished {
    mqtt_tool(args, &[], &[], timeout)
}

fn mqtt_tool(args: &[&str], more: &[&str], extra: &[&str], timeout: Duration) -> Finished {
    let mut cmd = Command::new(python());
    cmd.arg(fixture("mqtt_tool.py"))
        .args(args)
        .args(more)
        .args(extra)
        .env("PYTHONUNBUFFERED", "1");
    process::run("mqtt_tool", &mut cmd, timeout)
}

fn hex_decode(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .unwrap_or_else(|| panic!("bad hex {hex:?}"))
        })
        .collect()
}

fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes().filter(|&c| c != b'=') {
        let value = ALPHABET
            .iter()
            .position(|&a| a == c)
            .unwrap_or_else(|| panic!("bad base64 {text:?}"));
        acc = (acc << 6) | value as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}
