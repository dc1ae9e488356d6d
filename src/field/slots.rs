//! Connection slots: at most `modbus.max_connections_per_host` TCP connections to one host at a
//! time, counted by IP address, so two names of one device (`plc.local`, `192.168.1.10`) share
//! its slots. A line holds a slot from before it connects until its connection is closed; a
//! line that finds every slot taken waits (its devices offline, commands refused at once).
//!
//! `check` refuses configs that would need more connections to one host *name* than the cap,
//! so waiting happens only when names alias one address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Semaphore;

/// The slot pools of every host address the lines connect to.
#[derive(Debug)]
pub struct HostSlots {
    cap: usize,
    by_ip: Mutex<HashMap<IpAddr, Arc<Semaphore>>>,
}

impl HostSlots {
    pub fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            by_ip: Mutex::new(HashMap::new()),
        }
    }

    /// Connections allowed to one address.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// The pool of `ip` (created on first use).
    pub fn of(&self, ip: IpAddr) -> Arc<Semaphore> {
        let mut by_ip = self.by_ip.lock().unwrap_or_else(PoisonError::into_inner);
        by_ip
            .entry(ip)
            .or_insert_with(|| Arc::new(Semaphore::new(self.cap)))
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_pool_per_address_with_cap_permits() {
        let slots = HostSlots::new(2);
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let b: IpAddr = "10.0.0.2".parse().expect("ip");
        let first = slots.of(a).try_acquire_owned().expect("a slot");
        let _second = slots.of(a).try_acquire_owned().expect("a second slot");
        assert!(slots.of(a).try_acquire_owned().is_err(), "two at most");
        assert!(
            slots.of(b).try_acquire_owned().is_ok(),
            "another host has its own"
        );
        drop(first);
        assert!(
            slots.of(a).try_acquire_owned().is_ok(),
            "a closed connection frees its slot"
        );
    }
}
