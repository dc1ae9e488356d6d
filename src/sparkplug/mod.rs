//! Sparkplug B (spec 3.0) as an edge node through the uplink: the agent is the edge node
//! (`uplink.sparkplug.edge_node_id` in `group_id`), each device a Sparkplug device, each point
//! a metric.
//!
//! How it fits the store-and-forward uplink: the queue keeps the agent's own point and
//! device-state messages as always (durable before accepted, deleted after PUBACK); the drain
//! turns each row into DDATA / DBIRTH / DDEATH when it sends it (`node`), after the NBIRTH and
//! DBIRTHs of the connection, so `seq` is per connection and rows queued before the births go
//! out flagged historical. The births take current values from a cache that follows the local
//! broker ([`follow`]). NCMD (rebirth) and DCMD (writes, as local `.../set` commands) come back
//! through the drain. QoS 1 is used for births and data (the spec says 0): a row is deleted
//! only after its PUBACK, which is what "nothing lost" needs.
//!
//! Layout:
//! - `proto`    the Sparkplug B protobuf payload, encoded and decoded by hand (why: there)
//! - `datatype` point type → Sparkplug datatype; values both ways
//! - `catalog`  devices and metrics from the config, with their aliases
//! - `node`     [`EdgeNode`]: bdSeq, seq, births, deaths, data, commands, primary host
//! - `follow`   the cache of current values the births take, kept up to date; Sparkplug time

mod catalog;
mod datatype;
mod follow;
mod node;
pub mod proto;
pub use catalog::{REBIRTH, REBIRTH_ALIAS};
pub use datatype::SpType;
pub use follow::{follow, now_ms};
pub use node::{Action, EdgeNode, Latest, Publish, BDSEQ};
