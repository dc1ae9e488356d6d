//! The command path across reloads: one subscription to the command topics feeds a relay
//! that hands each command to the current router ([`command::run`] with the current devices).
//!
//! Invariant: replacing the router loses no command: the relay switches to the new router's
//! channel, and the old router, its channel closed, finishes the commands it holds first.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::broker::{Broker, Message};
use crate::command::{self, Target};
use crate::config::CommandSettings;
use crate::topics::Topics;

/// Commands waiting in the in-process subscription and in each router.
const COMMAND_BACKLOG: usize = 1024;
/// How long an old router gets to finish its commands.
const ROUTER_DRAIN: Duration = Duration::from_secs(10);

type Current = Arc<Mutex<mpsc::Sender<Message>>>;

pub struct Router {
    current: Current,
    relay: JoinHandle<()>,
    task: JoinHandle<()>,
    cancel: CancellationToken,
}

impl Router {
    /// The subscription to the command topics of `topics` (taken before the broker's
    /// clients can publish, so no early command is missed).
    pub fn subscribe(broker: &Broker, topics: &Topics) -> mpsc::Receiver<Message> {
        broker.subscribe(&topics.command_filter(), COMMAND_BACKLOG)
    }

    /// Routes `commands` to `targets`, under `settings` (the `commands` section).
    pub fn start(
        commands: mpsc::Receiver<Message>,
        broker: &Arc<Broker>,
        topics: &Topics,
        targets: Vec<Target>,
        settings: CommandSettings,
    ) -> Self {
        let (tx, rx) = mpsc::channel(COMMAND_BACKLOG);
        let cancel = CancellationToken::new();
        let task = tokio::spawn(command::run(
            targets,
            topics.clone(),
            broker.clone(),
            rx,
            settings,
            cancel.clone(),
        ));
        let current = Arc::new(Mutex::new(tx));
        let relay = tokio::spawn(relay(commands, current.clone()));
        Self {
            current,
            relay,
            task,
            cancel,
        }
    }

    /// Routes the next commands to `targets` under `settings`; the old router finishes what
    /// it holds (under the settings it was started with).
    pub async fn replace(
        &mut self,
        broker: &Arc<Broker>,
        topics: &Topics,
        targets: Vec<Target>,
        settings: CommandSettings,
    ) {
        let (tx, rx) = mpsc::channel(COMMAND_BACKLOG);
        let cancel = CancellationToken::new();
        let task = tokio::spawn(command::run(
            targets,
            topics.clone(),
            broker.clone(),
            rx,
            settings,
            cancel.clone(),
        ));
        drop(std::mem::replace(
            &mut *self.current.lock().unwrap_or_else(PoisonError::into_inner),
            tx,
        ));
        let old_task = std::mem::replace(&mut self.task, task);
        let old_cancel = std::mem::replace(&mut self.cancel, cancel);
        if tokio::time::timeout(ROUTER_DRAIN, old_task).await.is_err() {
            warn!("the previous command router did not finish within {ROUTER_DRAIN:?}");
            old_cancel.cancel();
        }
    }

    /// Stops routing (commands still queued are dropped: the agent is stopping or the
    /// broker is being replaced).
    pub async fn stop(self) {
        self.cancel.cancel();
        self.relay.abort();
        let _ = self.relay.await;
        let _ = self.task.await;
    }
}

async fn relay(mut commands: mpsc::Receiver<Message>, current: Current) {
    while let Some(msg) = commands.recv().await {
        let tx = current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        // A closed router (stopping) drops the command, as before reloads existed.
        let _ = tx.send(msg).await;
    }
}
