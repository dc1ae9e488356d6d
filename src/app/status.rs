//! Wiring of the live status page: its listener (bound with the others, so a taken port fails
//! start-up), its hub (subscribed before the lines start, so no first value is missed), its
//! server, and what a reload hands it (the broker, the site, the devices and their handles in
//! force, and the `status` section itself).
//!
//! A reload of the `status` section prepares, then swaps: a new address is bound before the
//! old listener stops (the same address keeps its listener, and only the settings — login,
//! TLS — are swapped for the next connections); when the new one cannot be bound or its TLS
//! cannot be set up, the old page stays in force, the section in force stays the old one (so
//! the next reload tries again) and the reload report says why. The one exception: a move to
//! another address on the same port (`127.0.0.1:9109` → `0.0.0.0:9109`) cannot bind while the
//! old listener holds the port, so the old one stops first; if the new one still cannot bind,
//! the old address is bound again.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::tree::{Task, Tree};
use super::Agent;
use crate::broker::Broker;
use crate::command::Target;
use crate::config::{Config, Device, ListenerTls, StatusConfig};
use crate::health::Metrics;
use crate::status::http::{self as status_http, Page};
use crate::status::{Auth, Hub};
use crate::topics::Topics;

pub(super) struct StatusPage {
    hub: Hub,
    hub_cancel: CancellationToken,
    server: Option<Server>,
    /// The agent's task tree, where the server runs.
    tree: Tree,
}

/// A running server and what it serves with.
struct Server {
    task: Task,
    /// The section it was started from (its `bind` may have port 0).
    section: StatusConfig,
    /// The address actually bound.
    local: SocketAddr,
    settings: Settings,
    pages: watch::Sender<Page>,
}

/// What the page's connections depend on in the config.
#[derive(Debug, Clone, PartialEq)]
struct Settings {
    login: bool,
    /// The TLS material of the broker listener the page borrows (only when `login`).
    tls: Option<ListenerTls>,
}

impl Settings {
    fn of(section: StatusConfig, config: &Config) -> Self {
        let login = section.is_exposed();
        let tls = config
            .broker
            .listeners
            .iter()
            .find_map(|l| l.tls.clone())
            .filter(|_| login);
        Self { login, tls }
    }
}

/// The page's listener, when the `status` section is on.
pub(super) async fn bind(config: &Config) -> anyhow::Result<Option<TcpListener>> {
    match &config.status {
        Some(s) => Ok(Some(status_http::bind(s.bind).await?)),
        None => Ok(None),
    }
}

impl StatusPage {
    /// Starts the hub now; the server starts with [`StatusPage::serve`].
    pub(super) fn start(
        config: &Config,
        broker: &Arc<Broker>,
        topics: &Topics,
        devices: &[Arc<Device>],
        metrics: &Metrics,
        tree: &Tree,
    ) -> Option<Self> {
        config.status?;
        let hub_cancel = tree.child();
        let hub = Hub::start(
            broker.clone(),
            topics,
            devices,
            metrics.clone(),
            hub_cancel.clone(),
        );
        Some(Self {
            hub,
            hub_cancel,
            server: None,
            tree: tree.clone(),
        })
    }

    /// The running devices, for raw reads.
    pub(super) fn set_targets(&self, targets: &[Target]) {
        self.hub.raw().set_targets(targets);
    }

    /// Serves the page on `listener` (bound from `config.status`): over TLS with the first
    /// TLS listener's certificate when the page is exposed and there is one.
    pub(super) fn serve(&mut self, listener: TcpListener, config: &Config) -> anyhow::Result<()> {
        let section = config
            .status
            .context("the status section is off: nothing to serve")?;
        let settings = Settings::of(section, config);
        let page = self.page(&settings, config, None)?;
        self.server = Some(Server::spawn(
            &self.tree, listener, section, settings, page,
        )?);
        Ok(())
    }

    /// The page for `settings`; `auth` (the sessions) is kept when the login requirement
    /// did not change.
    fn page(
        &self,
        settings: &Settings,
        config: &Config,
        auth: Option<Arc<Auth>>,
    ) -> anyhow::Result<Page> {
        let tls = match &settings.tls {
            Some(tls) => Some(tokio_rustls::TlsAcceptor::from(
                crate::status::tls::server_config(tls)
                    .context("cannot set up TLS for the status page")?,
            )),
            None => None,
        };
        let auth = auth
            .filter(|a| a.required() == settings.login)
            .unwrap_or_else(|| Arc::new(Auth::new(settings.login, &config.broker)));
        Ok(Page {
            hub: self.hub.clone(),
            auth,
            tls,
        })
    }

    /// After a reload: the broker, the site, the devices or their lines may have changed.
    pub(super) fn update(
        &self,
        config: &Config,
        broker: &Arc<Broker>,
        topics: &Topics,
        devices: &[Arc<Device>],
        targets: &[Target],
    ) {
        if let Some(server) = &self.server {
            server.pages.borrow().auth.set_broker(&config.broker);
        }
        self.hub.update(broker.clone(), topics, devices);
        self.set_targets(targets);
    }

    /// Applies `section` (the server keeps running as it was when this fails); a note for
    /// the reload report when something changed.
    async fn reconfigure(
        &mut self,
        section: StatusConfig,
        config: &Config,
    ) -> anyhow::Result<Option<String>> {
        let settings = Settings::of(section, config);
        let Some(server) = self.server.as_ref() else {
            let listener = status_http::bind(section.bind).await?;
            let local = listener.local_addr()?;
            self.serve(listener, config)?;
            return Ok(Some(format!("status page on at {local}")));
        };
        let auth = server.pages.borrow().auth.clone();
        let same_bind = server.section.bind == section.bind;
        let same_settings = server.settings == settings;
        let old_local = server.local;
        if same_bind && same_settings {
            return Ok(None);
        }
        let page = self.page(&settings, config, Some(auth))?;
        if same_bind {
            let Some(server) = self.server.as_mut() else {
                return Ok(None);
            };
            server.pages.send_replace(page);
            server.settings = settings;
            server.section = section;
            info!(addr = %old_local, login = server.settings.login, tls = server.settings.tls.is_some(), "status page settings changed; listener kept");
            return Ok(Some(format!(
                "status page settings changed on {old_local} (listener kept)"
            )));
        }
        let listener = match status_http::bind(section.bind).await {
            Ok(l) => l,
            Err(e)
                if e.source.kind() == std::io::ErrorKind::AddrInUse
                    && section.bind.port() == old_local.port() =>
            {
                self.rebind_same_port(section, old_local).await?
            }
            Err(e) => return Err(e.into()),
        };
        let new = Server::spawn(&self.tree, listener, section, settings, page)?;
        let local = new.local;
        if let Some(old) = self.server.replace(new) {
            old.task.stop().await;
        }
        info!(from = %old_local, to = %local, "status page moved");
        Ok(Some(format!(
            "status page moved from {old_local} to {local}"
        )))
    }

    /// The old listener holds the port the new address needs: stop it, bind the new one, and
    /// bind the old address again when that fails.
    async fn rebind_same_port(
        &mut self,
        section: StatusConfig,
        old_local: SocketAddr,
    ) -> anyhow::Result<TcpListener> {
        let Some(old) = self.server.take() else {
            anyhow::bail!("no status page server to move");
        };
        old.task.stop().await;
        match status_http::bind(section.bind).await {
            Ok(l) => Ok(l),
            Err(e) => {
                let page = old.pages.borrow().clone();
                match status_http::bind(old_local).await {
                    Ok(l) => {
                        self.server = Some(Server::spawn(
                            &self.tree,
                            l,
                            old.section,
                            old.settings,
                            page,
                        )?);
                    }
                    Err(again) => {
                        error!(error = %again, "the status page cannot listen on its old address again; it is off");
                    }
                }
                Err(e.into())
            }
        }
    }

    pub(super) async fn stop(self) {
        if let Some(server) = self.server {
            server.task.stop().await;
        }
        self.hub_cancel.cancel();
        self.hub.stop();
    }
}

impl Server {
    fn spawn(
        tree: &Tree,
        listener: TcpListener,
        section: StatusConfig,
        settings: Settings,
        page: Page,
    ) -> anyhow::Result<Self> {
        let local = listener
            .local_addr()
            .context("the status page's listener has no address")?;
        let (pages, rx) = watch::channel(page);
        let task = tree.task(|cancel| status_http::serve(listener, rx, cancel));
        Ok(Self {
            task,
            section,
            local,
            settings,
            pages,
        })
    }
}

impl Agent {
    /// After a reload, once the lines run: applies the `status` section in force (on, off,
    /// moved, new settings) and hands the page what changed. What cannot be applied leaves
    /// the page as it was, with a note.
    pub(super) async fn reload_status(&mut self, notes: &mut Vec<String>) {
        let targets = self.lines.targets(&self.devices);
        if let Some(page) = &self.status {
            page.update(
                &self.config,
                &self.broker,
                &self.topics,
                &self.devices,
                &targets,
            );
        }
        match (self.status.take(), self.config.status) {
            (None, None) => {}
            (Some(page), None) => {
                page.stop().await;
                info!("status page off");
                notes.push("status page off".into());
            }
            (None, Some(section)) => {
                let Some(mut page) = StatusPage::start(
                    &self.config,
                    &self.broker,
                    &self.topics,
                    &self.devices,
                    &self.health.metrics,
                    &self.tree,
                ) else {
                    return;
                };
                page.set_targets(&targets);
                match page.reconfigure(section, &self.config).await {
                    Ok(note) => {
                        notes.extend(note);
                        self.status = Some(page);
                    }
                    Err(e) => {
                        error!(error = %format!("{e:#}"), "the status page cannot start; it stays off");
                        notes.push(format!("status page not started: {e:#}"));
                        page.stop().await;
                        self.config.status = None;
                    }
                }
            }
            (Some(mut page), Some(section)) => {
                match page.reconfigure(section, &self.config).await {
                    Ok(note) => notes.extend(note),
                    Err(e) => {
                        warn!(error = %format!("{e:#}"), "the new status section cannot be applied; the old one stays in force");
                        notes.push(format!("status page not changed: {e:#}"));
                        self.config.status = page.server.as_ref().map(|s| s.section);
                    }
                }
                self.status = Some(page);
            }
        }
    }
}
