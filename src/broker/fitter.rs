//! Per-connection protocol parameters (rmqtt's "fitter"), made to follow the MQTT specification
//! and Mosquitto where rmqtt does otherwise.
//!
//! Deviations of rmqtt's default fitter that this one corrects:
//! - keepalive: rmqtt closes a silent client after `keepalive + 3` s for keepalives under 6 s
//!   and after `2 × backoff × keepalive` otherwise; the specification (MQTT-3.1.2-24) says one
//!   and a half times the keepalive, which is what this returns (rounded up to a second);
//! - MQTT 3.1.1 persistent sessions (clean session 0): rmqtt expires them after the listener's
//!   session expiry (2 h by default); in 3.1.1 a session lasts until the client cleans it, and
//!   Mosquitto keeps it forever, so this never expires them.
//!
//! Everything else (queue length, in-flight window, topic aliases, MQTT 5 session expiry)
//! is rmqtt's default behaviour on the listener's configuration.

use std::num::{NonZeroU16, NonZeroU32};
use std::sync::Arc;
use std::time::Duration;

use rmqtt::codec::types::Publish;
use rmqtt::fitter::{DefaultFitter, Fitter, FitterManager};
use rmqtt::types::{ConnectInfo, Disconnect, FitterType, Id, ListenerConfig};

/// The session expiry used for "never" (MQTT 5's 0xFFFFFFFF seconds).
pub const NEVER: Duration = Duration::from_secs(u32::MAX as u64);

/// Creates a [`SpecFitter`] per connection.
pub struct SpecFitterManager;

impl FitterManager for SpecFitterManager {
    fn create(&self, conn_info: Arc<ConnectInfo>, id: Id, cfg: ListenerConfig) -> FitterType {
        let v3 = matches!(conn_info.as_ref(), ConnectInfo::V3(..));
        Arc::new(SpecFitter {
            inner: DefaultFitter::new(conn_info, id, cfg),
            v3,
        })
    }
}

/// rmqtt's default fitter with the corrections listed in the module docs.
pub struct SpecFitter {
    inner: DefaultFitter,
    v3: bool,
}

/// How long the broker waits for a packet from a client with this keepalive (0: forever).
pub fn keepalive_timeout(keepalive: u16) -> u16 {
    let secs = (u32::from(keepalive) * 3).div_ceil(2);
    u16::try_from(secs).unwrap_or(u16::MAX)
}

#[async_trait::async_trait]
impl Fitter for SpecFitter {
    fn keep_alive(&self, keep_alive: &mut u16) -> rmqtt::Result<u16> {
        // The default checks the listener's limits (and clamps for MQTT 5).
        self.inner.keep_alive(keep_alive)?;
        Ok(keepalive_timeout(*keep_alive))
    }

    fn max_mqueue_len(&self) -> usize {
        self.inner.max_mqueue_len()
    }

    fn mqueue_rate_limit(&self) -> (NonZeroU32, Duration) {
        self.inner.mqueue_rate_limit()
    }

    fn max_inflight(&self) -> NonZeroU16 {
        self.inner.max_inflight()
    }

    fn session_expiry_interval(&self, d: Option<&Disconnect>) -> Duration {
        if self.v3 {
            NEVER
        } else {
            self.inner.session_expiry_interval(d)
        }
    }

    fn message_expiry_interval(&self, publish: &Publish) -> Duration {
        self.inner.message_expiry_interval(publish)
    }

    fn max_client_topic_aliases(&self) -> u16 {
        self.inner.max_client_topic_aliases()
    }

    fn max_server_topic_aliases(&self) -> u16 {
        self.inner.max_server_topic_aliases()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_and_a_half_times_the_keepalive() {
        assert_eq!(keepalive_timeout(0), 0);
        assert_eq!(keepalive_timeout(1), 2);
        assert_eq!(keepalive_timeout(2), 3);
        assert_eq!(keepalive_timeout(3), 5);
        assert_eq!(keepalive_timeout(60), 90);
        assert_eq!(keepalive_timeout(u16::MAX), u16::MAX);
    }
}
