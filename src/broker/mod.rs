//! The embedded MQTT broker (3.1.1 and 5), built on the pinned `rmqtt` crate.
//!
//! Only this module touches rmqtt: the rest of ferrule uses [`Broker`], [`Message`] and [`Tap`].

mod escape;
mod message;
mod retain;
mod server;

pub use message::{Message, Origin};
pub use server::{Broker, BrokerError, NoTap, Tap, TapError};
