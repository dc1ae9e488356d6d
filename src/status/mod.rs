//! The live status page: what the gateway sees right now, in a browser, without external
//! assets (HTML, CSS and JavaScript embedded in the binary), updated by Server-Sent Events.
//!
//! - `catalog` the configured devices and points, and the topics they publish on
//! - `live`    the last value of each point, device states, uplink status, the last 100 events
//! - `view`    the page's JSON document (pure)
//! - `hub`     the in-process subscription that feeds `live`, and the publisher of documents
//! - `auth`    logins against the broker's password file, writes against its ACL
//! - `write`   a write from the page, through the command path
//! - `raw`     a point's raw registers on demand, read through the device's task
//! - `page`    the embedded assets
//! - `http`    the page's HTTP(S) server: routes, event streams, limits
//! - `tls`     its TLS configuration, from the broker listener's certificate

pub mod auth;
pub mod catalog;
pub mod http;
pub mod hub;
pub mod live;
pub mod page;
pub mod raw;
pub mod tls;
pub mod view;
pub mod write;

pub use auth::Auth;
pub use hub::Hub;
