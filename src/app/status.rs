//! Wiring of the live status page: its listener (bound with the others, so a taken port fails
//! start-up), its hub (subscribed before the lines start, so no first value is missed), its
//! server, and what a reload hands it (the broker, the site and the devices in force).
//! A changed `status` section takes effect at the next restart.

use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::Task;
use crate::broker::Broker;
use crate::config::{Config, Device};
use crate::health::status_http::{self, Page};
use crate::health::Metrics;
use crate::status::{Auth, Hub};
use crate::topics::Topics;

pub(super) struct StatusPage {
    hub: Hub,
    auth: Arc<Auth>,
    hub_cancel: CancellationToken,
    server: Option<Task>,
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
    ) -> Option<Self> {
        let status = config.status?;
        let hub_cancel = CancellationToken::new();
        let hub = Hub::start(
            broker.clone(),
            topics,
            devices,
            metrics.clone(),
            hub_cancel.clone(),
        );
        let auth = Arc::new(Auth::new(status.is_exposed(), &config.broker));
        Some(Self {
            hub,
            auth,
            hub_cancel,
            server: None,
        })
    }

    /// Serves the page on `listener`: over TLS with the first TLS listener's certificate when
    /// the page is exposed and there is one.
    pub(super) fn serve(&mut self, listener: TcpListener, config: &Config) -> anyhow::Result<()> {
        let tls = match config.broker.listeners.iter().find_map(|l| l.tls.as_ref()) {
            Some(tls) if self.auth.required() => Some(tokio_rustls::TlsAcceptor::from(
                crate::health::page_tls::server_config(tls)
                    .context("cannot set up TLS for the status page")?,
            )),
            _ => None,
        };
        let page = Page {
            hub: self.hub.clone(),
            auth: self.auth.clone(),
            tls,
        };
        let cancel = CancellationToken::new();
        let handle = tokio::spawn(status_http::serve(listener, page, cancel.clone()));
        self.server = Some(Task { handle, cancel });
        Ok(())
    }

    /// After a reload.
    pub(super) fn update(
        &self,
        config: &Config,
        broker: &Arc<Broker>,
        topics: &Topics,
        devices: &[Arc<Device>],
    ) {
        self.auth.set_broker(&config.broker);
        self.hub.update(broker.clone(), topics, devices);
    }

    pub(super) async fn stop(self) {
        if let Some(server) = self.server {
            server.stop().await;
        }
        self.hub_cancel.cancel();
        self.hub.stop();
    }
}
