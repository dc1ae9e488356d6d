//! The systemd side of a running agent: `STATUS=` updates (devices online/total, backlog,
//! uplink state) and `WATCHDOG=1` pings at half the watchdog interval, sent only while every
//! watched task makes progress (see `beat.rs`).
//!
//! Invariant: a task silent for longer than the watchdog interval stops the pings until it
//! beats again; systemd then kills and restarts the agent one interval later.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::metrics::Metrics;
use super::notify::Notifier;
use crate::beat::{Progress, Stalled, DEFAULT_PERIOD};

/// How often the status line is refreshed when there is no watchdog.
pub const STATUS_EVERY: Duration = Duration::from_secs(5);

/// How often tasks beat for a watchdog interval: four beats per interval, at most
/// [`DEFAULT_PERIOD`] apart.
pub fn beat_period(watchdog: Option<Duration>) -> Duration {
    watchdog.map_or(DEFAULT_PERIOD, |w| (w / 4).min(DEFAULT_PERIOD))
}

/// The `STATUS=` text (pure).
pub fn status_line(
    devices: (usize, usize),
    backlog: Option<u64>,
    uplink: Option<(bool, Option<&str>)>,
    down: Option<&str>,
) -> String {
    let (online, total) = devices;
    let mut s = format!("devices {online}/{total} online");
    if let Some(depth) = backlog {
        s.push_str(&format!(", backlog {depth}"));
    }
    match uplink {
        None => s.push_str(", uplink off"),
        Some((true, _)) => s.push_str(", uplink connected"),
        Some((false, None)) => s.push_str(", uplink connecting"),
        Some((false, Some(e))) => s.push_str(&format!(", uplink down: {e}")),
    }
    if let Some(down) = down {
        s.push_str(&format!(", restarting: {down}"));
    }
    s
}

/// Sends status updates and (with `watchdog`) pings until `cancel`.
pub async fn run(
    notifier: Arc<Notifier>,
    watchdog: Option<Duration>,
    progress: Progress,
    metrics: Metrics,
    cancel: CancellationToken,
) {
    let every = watchdog.map_or(STATUS_EVERY, |w| (w / 2).min(STATUS_EVERY));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_status = String::new();
    let mut stalled_before: Vec<String> = Vec::new();
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            _ = tick.tick() => {}
        }
        let backlog = metrics.queue_stats().await.map(|s| s.depth);
        let uplink = metrics.uplink();
        let status = status_line(
            metrics.devices_online(),
            backlog,
            uplink
                .as_ref()
                .map(|u| (u.connected, u.last_error.as_deref())),
            metrics.parts().describe_down().as_deref(),
        );
        if status != last_status {
            notifier.notify(&format!("STATUS={status}"));
            last_status = status;
        }
        let Some(interval) = watchdog else {
            continue;
        };
        let stalled = progress.stalled(interval);
        if stalled.is_empty() {
            if !stalled_before.is_empty() {
                info!("every task makes progress again; feeding the systemd watchdog");
                stalled_before.clear();
            }
            notifier.notify("WATCHDOG=1");
        } else {
            let names: Vec<String> = stalled.iter().map(|s| s.name.clone()).collect();
            if names != stalled_before {
                warn!(tasks = %describe(&stalled), "no progress: not feeding the systemd watchdog");
                stalled_before = names;
            }
        }
    }
}

fn describe(stalled: &[Stalled]) -> String {
    stalled
        .iter()
        .map(|s| format!("{} (silent {:.1}s)", s.name, s.silent.as_secs_f64()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_say_devices_backlog_and_uplink() {
        assert_eq!(
            status_line((3, 4), Some(12), Some((true, None)), None),
            "devices 3/4 online, backlog 12, uplink connected"
        );
        assert_eq!(
            status_line(
                (0, 1),
                Some(0),
                Some((false, Some("connection refused"))),
                None
            ),
            "devices 0/1 online, backlog 0, uplink down: connection refused"
        );
        assert_eq!(
            status_line((1, 1), None, None, None),
            "devices 1/1 online, uplink off"
        );
        assert_eq!(
            status_line(
                (0, 1),
                None,
                None,
                Some("line tcp 10.0.0.5:502 (panicked: boom)")
            ),
            "devices 0/1 online, uplink off, restarting: line tcp 10.0.0.5:502 (panicked: boom)"
        );
    }

    #[test]
    fn beats_come_four_times_per_interval_at_most_five_seconds_apart() {
        assert_eq!(
            beat_period(Some(Duration::from_secs(2))),
            Duration::from_millis(500)
        );
        assert_eq!(beat_period(Some(Duration::from_secs(60))), DEFAULT_PERIOD);
        assert_eq!(beat_period(None), DEFAULT_PERIOD);
    }

    /// With paused time: pings while the task beats, none once it stops.
    #[tokio::test(start_paused = true)]
    async fn pings_stop_when_a_task_stops_beating() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("notify");
        let server = tokio::net::UnixDatagram::bind(&path)?;
        let notifier = Arc::new(Notifier::for_path(&path)?);
        let interval = Duration::from_secs(2);
        let progress = Progress::new(beat_period(Some(interval)));
        let beat = progress.register("line tcp 10.0.0.1:502");
        let cancel = CancellationToken::new();
        let task = tokio::spawn(run(
            notifier,
            Some(interval),
            progress.clone(),
            Metrics::default(),
            cancel.clone(),
        ));
        let mut buf = [0u8; 256];
        let mut pings = 0;
        // The task beats: pings arrive (after the status line).
        while pings < 3 {
            let len = server.recv(&mut buf).await?;
            if &buf[..len] == b"WATCHDOG=1" {
                pings += 1;
            }
            beat.beat();
        }
        // It stops beating: within a few intervals the pings stop for good.
        let quiet = tokio::time::timeout(interval * 10, async {
            loop {
                match tokio::time::timeout(interval * 2, server.recv(&mut buf)).await {
                    Err(_) => break,
                    Ok(r) => {
                        r?;
                    }
                }
            }
            Ok::<_, std::io::Error>(())
        })
        .await;
        assert!(matches!(quiet, Ok(Ok(()))), "pings went on: {quiet:?}");
        // It beats again: pings resume.
        beat.beat();
        let len = tokio::time::timeout(interval * 2, server.recv(&mut buf)).await??;
        assert_eq!(&buf[..len], b"WATCHDOG=1");
        cancel.cancel();
        task.await?;
        Ok(())
    }
}
