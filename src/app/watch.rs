//! What triggers a reload: a change to the config file (watched with `notify` on its
//! directory, so editors that save by writing a new file and renaming it over the old one are
//! seen as well as in-place saves) and SIGHUP.
//!
//! Invariant: a burst of file events (truncate, write, rename, chmod of one save) gives one
//! trigger, [`DEBOUNCE`] after the last event; SIGHUP triggers at once.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher as _};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::tree::Tree;

/// Quiet time after the last file event before the reload starts.
pub const DEBOUNCE: Duration = Duration::from_millis(300);

/// Why a reload starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    File,
    Signal,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::File => "config file changed",
            Self::Signal => "SIGHUP",
        }
    }
}

/// The reload triggers of one config file (and of its profile files).
pub struct Triggers {
    rx: mpsc::Receiver<Trigger>,
    /// Dropping a watcher stops its watch.
    _watchers: Vec<notify::RecommendedWatcher>,
}

impl Triggers {
    /// Watches `path`'s directory and listens for SIGHUP. A watch that cannot be set up is
    /// logged (SIGHUP still works).
    pub fn start(path: &Path, profiles_dir: Option<&Path>, tree: &Tree) -> Self {
        let (tx, rx) = mpsc::channel(4);
        // Registered here, before READY=1: a SIGHUP that comes at once must not find the
        // default action (terminate) in place.
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(hup) => {
                spawn(tree, on_sighup(hup, tx.clone()));
            }
            Err(e) => warn!(error = %e, "cannot listen for SIGHUP"),
        }
        let mut watchers = Vec::new();
        match watch_file(path, tx.clone(), tree) {
            Ok(w) => watchers.push(w),
            Err(e) => {
                warn!(path = %path.display(), error = %e, "cannot watch the config file; reload with SIGHUP");
            }
        }
        if let Some(dir) = profiles_dir {
            match watch_profiles(dir, tx.clone(), tree) {
                Ok(w) => watchers.push(w),
                Err(e) => {
                    warn!(dir = %dir.display(), error = %e, "cannot watch the profiles directory; reload with SIGHUP");
                }
            }
        }
        Self {
            rx,
            _watchers: watchers,
        }
    }

    /// The next trigger; pending forever when nothing can trigger any more.
    pub async fn next(&mut self) -> Trigger {
        match self.rx.recv().await {
            Some(t) => t,
            None => std::future::pending().await,
        }
    }
}

fn watch_file(
    path: &Path,
    triggers: mpsc::Sender<Trigger>,
    tree: &Tree,
) -> notify::Result<notify::RecommendedWatcher> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name: OsString = path.file_name().map(OsString::from).unwrap_or_default();
    let (raw_tx, raw_rx) = mpsc::unbounded_channel::<()>();
    let mut watcher =
        notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
            Ok(event) if concerns(&event, &name) => {
                let _ = raw_tx.send(());
            }
            Ok(_) => {}
            Err(e) => debug!(error = %e, "config watch error"),
        })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    info!(dir = %dir.display(), "watching the config file for changes");
    spawn(tree, debounce(raw_rx, triggers));
    Ok(watcher)
}

/// Watches the profile files (`*.yaml`, `*.yml`) of `dir`: a change to one reloads the config
/// (the diff then restarts the devices whose resolved map changed).
fn watch_profiles(
    dir: &Path,
    triggers: mpsc::Sender<Trigger>,
    tree: &Tree,
) -> notify::Result<notify::RecommendedWatcher> {
    let (raw_tx, raw_rx) = mpsc::unbounded_channel::<()>();
    let mut watcher =
        notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
            Ok(event) if concerns_profile(&event) => {
                let _ = raw_tx.send(());
            }
            Ok(_) => {}
            Err(e) => debug!(error = %e, "profiles watch error"),
        })?;
    watcher.watch(dir, RecursiveMode::NonRecursive)?;
    info!(dir = %dir.display(), "watching the profiles directory for changes");
    spawn(tree, debounce(raw_rx, triggers));
    Ok(watcher)
}

/// Spawns `task` in the agent's tree, ending with the tree.
fn spawn(tree: &Tree, task: impl std::future::Future<Output = ()> + Send + 'static) {
    drop(tree.task(|cancel| async move {
        tokio::select! {
            () = cancel.cancelled() => {}
            () = task => {}
        }
    }));
}

fn concerns_profile(event: &notify::Event) -> bool {
    let changes = matches!(
        event.kind,
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) | EventKind::Any
    );
    changes
        && event
            .paths
            .iter()
            .any(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
}

/// Whether `event` may have changed the file named `name` (reads and opens do not).
fn concerns(event: &notify::Event, name: &OsString) -> bool {
    let changes = matches!(
        event.kind,
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) | EventKind::Any
    );
    changes
        && event
            .paths
            .iter()
            .any(|p| p.file_name() == Some(name.as_os_str()))
}

/// One trigger per burst of events.
async fn debounce(mut raw: mpsc::UnboundedReceiver<()>, triggers: mpsc::Sender<Trigger>) {
    while raw.recv().await.is_some() {
        loop {
            match tokio::time::timeout(DEBOUNCE, raw.recv()).await {
                Ok(Some(())) => continue,
                Ok(None) => return,
                Err(_) => break,
            }
        }
        if triggers.send(Trigger::File).await.is_err() {
            return;
        }
    }
}

async fn on_sighup(mut hup: tokio::signal::unix::Signal, triggers: mpsc::Sender<Trigger>) {
    while hup.recv().await.is_some() {
        if triggers.send(Trigger::Signal).await.is_err() {
            return;
        }
    }
}
