//! The agent's metrics: counters kept by the components (device counters here; the broker's,
//! the queue's and the uplink's where they live), gathered into one [`Snapshot`] and rendered
//! in the Prometheus text format (pure).
//!
//! Invariants: device counters are keyed by device name and survive a reload that restarts the
//! device (they only ever grow while the process lives); a device removed by a reload
//! disappears from the output.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use crate::broker::{BrokerStats, StatsSnapshot};
use crate::store::{Counters, Queue, Stats};
use crate::uplink::{LinkState, LinkStatus};

/// Upper bounds of the read latency histogram, in seconds.
pub const LATENCY_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// Why a request to a device failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// No answer in time (timeout, gateway exceptions 0x0A/0x0B).
    NoAnswer,
    /// The device answered with an exception code.
    Exception,
    /// Garbled or out-of-step answers.
    Protocol,
    /// The line went down (connection lost, port gone).
    LinkLost,
    /// The line could not be opened (connect, open, resolve).
    Connect,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 5] = [
        Self::NoAnswer,
        Self::Exception,
        Self::Protocol,
        Self::LinkLost,
        Self::Connect,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::NoAnswer => "no_answer",
            Self::Exception => "exception",
            Self::Protocol => "protocol",
            Self::LinkLost => "link_lost",
            Self::Connect => "connect",
        }
    }
}

/// The counters of one device, updated by its line task.
#[derive(Debug, Default)]
pub struct DeviceMetrics {
    polls: AtomicU64,
    errors: [AtomicU64; ErrorKind::ALL.len()],
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_us: AtomicU64,
    published: AtomicU64,
    online: AtomicBool,
    /// Wall-clock milliseconds of the last answer (a value or an exception), 0 before any.
    last_answer_ms: AtomicU64,
    /// Round trip of the last answered request, in microseconds.
    last_latency_us: AtomicU64,
    /// Requests in a row that got no answer: the circuit breaker's own count (it opens at
    /// `field::breaker::THRESHOLD`, and any answer closes it), mirrored for the status page.
    unanswered: AtomicU64,
}

impl DeviceMetrics {
    /// A poll cycle ended (whatever its outcome).
    pub fn polled(&self) {
        self.polls.fetch_add(1, Ordering::Relaxed);
    }

    pub fn error(&self, kind: ErrorKind) {
        if kind == ErrorKind::NoAnswer {
            self.unanswered.fetch_add(1, Ordering::Relaxed);
        }
        let i = ErrorKind::ALL.iter().position(|k| *k == kind).unwrap_or(0);
        self.errors[i].fetch_add(1, Ordering::Relaxed);
    }

    /// One request answered (or refused) after `took`.
    pub fn latency(&self, took: Duration) {
        let secs = took.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.latency_sum_us.fetch_add(us, Ordering::Relaxed);
        self.last_latency_us.store(us, Ordering::Relaxed);
        self.unanswered.store(0, Ordering::Relaxed);
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self.last_answer_ms.store(now, Ordering::Relaxed);
    }

    /// `n` point values were published.
    pub fn published(&self, n: usize) {
        self.published.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn set_online(&self, online: bool) {
        self.online.store(online, Ordering::Relaxed);
    }

    pub fn is_online(&self) -> bool {
        self.online.load(Ordering::Relaxed)
    }

    fn snapshot(&self, name: &str) -> DeviceSnapshot {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        DeviceSnapshot {
            name: name.to_owned(),
            polls: load(&self.polls),
            errors: std::array::from_fn(|i| load(&self.errors[i])),
            buckets: std::array::from_fn(|i| load(&self.buckets[i])),
            latency_count: load(&self.latency_count),
            latency_sum: Duration::from_micros(load(&self.latency_sum_us)).as_secs_f64(),
            published: load(&self.published),
            online: self.is_online(),
            last_answer_ms: load(&self.last_answer_ms),
            last_latency_us: load(&self.last_latency_us),
            unanswered: load(&self.unanswered),
        }
    }
}

/// The components whose counters are read at scrape time; replaced when a reload restarts
/// one of them.
#[derive(Default)]
struct Sources {
    broker: Option<Arc<BrokerStats>>,
    queue: Option<Queue>,
    uplink: Option<Arc<LinkStatus>>,
}

/// Every metric of the agent. Clones share it.
#[derive(Clone, Default)]
pub struct Metrics {
    devices: Arc<Mutex<BTreeMap<String, Arc<DeviceMetrics>>>>,
    sources: Arc<Mutex<Sources>>,
    reloads_ok: Arc<AtomicU64>,
    reloads_failed: Arc<AtomicU64>,
    ready: Arc<AtomicBool>,
    parts: super::parts::Parts,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// The counters of device `name` (created on first use, kept across restarts).
    pub fn device(&self, name: &str) -> Arc<DeviceMetrics> {
        let mut devices = self.devices.lock().unwrap_or_else(PoisonError::into_inner);
        devices.entry(name.to_owned()).or_default().clone()
    }

    /// Keeps only the devices named in `names` (after a reload).
    pub fn retain_devices<'a>(&self, names: impl IntoIterator<Item = &'a str>) {
        let keep: std::collections::HashSet<&str> = names.into_iter().collect();
        let mut devices = self.devices.lock().unwrap_or_else(PoisonError::into_inner);
        devices.retain(|name, _| keep.contains(name.as_str()));
    }

    pub fn set_broker(&self, stats: Arc<BrokerStats>) {
        self.sources().broker = Some(stats);
    }

    pub fn set_queue(&self, queue: Option<Queue>) {
        self.sources().queue = queue;
    }

    pub fn set_uplink(&self, status: Option<Arc<LinkStatus>>) {
        self.sources().uplink = status;
    }

    pub fn reload_succeeded(&self) {
        self.reloads_ok.fetch_add(1, Ordering::Relaxed);
    }

    pub fn reload_failed(&self) {
        self.reloads_failed.fetch_add(1, Ordering::Relaxed);
    }

    /// Ready: listeners bound, queue open, devices started, not draining.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// The supervised parts: running, down, restarts.
    pub fn parts(&self) -> &super::parts::Parts {
        &self.parts
    }

    /// Devices online and configured.
    pub fn devices_online(&self) -> (usize, usize) {
        let devices = self.devices.lock().unwrap_or_else(PoisonError::into_inner);
        let online = devices.values().filter(|d| d.is_online()).count();
        (online, devices.len())
    }

    /// The uplink's state, if there is an uplink.
    pub fn uplink(&self) -> Option<LinkState> {
        let status = self.sources().uplink.clone();
        status.map(|s| s.get())
    }

    /// The queue's contents, if there is a queue and it answers.
    pub async fn queue_stats(&self) -> Option<Stats> {
        let queue = self.sources().queue.clone()?;
        queue.stats().await.ok()
    }

    /// Everything, now.
    pub async fn snapshot(&self) -> Snapshot {
        let devices = {
            let devices = self.devices.lock().unwrap_or_else(PoisonError::into_inner);
            devices.iter().map(|(n, d)| d.snapshot(n)).collect()
        };
        let (broker, queue) = {
            let s = self.sources();
            (s.broker.clone(), s.queue.clone())
        };
        let queue_stats = match &queue {
            Some(q) => q.stats().await.ok().map(|stats| (stats, q.counters())),
            None => None,
        };
        Snapshot {
            ready: self.is_ready(),
            devices,
            broker: broker.map(|b| b.snapshot()),
            queue: queue_stats,
            uplink: self.uplink(),
            reloads_ok: self.reloads_ok.load(Ordering::Relaxed),
            reloads_failed: self.reloads_failed.load(Ordering::Relaxed),
            parts: self.parts.snapshot(),
            rss_bytes: resident_bytes(),
            now: SystemTime::now(),
        }
    }

    fn sources(&self) -> std::sync::MutexGuard<'_, Sources> {
        self.sources.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One device's counters at a moment.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceSnapshot {
    pub name: String,
    pub polls: u64,
    pub errors: [u64; ErrorKind::ALL.len()],
    pub buckets: [u64; LATENCY_BUCKETS.len()],
    pub latency_count: u64,
    pub latency_sum: f64,
    pub published: u64,
    pub online: bool,
    /// Unix milliseconds of the last answer, 0 before any.
    pub last_answer_ms: u64,
    /// Round trip of the last answered request, in microseconds.
    pub last_latency_us: u64,
    /// Requests in a row without an answer (the breaker is open from `THRESHOLD` on).
    pub unanswered: u64,
}

/// Every metric at a moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub ready: bool,
    pub devices: Vec<DeviceSnapshot>,
    pub broker: Option<StatsSnapshot>,
    pub queue: Option<(Stats, Counters)>,
    pub uplink: Option<LinkState>,
    pub reloads_ok: u64,
    pub reloads_failed: u64,
    /// The supervised parts, by name.
    pub parts: Vec<(String, super::parts::Part)>,
    pub rss_bytes: Option<u64>,
    pub now: SystemTime,
}

/// The resident set size of this process (`VmRSS` of `/proc/self/status`).
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    rss_from_status(&status)
}

fn rss_from_status(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// What `ferrule check` warns about the `metrics` section: an endpoint reachable from the
/// network (it has no authentication).
pub fn check(config: &crate::config::Config) -> Vec<String> {
    match &config.metrics {
        Some(m) if !m.bind.ip().is_loopback() => vec![format!(
            "metrics.bind `{}` is not a loopback address: anyone on the network can read the \
             metrics (there is no authentication); prefer 127.0.0.1 behind a scraper or a proxy",
            m.bind
        )],
        _ => Vec::new(),
    }
}

/// A label value, escaped as the text format wants.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Out(String);

impl Out {
    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn one(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.head(name, kind, help);
        let _ = writeln!(self.0, "{name} {value}");
    }

    fn line(&mut self, name: &str, labels: &str, value: impl std::fmt::Display) {
        let _ = writeln!(self.0, "{name}{{{labels}}} {value}");
    }
}

/// Renders `s` in the Prometheus text exposition format (version 0.0.4).
pub fn render(s: &Snapshot) -> String {
    let mut o = Out(String::with_capacity(4096));
    o.one(
        "ferrule_ready",
        "gauge",
        "1 when the agent is running and not draining.",
        u8::from(s.ready),
    );
    o.one(
        "ferrule_reloads_total",
        "counter",
        "Configuration reloads applied.",
        s.reloads_ok,
    );
    o.one(
        "ferrule_reload_failures_total",
        "counter",
        "Configuration reloads refused (invalid configuration); the running one stayed in force.",
        s.reloads_failed,
    );
    if let Some(rss) = s.rss_bytes {
        o.one(
            "ferrule_process_resident_memory_bytes",
            "gauge",
            "Resident set size of the process.",
            rss,
        );
    }
    render_parts(&mut o, &s.parts);
    render_devices(&mut o, &s.devices);
    if let Some(b) = &s.broker {
        render_broker(&mut o, b);
    }
    if let Some((stats, counters)) = &s.queue {
        render_queue(&mut o, stats, counters, s.now);
    }
    if let Some(u) = &s.uplink {
        render_uplink(&mut o, u);
    }
    o.0
}

fn render_parts(o: &mut Out, parts: &[(String, super::parts::Part)]) {
    if parts.is_empty() {
        return;
    }
    o.head(
        "ferrule_task_up",
        "gauge",
        "1 while a supervised part of the agent runs, 0 while it is down awaiting its restart.",
    );
    for (name, part) in parts {
        o.line(
            "ferrule_task_up",
            &format!("task=\"{}\"", label(name)),
            u8::from(part.down.is_none()),
        );
    }
    o.head(
        "ferrule_task_restarts_total",
        "counter",
        "Restarts of a supervised part after it panicked or failed.",
    );
    for (name, part) in parts {
        o.line(
            "ferrule_task_restarts_total",
            &format!("task=\"{}\"", label(name)),
            part.restarts,
        );
    }
}

fn render_devices(o: &mut Out, devices: &[DeviceSnapshot]) {
    o.head(
        "ferrule_device_online",
        "gauge",
        "1 when the device answers.",
    );
    for d in devices {
        o.line(
            "ferrule_device_online",
            &format!("device=\"{}\"", label(&d.name)),
            u8::from(d.online),
        );
    }
    o.head("ferrule_device_polls_total", "counter", "Poll cycles run.");
    for d in devices {
        o.line(
            "ferrule_device_polls_total",
            &format!("device=\"{}\"", label(&d.name)),
            d.polls,
        );
    }
    o.head(
        "ferrule_device_errors_total",
        "counter",
        "Failed requests and line failures, by kind.",
    );
    for d in devices {
        for (k, n) in ErrorKind::ALL.iter().zip(d.errors) {
            o.line(
                "ferrule_device_errors_total",
                &format!("device=\"{}\",kind=\"{}\"", label(&d.name), k.name()),
                n,
            );
        }
    }
    o.head(
        "ferrule_device_read_seconds",
        "histogram",
        "Time from sending a read request to its answer.",
    );
    for d in devices {
        let name = label(&d.name);
        let mut cumulative = 0;
        for (b, n) in LATENCY_BUCKETS.iter().zip(d.buckets) {
            cumulative += n;
            o.line(
                "ferrule_device_read_seconds_bucket",
                &format!("device=\"{name}\",le=\"{b}\""),
                cumulative,
            );
        }
        o.line(
            "ferrule_device_read_seconds_bucket",
            &format!("device=\"{name}\",le=\"+Inf\""),
            d.latency_count,
        );
        o.line(
            "ferrule_device_read_seconds_sum",
            &format!("device=\"{name}\""),
            d.latency_sum,
        );
        o.line(
            "ferrule_device_read_seconds_count",
            &format!("device=\"{name}\""),
            d.latency_count,
        );
    }
    o.head(
        "ferrule_device_points_published_total",
        "counter",
        "Point values published (report by exception: changes and heartbeats).",
    );
    for d in devices {
        o.line(
            "ferrule_device_points_published_total",
            &format!("device=\"{}\"", label(&d.name)),
            d.published,
        );
    }
}

fn render_broker(o: &mut Out, b: &StatsSnapshot) {
    o.one(
        "ferrule_broker_clients_connected",
        "gauge",
        "MQTT clients connected.",
        b.clients_connected,
    );
    o.one(
        "ferrule_broker_connects_total",
        "counter",
        "Successful MQTT connects.",
        b.connects,
    );
    o.one(
        "ferrule_broker_auth_failures_total",
        "counter",
        "Connects refused.",
        b.auth_failures,
    );
    o.one(
        "ferrule_broker_messages_received_total",
        "counter",
        "PUBLISH packets received from clients.",
        b.messages_received,
    );
    o.one(
        "ferrule_broker_messages_sent_total",
        "counter",
        "PUBLISH packets sent to clients.",
        b.messages_sent,
    );
    o.one(
        "ferrule_broker_bytes_received_total",
        "counter",
        "Bytes of PUBLISH packets received.",
        b.bytes_received,
    );
    o.one(
        "ferrule_broker_bytes_sent_total",
        "counter",
        "Bytes of PUBLISH packets sent.",
        b.bytes_sent,
    );
    o.head(
        "ferrule_broker_messages_dropped_total",
        "counter",
        "Messages not delivered, by reason.",
    );
    o.line(
        "ferrule_broker_messages_dropped_total",
        "reason=\"queue_full\"",
        b.dropped_queue_full,
    );
    o.line(
        "ferrule_broker_messages_dropped_total",
        "reason=\"other\"",
        b.dropped_other,
    );
    o.line(
        "ferrule_broker_messages_dropped_total",
        "reason=\"tap_refused\"",
        b.tap_refused,
    );
}

fn render_queue(o: &mut Out, stats: &Stats, counters: &Counters, now: SystemTime) {
    o.one(
        "ferrule_queue_depth",
        "gauge",
        "Messages waiting to be forwarded upstream.",
        stats.depth,
    );
    o.one(
        "ferrule_queue_bytes",
        "gauge",
        "Bytes of topic and payload waiting.",
        stats.bytes,
    );
    let now_ms = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let age = stats
        .oldest_ms
        .map_or(0.0, |ms| (now_ms.saturating_sub(ms)).max(0) as f64 / 1000.0);
    o.one(
        "ferrule_queue_oldest_age_seconds",
        "gauge",
        "Age of the oldest waiting message (0 when empty).",
        age,
    );
    o.head(
        "ferrule_queue_messages_total",
        "counter",
        "Messages by what happened to them since start: enqueued, delivered (forwarded and acknowledged), dropped and refused by reason.",
    );
    for (c, n) in counters.messages.iter() {
        o.line(
            "ferrule_queue_messages_total",
            &format!("event=\"{}\"", c.name()),
            n,
        );
    }
    o.one(
        "ferrule_queue_commits_total",
        "counter",
        "Write transactions committed.",
        counters.commits,
    );
    o.one(
        "ferrule_queue_commit_failures_total",
        "counter",
        "Write transactions that failed.",
        counters.failed_commits,
    );
}

fn render_uplink(o: &mut Out, u: &LinkState) {
    o.one(
        "ferrule_uplink_connected",
        "gauge",
        "1 when the upstream connection is up.",
        u8::from(u.connected),
    );
    o.one(
        "ferrule_uplink_connects_total",
        "counter",
        "Upstream connections made.",
        u.connects,
    );
    o.one(
        "ferrule_uplink_reconnects_total",
        "counter",
        "Upstream connections made after the first one.",
        u.connects.saturating_sub(1),
    );
    o.one(
        "ferrule_uplink_sent_total",
        "counter",
        "Messages handed to the upstream connection.",
        u.sent,
    );
    o.one(
        "ferrule_uplink_delivered_total",
        "counter",
        "Messages the upstream acknowledged.",
        u.delivered,
    );
    o.one(
        "ferrule_uplink_downlink_total",
        "counter",
        "Downlink messages published locally.",
        u.downlink,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_is_read_from_proc_status() {
        assert_eq!(
            rss_from_status("Name:\tferrule\nVmRSS:\t    5120 kB\nThreads: 3\n"),
            Some(5120 * 1024)
        );
        assert_eq!(rss_from_status("Name: x\n"), None);
        assert!(resident_bytes().is_some_and(|b| b > 0));
    }

    #[test]
    fn devices_render_with_escaped_labels_and_cumulative_buckets() {
        let m = Metrics::default();
        let d = m.device("boiler \"1\"");
        d.polled();
        d.latency(Duration::from_millis(3));
        d.latency(Duration::from_millis(40));
        d.error(ErrorKind::NoAnswer);
        d.published(4);
        let snapshot = Snapshot {
            ready: true,
            devices: vec![d.snapshot("boiler \"1\"")],
            broker: None,
            queue: None,
            uplink: None,
            reloads_ok: 2,
            reloads_failed: 1,
            parts: {
                let parts = crate::health::parts::Parts::default();
                parts.running("line tcp 10.0.0.5:502");
                parts.failed("line tcp 10.0.0.5:502", "panicked: boom");
                parts.running("line tcp 10.0.0.5:502");
                parts.running("uplink");
                parts.failed("uplink", "ended");
                parts.snapshot()
            },
            rss_bytes: Some(1),
            now: SystemTime::now(),
        };
        let text = render(&snapshot);
        for want in [
            "ferrule_device_polls_total{device=\"boiler \\\"1\\\"\"} 1\n",
            "ferrule_device_read_seconds_bucket{device=\"boiler \\\"1\\\"\",le=\"0.005\"} 1\n",
            "ferrule_device_read_seconds_bucket{device=\"boiler \\\"1\\\"\",le=\"0.05\"} 2\n",
            "ferrule_device_read_seconds_bucket{device=\"boiler \\\"1\\\"\",le=\"+Inf\"} 2\n",
            "ferrule_device_read_seconds_count{device=\"boiler \\\"1\\\"\"} 2\n",
            "ferrule_device_errors_total{device=\"boiler \\\"1\\\"\",kind=\"no_answer\"} 1\n",
            "ferrule_device_points_published_total{device=\"boiler \\\"1\\\"\"} 4\n",
            "ferrule_reloads_total 2\n",
            "ferrule_reload_failures_total 1\n",
            "ferrule_ready 1\n",
            "ferrule_task_up{task=\"line tcp 10.0.0.5:502\"} 1\n",
            "ferrule_task_up{task=\"uplink\"} 0\n",
            "ferrule_task_restarts_total{task=\"line tcp 10.0.0.5:502\"} 1\n",
            "ferrule_task_restarts_total{task=\"uplink\"} 0\n",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        m.retain_devices(["other"]);
        assert_eq!(m.devices_online(), (0, 0));
    }
}
