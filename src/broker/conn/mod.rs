//! One client connection: a single task that reads packets, acts on them, and writes what the
//! session has for the client, over any byte stream (TCP, TLS, WebSocket).
//!
//! Layout: `client` (the connection task: its state and loop), `io` (the transport, its buffers and the one poll that waits for anything),
//! `connect` (the CONNECT handshake), `inbound` (PUBLISH and PUBREL from the client),
//! `outbound` (deliveries to the client, and their acknowledgements), `control` (SUBSCRIBE,
//! UNSUBSCRIBE, PINGREQ, DISCONNECT, AUTH), `end` (why a connection ended, its logs).
//!
//! Invariants:
//! - one task per connection, no lock held across an await, and no buffer kept while idle:
//!   an idle client costs its task, its socket and its session (a few hundred bytes each);
//! - memory per client is bounded: input by the maximum packet size, output by
//!   [`io::OUT_HIGH`] plus the session queue's bounds (a stalled reader only fills those);
//! - acknowledgements go out in the order the packets came in (MQTT-4.6.0-2); one that waits
//!   for the persistence file holds back the ones behind it, and the deliveries to that client
//!   too (a client sees its PUBACK before any message its publish was routed to);
//! - a connection that is not the session's owner any more (taken over) stops at once and
//!   changes nothing in the session.

mod client;
mod connect;
mod control;
mod end;
mod inbound;
mod io;
mod outbound;

use client::Client;
pub(super) use client::{serve, ListenerCtx};
pub(super) use end::End;
