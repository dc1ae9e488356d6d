//! The command path across reloads: one subscription to the command topics feeds a relay
//! that hands each command to the current router ([`command::run`] with the current devices),
//! which runs under its supervisor (a router that panics is restarted on a new channel).
//!
//! Invariants: replacing the router loses no command: the relay switches to the new router's
//! channel, and the old router, its channel closed, finishes the commands it has queued first,
//! then hands the commands it holds for confirmation to the new one (which adopts them before
//! its first command; `command::Handover`). A
//! restarted router takes the relay over only if it has not been replaced meanwhile.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tracing::warn;

use super::supervise::{supervise, Part, POLICY};
use super::tree::{Task, Tree};
use crate::broker::{Broker, Message};
use crate::command::{self, Handover, Target};
use crate::config::CommandSettings;
use crate::health::parts::Parts;
use crate::topics::Topics;

/// Commands waiting in the in-process subscription and in each router.
const COMMAND_BACKLOG: usize = 1024;
/// How long an old router gets to finish its commands.
const ROUTER_DRAIN: Duration = Duration::from_secs(10);
/// The router's name in `/health`, logs and metrics.
const PART: &str = "commands";

/// The channel the relay feeds, and the generation of the router that owns it.
type Current = Arc<Mutex<(u64, mpsc::Sender<Message>)>>;

pub struct Router {
    current: Current,
    generation: u64,
    /// Where the current generation hands its held commands when it is replaced.
    successor: Successor,
    relay: Task,
    task: Task,
    tree: Tree,
    parts: Parts,
}

type Successor = Arc<Mutex<Option<oneshot::Sender<Vec<command::Handed>>>>>;

/// What one generation of the router serves.
struct Generation {
    targets: Vec<Target>,
    topics: Topics,
    broker: Arc<Broker>,
    settings: CommandSettings,
    /// The previous generation's held commands (taken by the first instance only: a
    /// restarted instance has lost them with the one that failed).
    adopt: Mutex<Option<oneshot::Receiver<Vec<command::Handed>>>>,
    successor: Successor,
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
        tree: &Tree,
        parts: &Parts,
    ) -> Self {
        // Replaced by the first instance of generation 1 before any command can be relayed
        // to it (the relay only ever clones the sender under the lock).
        let (idle, _) = mpsc::channel(1);
        let current: Current = Arc::new(Mutex::new((0, idle)));
        let relay = tree.task(|cancel| {
            let current = current.clone();
            async move {
                tokio::select! {
                    () = cancel.cancelled() => {}
                    () = relay(commands, current) => {}
                }
            }
        });
        let successor = Successor::default();
        let generation = Generation {
            targets,
            topics: topics.clone(),
            broker: broker.clone(),
            settings,
            adopt: Mutex::new(None),
            successor: successor.clone(),
        };
        let task = spawn_generation(1, generation, &current, tree, parts);
        Self {
            current,
            generation: 1,
            successor,
            relay,
            task,
            tree: tree.clone(),
            parts: parts.clone(),
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
        self.generation += 1;
        // The old generation hands its held commands to the new one (set before its
        // channel closes, below).
        let (tx, rx) = oneshot::channel();
        *self
            .successor
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(tx);
        self.successor = Successor::default();
        let generation = Generation {
            targets,
            topics: topics.clone(),
            broker: broker.clone(),
            settings,
            adopt: Mutex::new(Some(rx)),
            successor: self.successor.clone(),
        };
        let task = spawn_generation(
            self.generation,
            generation,
            &self.current,
            &self.tree,
            &self.parts,
        );
        let old = std::mem::replace(&mut self.task, task);
        // The new generation took the relay over: the old one's channel is closed, so it
        // ends once it has finished what it holds.
        if tokio::time::timeout(ROUTER_DRAIN, old.handle)
            .await
            .is_err()
        {
            warn!("the previous command router did not finish within {ROUTER_DRAIN:?}");
            old.cancel.cancel();
        }
    }

    /// Stops routing (commands still queued are dropped: the agent is stopping).
    pub async fn stop(self) {
        self.relay.stop().await;
        self.task.stop().await;
        self.parts.remove(PART);
    }
}

/// Starts generation `id` under a supervisor: each instance takes the relay over (unless a
/// later generation has) on a new channel.
fn spawn_generation(
    id: u64,
    generation: Generation,
    current: &Current,
    tree: &Tree,
    parts: &Parts,
) -> Task {
    let part = Part {
        name: PART.to_owned(),
        parts: parts.clone(),
        tree: tree.clone(),
        policy: POLICY,
        forget: false,
    };
    let current = current.clone();
    let generation = Arc::new(generation);
    tree.task(move |cancel| {
        supervise(
            part,
            cancel,
            move |cancel| {
                let (tx, rx) = mpsc::channel(COMMAND_BACKLOG);
                let taken = {
                    let mut cur = current.lock().unwrap_or_else(PoisonError::into_inner);
                    let take = cur.0 <= id;
                    if take {
                        *cur = (id, tx);
                    }
                    take
                };
                let g = generation.clone();
                async move {
                    if taken {
                        let targets = g
                            .targets
                            .iter()
                            .map(|t| Target {
                                device: t.device.clone(),
                                handle: t.handle.clone(),
                            })
                            .collect();
                        let handover = Handover {
                            adopt: g
                                .adopt
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .take(),
                            successor: g.successor.clone(),
                        };
                        command::run(
                            targets,
                            g.topics.clone(),
                            g.broker.clone(),
                            rx,
                            g.settings,
                            cancel,
                            handover,
                        )
                        .await;
                    }
                    // Its channel closed (replaced) or cancelled: done either way.
                    Ok(())
                }
            },
            |_| async {},
        )
    })
}

async fn relay(mut commands: mpsc::Receiver<Message>, current: Current) {
    while let Some(msg) = commands.recv().await {
        let tx = current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .1
            .clone();
        // A closed router (stopping) drops the command, as before reloads existed.
        let _ = tx.send(msg).await;
    }
}
