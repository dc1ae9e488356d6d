//! The line task against the in-crate Modbus simulator (a real Modbus TCP slave on port
//! 0), publishing into an in-memory [`Recorder`] instead of a broker.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_modbus::prelude::{Writer as _, *};
use tokio_util::sync::CancellationToken;

use super::{Endpoint, Line};
use crate::broker::{Message, Recorder};
use crate::config::{parse, testing::origin, Config, Transport};
use crate::field::slave::Slave as DeviceSlave;
use crate::field::{simulator, HostSlots};
use crate::health::Progress;
use crate::topics::Topics;

type Error = Box<dyn std::error::Error>;
const WAIT: Duration = Duration::from_secs(10);

fn config(port: u16) -> Result<Config, Error> {
    Ok(parse(
        &format!(
            "site: plant1\ndevices:\n  - name: boiler\n    tcp: \"127.0.0.1:{port}\"\n    \
             poll: 50ms\n    timeout: 1s\n    points:\n      \
             - {{name: sp, kind: holding, address: 100, writable: true, deadband: 5}}\n"
        ),
        &origin(),
    )?)
}

/// Starts the line task of the config's one device, publishing into a recorder.
fn start(config: &Config, cancel: &CancellationToken) -> Result<Published, Error> {
    let device = Arc::new(config.devices[0].clone());
    let Transport::Tcp(addr) = &device.transport else {
        return Err("expected a TCP device".into());
    };
    let endpoint = Endpoint::Tcp {
        addr: addr.clone(),
        slots: Arc::new(HostSlots::new(4)),
    };
    let topics = Topics::new(&config.site);
    let slave = DeviceSlave::new(device.clone(), &topics, false, "test");
    let (_tx, rx) = mpsc::channel(8);
    let rx = Arc::new(tokio::sync::Mutex::new(rx)).try_lock_owned()?;
    let (recorder, published) = Recorder::new();
    let beat = Progress::default().register("line test");
    let line = Line::new(
        "test".into(),
        endpoint,
        vec![slave],
        rx,
        recorder,
        cancel.clone(),
        beat,
    );
    tokio::spawn(line.run());
    Ok(Published {
        rx: published,
        later: Vec::new(),
    })
}

/// What the line published, read in order per topic.
struct Published {
    rx: mpsc::UnboundedReceiver<Message>,
    /// Received but not yet asked for (other topics).
    later: Vec<Message>,
}

impl Published {
    /// The next message on `topic`, within [`WAIT`].
    async fn next_on(&mut self, topic: &str) -> Result<Message, Error> {
        if let Some(i) = self.later.iter().position(|m| m.topic == topic) {
            return Ok(self.later.remove(i));
        }
        let (rx, later) = (&mut self.rx, &mut self.later);
        tokio::time::timeout(WAIT, async {
            while let Some(m) = rx.recv().await {
                if m.topic == topic {
                    return Ok(m);
                }
                later.push(m);
            }
            Err::<Message, Error>("the line task stopped publishing".into())
        })
        .await
        .map_err(|_| format!("nothing on {topic} within {WAIT:?}"))?
    }
}

fn json(m: &Message) -> Result<serde_json::Value, Error> {
    Ok(serde_json::from_slice(&m.payload)?)
}

#[tokio::test]
async fn publishes_retained_state_on_change_beyond_the_deadband_only() -> Result<(), Error> {
    let listener = simulator::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let addr = listener.local_addr()?;
    let config = config(addr.port())?;
    let bank = simulator::Bank::new(&config.devices)?;
    let cancel = CancellationToken::new();
    tokio::spawn(simulator::serve(listener, bank.clone(), cancel.clone()));
    let mut published = start(&config, &cancel)?;
    let reads = || -> u64 { bank.read_counts().values().flat_map(|r| r.values()).sum() };

    let state = published.next_on("plant1/boiler/$state").await?;
    assert_eq!(&state.payload[..], b"online");
    assert!(state.retain, "device state is retained");
    let first = published.next_on("plant1/boiler/sp").await?;
    assert!(first.retain, "point state is retained");
    let v = json(&first)?;
    assert_eq!(v["quality"], "good", "{v}");
    let start_value = v["value"].as_f64().ok_or("no value")?;

    // A master writes the device's register, as another HMI would.
    let mut ctx = tcp::connect_slave(addr, Slave(1)).await?;
    let small = start_value as u16 + 3; // within the deadband of 5: not published
    ctx.write_single_register(100, small).await??;
    // Two more reads answered: the line has certainly read the small change.
    let seen = reads();
    tokio::time::timeout(WAIT, async {
        while reads() < seen + 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .map_err(|_| "the line stopped polling")?;
    let big = start_value as u16 + 20; // beyond it: published
    ctx.write_single_register(100, big).await??;
    let next = published.next_on("plant1/boiler/sp").await?;
    let v = json(&next)?;
    assert_eq!(
        v["value"].as_f64(),
        Some(f64::from(big)),
        "the change within the deadband was not published; the one beyond it was: {v}"
    );
    assert_eq!(v["quality"], "good");
    assert!(next.retain);
    cancel.cancel();
    Ok(())
}

#[tokio::test]
async fn an_unreachable_device_is_published_offline_with_bad_points() -> Result<(), Error> {
    // A port nobody listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let config = config(port)?;
    let cancel = CancellationToken::new();
    let mut published = start(&config, &cancel)?;

    let point = published.next_on("plant1/boiler/sp").await?;
    let v = json(&point)?;
    assert_eq!(v["quality"], "bad", "{v}");
    assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{v}");
    assert!(point.retain);
    let state = published.next_on("plant1/boiler/$state").await?;
    assert_eq!(&state.payload[..], b"offline");
    assert!(state.retain);
    cancel.cancel();
    Ok(())
}
