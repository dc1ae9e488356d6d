//! `ferrule queue stats|peek|purge --config FILE`: the uplink queue of a config, looked at (or
//! emptied) from outside the agent, while it runs or not.
//!
//! `stats` and `peek` only read (the file is opened read-only and never created, migrated or
//! moved); `purge` asks for confirmation unless `--yes`, deletes every queued message in one
//! transaction and counts them as `purged` (a running agent notices and recounts).

use std::io::{BufRead, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context as _};

use super::args::{ConfigArg, QueueCommand};
use crate::config::{self, QueueConfig};
use crate::payload::timestamp;
use crate::store::inspect::{self, Snapshot};
use crate::store::{Counter, Row};

/// Runs a `queue` subcommand.
pub fn main(cmd: QueueCommand) -> ExitCode {
    let result = match &cmd {
        QueueCommand::Stats {
            config,
            json,
            interval,
        } => with_queue(config, |q| stats(q, *json, *interval)),
        QueueCommand::Peek { config, count } => with_queue(config, |q| peek(q, *count)),
        QueueCommand::Purge(args) => with_queue(&args.config, |q| purge(q, args.yes)),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn with_queue(
    arg: &ConfigArg,
    f: impl FnOnce(&QueueConfig) -> anyhow::Result<ExitCode>,
) -> anyhow::Result<ExitCode> {
    let path = match arg.path() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(super::common::EXIT_INVALID));
        }
    };
    let config = match config::load(path) {
        Ok(c) => c,
        Err(e) => return Ok(super::common::invalid(&e)),
    };
    let Some(uplink) = config.uplink else {
        bail!(
            "{} has no `uplink` section, so there is no queue",
            path.display()
        );
    };
    f(&uplink.queue)
}

fn snapshot(path: &Path) -> anyhow::Result<Snapshot> {
    inspect::snapshot(path).with_context(|| format!("cannot read the queue {}", path.display()))
}

fn stats(q: &QueueConfig, json: bool, interval: Duration) -> anyhow::Result<ExitCode> {
    let first = snapshot(&q.path)?;
    let (last, rates) = if interval.is_zero() {
        (first.clone(), None)
    } else {
        std::thread::sleep(interval);
        let second = snapshot(&q.path)?;
        let per_sec = |c: Counter| {
            second.totals.get(c).saturating_sub(first.totals.get(c)) as f64 / interval.as_secs_f64()
        };
        let rates = (per_sec(Counter::Enqueued), per_sec(Counter::Delivered));
        (second, Some(rates))
    };
    let now_ms = chrono::Utc::now().timestamp_millis();
    if json {
        println!("{}", stats_json(&last, q, rates, now_ms));
    } else {
        print!("{}", stats_text(&last, q, rates, now_ms));
    }
    Ok(ExitCode::SUCCESS)
}

/// `ferrule queue stats --json`.
pub fn stats_json(
    s: &Snapshot,
    q: &QueueConfig,
    rates: Option<(f64, f64)>,
    now_ms: i64,
) -> serde_json::Value {
    let totals: serde_json::Map<String, serde_json::Value> = s
        .totals
        .iter()
        .map(|(c, n)| (c.name().to_owned(), n.into()))
        .collect();
    serde_json::json!({
        "path": s.path.display().to_string(),
        "depth": s.depth,
        "bytes": s.bytes,
        "oldest_id": s.oldest.map(|(id, _)| id),
        "oldest_age_s": s.oldest.map(|(_, ms)| (now_ms - ms).max(0) as f64 / 1000.0),
        "last_id": s.last_id,
        "file_bytes": s.file_bytes,
        "wal_bytes": s.wal_bytes,
        "free_bytes": s.free_bytes,
        "rate_in_per_s": rates.map(|r| r.0),
        "rate_out_per_s": rates.map(|r| r.1),
        "since_created": totals,
        "lost": s.totals.lost(),
        "max_bytes": q.max_bytes,
        "max_messages": q.max_messages,
        "max_age_s": q.max_age.map(|a| a.as_secs_f64()),
        "on_full": q.on_full.as_str(),
    })
}

/// `ferrule queue stats` as text.
pub fn stats_text(s: &Snapshot, q: &QueueConfig, rates: Option<(f64, f64)>, now_ms: i64) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let t = &s.totals;
    let _ = writeln!(out, "queue {}", s.path.display());
    let _ = writeln!(
        out,
        "  messages   {} ({} of topics and payloads)",
        s.depth,
        size(s.bytes)
    );
    match s.oldest {
        Some((id, ms)) => {
            let age = Duration::from_millis(u64::try_from(now_ms - ms).unwrap_or(0));
            let at = std::time::UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
            let _ = writeln!(
                out,
                "  oldest     {} ({} ago), id {id}",
                timestamp(at),
                age_text(age)
            );
        }
        None => {
            let _ = writeln!(out, "  oldest     -");
        }
    }
    let _ = writeln!(out, "  last id    {}", s.last_id);
    let _ = writeln!(
        out,
        "  file       {} + {} WAL, {} free",
        size(s.file_bytes),
        size(s.wal_bytes),
        size(s.free_bytes)
    );
    if let Some((rate_in, rate_out)) = rates {
        let _ = writeln!(out, "  rates      in {rate_in:.1}/s, out {rate_out:.1}/s");
    }
    let _ = writeln!(
        out,
        "  since the file was created: enqueued {}, delivered {}, purged {}",
        t.get(Counter::Enqueued),
        t.get(Counter::Delivered),
        t.get(Counter::Purged)
    );
    let _ = writeln!(
        out,
        "  lost {}: dropped max_bytes {}, max_messages {}, max_age {}; refused full {}, too large {}, upstream {}",
        t.lost(),
        t.get(Counter::DroppedMaxBytes),
        t.get(Counter::DroppedMaxMessages),
        t.get(Counter::DroppedMaxAge),
        t.get(Counter::RejectedFull),
        t.get(Counter::RejectedTooLarge),
        t.get(Counter::RefusedUpstream)
    );
    let _ = writeln!(
        out,
        "  bounds     max_bytes {}, max_messages {}, max_age {}, on_full {}",
        size(q.max_bytes),
        q.max_messages
            .map_or_else(|| "-".to_owned(), |m| m.to_string()),
        q.max_age.map_or_else(|| "-".to_owned(), age_text),
        q.on_full.as_str()
    );
    out
}

fn peek(q: &QueueConfig, n: usize) -> anyhow::Result<ExitCode> {
    let rows = inspect::peek(&q.path, n)
        .with_context(|| format!("cannot read the queue {}", q.path.display()))?;
    let mut out = std::io::stdout().lock();
    for row in &rows {
        let _ = writeln!(out, "{}", peek_line(row));
    }
    if rows.is_empty() {
        let _ = writeln!(out, "(the queue is empty)");
    }
    Ok(ExitCode::SUCCESS)
}

/// One message: id, time, QoS, retain, topic, payload (text, cut at 200 characters, or a hex
/// preview of binary).
pub fn peek_line(row: &Row) -> String {
    let at =
        std::time::UNIX_EPOCH + Duration::from_millis(u64::try_from(row.enqueued_ms).unwrap_or(0));
    let r = &row.record;
    let payload = match std::str::from_utf8(&r.payload) {
        Ok(text) if text.chars().count() > 200 => {
            format!(
                "{}… ({} bytes)",
                text.chars().take(200).collect::<String>(),
                r.payload.len()
            )
        }
        Ok(text) => text.to_owned(),
        Err(_) => {
            let hex: String = r
                .payload
                .iter()
                .take(32)
                .map(|b| format!("{b:02x}"))
                .collect();
            format!(
                "<{} bytes: {hex}{}>",
                r.payload.len(),
                if r.payload.len() > 32 { "…" } else { "" }
            )
        }
    };
    format!(
        "{}  {}  qos{}{}  {}  {}",
        row.id,
        timestamp(at),
        r.qos,
        if r.retain { " retained" } else { "" },
        r.topic,
        payload
    )
}

fn purge(q: &QueueConfig, yes: bool) -> anyhow::Result<ExitCode> {
    let s = snapshot(&q.path)?;
    if !yes {
        print!(
            "This deletes all {} queued message(s) ({}) from {}; they will never be sent.\nType yes to confirm: ",
            s.depth,
            size(s.bytes),
            q.path.display()
        );
        let _ = std::io::stdout().flush();
        let mut answer = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut answer)
            .context("cannot read the answer")?;
        if !matches!(answer.trim(), "yes" | "y") {
            println!("aborted: nothing was deleted");
            return Ok(ExitCode::FAILURE);
        }
    }
    let n = inspect::purge(&q.path)
        .with_context(|| format!("cannot purge the queue {}", q.path.display()))?;
    println!("purged {n} message(s) from {}", q.path.display());
    Ok(ExitCode::SUCCESS)
}

/// `1.2 MiB`.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `3m12s`, `2h05m`, `4d03h`.
pub fn age_text(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{:.1}s", d.as_secs_f64()),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86_400 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3600),
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::store::Record;

    #[test]
    fn sizes_and_ages_read_well() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(1 << 30), "1.0 GiB");
        assert_eq!(age_text(Duration::from_millis(1500)), "1.5s");
        assert_eq!(age_text(Duration::from_secs(192)), "3m12s");
        assert_eq!(age_text(Duration::from_secs(2 * 3600 + 5 * 60)), "2h05m");
        assert_eq!(
            age_text(Duration::from_secs(4 * 86_400 + 3 * 3600)),
            "4d03h"
        );
    }

    #[test]
    fn peek_lines_show_text_and_binary() {
        let row = |payload: &[u8], retain| Row {
            id: 7,
            enqueued_ms: 1_795_000_000_123,
            record: Record {
                topic: "plant1/boiler/temp".into(),
                payload: Bytes::copy_from_slice(payload),
                qos: 1,
                retain,
            },
        };
        assert_eq!(
            peek_line(&row(br#"{"value":21.5}"#, true)),
            r#"7  2026-11-18T11:06:40.123Z  qos1 retained  plant1/boiler/temp  {"value":21.5}"#
        );
        assert!(peek_line(&row(&[0, 255], false)).ends_with("<2 bytes: 00ff>"));
    }
}
