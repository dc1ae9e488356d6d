//! The uplink task: checks and prepares everything at start-up (TLS material, password), then
//! connects, drains, and reconnects with capped exponential backoff and jitter until the agent
//! stops. Beside it run the status publisher and the downlink publisher.
//!
//! Logs: `uplink connected` (with the backlog) at every connect; `uplink disconnected` (with the
//! error, in plain words) when a connection is lost, and for failed attempts when the error
//! changes or every [`LOG_EVERY_ATTEMPTS`] attempts, so a long outage does not flood the log.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::downlink::Downlinks;
use super::drain::{Carry, Context, Drain, Outcome};
use super::session::{Options, Will};
use super::status::{publish_status, LinkStatus};
use super::{tls, Local};
use crate::backoff::Backoff;
use crate::broker::Message;
use crate::config::{Reconnect, Secret, Uplink};
use crate::sparkplug::EdgeNode;
use crate::topics::Topics;

pub use super::drain::DRAIN_DEADLINE;

/// Failed connection attempts between two repeated logs of the same error.
pub const LOG_EVERY_ATTEMPTS: u32 = 20;
/// Downlink messages waiting for the local broker.
const DOWNLINK_BACKLOG: usize = 1024;

/// Errors that stop the uplink from starting.
#[derive(Debug, thiserror::Error)]
pub enum UplinkError {
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("cannot read the uplink password file {}: {source}", path.display())]
    PasswordFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the uplink password variable {name} is not set (or not UTF-8) in the agent's environment"
    )]
    PasswordEnv { name: String },
}

/// A prepared uplink.
pub struct UplinkTask {
    options: Options,
    reconnect: Reconnect,
    url: String,
    status_topic: String,
    status: Arc<LinkStatus>,
    local: Arc<dyn Local>,
    queue: crate::store::Queue,
    window: usize,
    max_rate: Option<u32>,
    sequence: crate::config::Sequence,
    will: Will,
    downlinks: Downlinks,
    beat: Option<crate::beat::Beat>,
    /// `uplink.sparkplug`, until [`UplinkTask::with_devices`] makes it an edge node.
    sparkplug: Option<crate::config::sparkplug::Sparkplug>,
    queue_path: PathBuf,
    node: Option<EdgeNode>,
}

impl UplinkTask {
    /// Reads the password and the TLS material (a clear error when they are missing or bad)
    /// and prepares the connection options. `local` receives downlink messages and the link
    /// state.
    pub fn new(
        cfg: &Uplink,
        topics: &Topics,
        queue: crate::store::Queue,
        local: Arc<dyn Local>,
    ) -> Result<Self, UplinkError> {
        let password = cfg.password.as_ref().map(read_secret).transpose()?;
        let tls = if cfg.url.tls() {
            let identity = cfg.cert.as_deref().zip(cfg.key.as_deref());
            Some(tls::client_config(cfg.ca.as_deref(), identity)?)
        } else {
            None
        };
        let will = Will {
            topic: topics.agent_state(),
            offline: "offline",
            online: "online",
        };
        let options = Options::new(cfg, &will, password, tls);
        Ok(Self {
            options,
            reconnect: cfg.reconnect,
            url: cfg.url.to_string(),
            status_topic: topics.agent_uplink(),
            status: Arc::new(LinkStatus::default()),
            local,
            queue,
            window: usize::from(cfg.window.max(1)),
            max_rate: cfg.max_rate,
            sequence: cfg.sequence.clone(),
            will,
            downlinks: Downlinks::new(cfg.downlink.clone()),
            beat: None,
            sparkplug: cfg.sparkplug.clone(),
            queue_path: cfg.queue.path.clone(),
            node: None,
        })
    }

    /// Beats `beat` from every loop of the link (connecting, connected, waiting to reconnect),
    /// for the systemd watchdog.
    #[must_use]
    pub fn with_beat(mut self, beat: crate::beat::Beat) -> Self {
        self.beat = Some(beat);
        self
    }

    /// With `uplink.sparkplug`: the uplink is a Sparkplug B edge node whose devices are
    /// `devices` (the bdSeq is kept beside the queue, in `{queue}.bdseq`).
    #[must_use]
    pub fn with_devices<'d>(
        mut self,
        devices: impl IntoIterator<Item = &'d crate::config::Device>,
        topics: &Topics,
    ) -> Self {
        if let Some(cfg) = &self.sparkplug {
            let file = self.queue_path.with_extension("bdseq");
            self.node = Some(EdgeNode::new(cfg, devices, topics, file));
        }
        self
    }

    /// The state of the link, shared (for metrics).
    pub fn status(&self) -> Arc<LinkStatus> {
        Arc::clone(&self.status)
    }

    /// Runs until `cancel`, then drains for up to [`DRAIN_DEADLINE`] and publishes the final
    /// link state.
    pub async fn run(mut self, cancel: CancellationToken) {
        let (downlink_tx, downlink_rx) = mpsc::channel(DOWNLINK_BACKLOG);
        let downlink = tokio::spawn(publish_downlink(Arc::clone(&self.local), downlink_rx));
        let status_cancel = CancellationToken::new();
        let status_task = tokio::spawn(publish_status(
            Arc::clone(&self.status),
            self.queue.clone(),
            Arc::clone(&self.local),
            self.status_topic.clone(),
            self.url.clone(),
            status_cancel.clone(),
        ));
        let ctx = Context {
            queue: self.queue.clone(),
            status: Arc::clone(&self.status),
            window: self.window,
            max_rate: self.max_rate,
            sequence: self.sequence.clone(),
            will: self.will.clone(),
            downlinks: self.downlinks.clone(),
            downlink_tx,
            beat: self.beat.take(),
        };
        let mut backoff = Backoff::new(self.reconnect.initial, self.reconnect.max);
        let mut carry = Carry::default();
        let follow = self.node.as_ref().and_then(|node| {
            let rx = self.local.follow(&node.follow_filter())?;
            Some(tokio::spawn(crate::sparkplug::follow(rx, node.latest())))
        });
        carry.node = self.node.take();
        let mut last_error: Option<String> = None;
        loop {
            let session = match carry.node.as_mut() {
                Some(node) => {
                    let will = node.connecting(crate::sparkplug::now_ms());
                    self.options.session_with_will(&will.topic, will.payload)
                }
                None => self.options.session(),
            };
            let drain = Drain::new(&ctx, &mut carry, session);
            let delay = match drain.run(&cancel).await {
                Outcome::Stopped => break,
                Outcome::Reset(why) => {
                    warn!(reason = %why, "uplink reconnecting");
                    backoff.reset();
                    Duration::ZERO
                }
                Outcome::Failed { error, connected } => {
                    self.status.disconnected(&error);
                    if connected {
                        backoff.reset();
                    }
                    let attempts = backoff.attempts();
                    if connected
                        || last_error.as_deref() != Some(error.as_str())
                        || attempts.is_multiple_of(LOG_EVERY_ATTEMPTS)
                    {
                        warn!(error = %error, attempts, "uplink disconnected");
                    }
                    last_error = Some(error);
                    backoff.next_delay()
                }
            };
            let sleep = tokio::time::sleep(delay);
            tokio::pin!(sleep);
            let stop = loop {
                ctx.beat();
                tokio::select! {
                    () = cancel.cancelled() => break true,
                    () = &mut sleep => break false,
                    () = ctx.beat_due() => {}
                }
            };
            if stop {
                break;
            }
        }
        if let Some(b) = &ctx.beat {
            b.retire();
        }
        self.status.stopped();
        if let Some(f) = follow {
            f.abort();
        }
        drop(ctx);
        status_cancel.cancel();
        let _ = status_task.await;
        let _ = downlink.await;
        info!("uplink stopped");
    }
}

/// Publishes downlink messages into the local broker, in order.
async fn publish_downlink(local: Arc<dyn Local>, mut rx: mpsc::Receiver<Message>) {
    while let Some(msg) = rx.recv().await {
        let topic = msg.topic.clone();
        if let Err(e) = local.publish(msg).await {
            warn!(%topic, error = %e, "cannot publish a downlink message locally");
        }
    }
}

/// The password: a file's content without one trailing newline, or an environment variable.
fn read_secret(secret: &Secret) -> Result<String, UplinkError> {
    match secret {
        Secret::File(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|source| UplinkError::PasswordFile {
                    path: path.clone(),
                    source,
                })?;
            let text = text
                .strip_suffix("\r\n")
                .or_else(|| text.strip_suffix('\n'))
                .unwrap_or(&text);
            Ok(text.to_owned())
        }
        Secret::Env(name) => {
            std::env::var(name).map_err(|_| UplinkError::PasswordEnv { name: name.clone() })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_files_lose_one_trailing_newline_only() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        for (content, want) in [
            ("s3cret\n", "s3cret"),
            ("s3cret\r\n", "s3cret"),
            ("a b \n\n", "a b \n"),
            ("x", "x"),
        ] {
            let path = dir.path().join("p");
            std::fs::write(&path, content)?;
            assert_eq!(read_secret(&Secret::File(path))?, want);
        }
        let missing = read_secret(&Secret::File(dir.path().join("none")));
        assert!(matches!(missing, Err(UplinkError::PasswordFile { .. })));
        let unset = read_secret(&Secret::Env("FERRULE_TEST_SURELY_UNSET_VARIABLE".into()));
        assert!(unset.is_err_and(|e| e.to_string().contains("FERRULE_TEST_SURELY_UNSET_VARIABLE")));
        Ok(())
    }
}
