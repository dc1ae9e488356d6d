//! Sparkplug B topics (spec 3.0, chapter 4): the only place that builds or parses them.
//!
//! - `spBv1.0/{group}/{NBIRTH|NDEATH|NDATA|NCMD}/{node}`
//! - `spBv1.0/{group}/{DBIRTH|DDEATH|DDATA|DCMD}/{node}/{device}`
//! - `spBv1.0/STATE/{host}`: the primary host application's state (JSON, retained)
//!
//! Invariant: group, node, host and device ids are single topic levels (checked by the config).

/// The namespace of every Sparkplug B topic.
pub const NAMESPACE: &str = "spBv1.0";

/// The message types an edge node sends or receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    NBirth,
    NDeath,
    NData,
    NCmd,
    DBirth,
    DDeath,
    DData,
    DCmd,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NBirth => "NBIRTH",
            Self::NDeath => "NDEATH",
            Self::NData => "NDATA",
            Self::NCmd => "NCMD",
            Self::DBirth => "DBIRTH",
            Self::DDeath => "DDEATH",
            Self::DData => "DDATA",
            Self::DCmd => "DCMD",
        }
    }
}

/// A command or host state received by the edge node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound<'t> {
    /// NCMD to this node.
    NodeCommand,
    /// DCMD to one of this node's devices.
    DeviceCommand(&'t str),
    /// STATE of a host application.
    HostState(&'t str),
}

/// The topics of one edge node.
#[derive(Debug, Clone)]
pub struct SparkplugTopics {
    group: String,
    node: String,
}

impl SparkplugTopics {
    pub fn new(group: &str, node: &str) -> Self {
        Self {
            group: group.to_owned(),
            node: node.to_owned(),
        }
    }

    /// `spBv1.0/{group}/{kind}/{node}`.
    pub fn node(&self, kind: Kind) -> String {
        format!("{NAMESPACE}/{}/{}/{}", self.group, kind.as_str(), self.node)
    }

    /// `spBv1.0/{group}/{kind}/{node}/{device}`.
    pub fn device(&self, kind: Kind, device: &str) -> String {
        format!(
            "{NAMESPACE}/{}/{}/{}/{device}",
            self.group,
            kind.as_str(),
            self.node
        )
    }

    /// `spBv1.0/STATE/{host}`.
    pub fn state(host: &str) -> String {
        format!("{NAMESPACE}/STATE/{host}")
    }

    /// The subscriptions of the edge node: its NCMD and every DCMD of its devices.
    pub fn command_filters(&self) -> [String; 2] {
        [self.node(Kind::NCmd), self.device(Kind::DCmd, "+")]
    }

    /// What an incoming topic is, if it is one the edge node listens to.
    pub fn parse<'t>(&self, topic: &'t str) -> Option<Inbound<'t>> {
        let mut levels = topic.split('/');
        if levels.next()? != NAMESPACE {
            return None;
        }
        let group = levels.next()?;
        if group == "STATE" {
            let host = levels.next()?;
            return levels.next().is_none().then_some(Inbound::HostState(host));
        }
        let kind = levels.next()?;
        if group != self.group || levels.next()? != self.node {
            return None;
        }
        match (kind, levels.next(), levels.next()) {
            ("NCMD", None, _) => Some(Inbound::NodeCommand),
            ("DCMD", Some(device), None) if !device.is_empty() => {
                Some(Inbound::DeviceCommand(device))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_parses() {
        let t = SparkplugTopics::new("plant1", "gw1");
        assert_eq!(t.node(Kind::NBirth), "spBv1.0/plant1/NBIRTH/gw1");
        assert_eq!(
            t.device(Kind::DData, "boiler"),
            "spBv1.0/plant1/DDATA/gw1/boiler"
        );
        assert_eq!(SparkplugTopics::state("scada"), "spBv1.0/STATE/scada");
        assert_eq!(
            t.command_filters(),
            ["spBv1.0/plant1/NCMD/gw1", "spBv1.0/plant1/DCMD/gw1/+"]
        );
        assert_eq!(
            t.parse("spBv1.0/plant1/NCMD/gw1"),
            Some(Inbound::NodeCommand)
        );
        assert_eq!(
            t.parse("spBv1.0/plant1/DCMD/gw1/boiler"),
            Some(Inbound::DeviceCommand("boiler"))
        );
        assert_eq!(
            t.parse("spBv1.0/STATE/scada"),
            Some(Inbound::HostState("scada"))
        );
        for other in [
            "spBv1.0/plant2/NCMD/gw1",
            "spBv1.0/plant1/NCMD/gw2",
            "spBv1.0/plant1/DCMD/gw1",
            "spBv1.0/plant1/DCMD/gw1/a/b",
            "spBv1.0/plant1/NDATA/gw1",
            "spBv1.0/STATE/a/b",
            "plant1/boiler/x",
        ] {
            assert_eq!(t.parse(other), None, "{other}");
        }
    }
}
