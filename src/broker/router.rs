//! Subscription routing: rmqtt's router with two corrections, both applied when a message is
//! matched against the subscriptions.
//!
//! - One copy per client at the highest QoS: rmqtt delivers an MQTT 3.1.1 message once per
//!   matching subscription of a client, and an MQTT 5 message once at the QoS of whichever
//!   matching subscription it finds first. The specification (MQTT-3.3.5-1, v5 §3.3.4) asks for
//!   the maximum QoS of all matching subscriptions; like Mosquitto, ferrule delivers one copy
//!   at that QoS, carrying every matching MQTT 5 subscription identifier.
//! - Read access: with an ACL, a subscriber only gets the messages it may read
//!   ([`super::acl`]), so a wide subscription such as `#` never leaks what the ACL hides.
//!
//! Adding and removing subscriptions, and everything else, is rmqtt's [`DefaultRouter`].

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use rmqtt::context::ServerContext;
use rmqtt::router::{DefaultRouter, Router};
use rmqtt::trie::VecToTopic;
use rmqtt::types::{
    AllRelationsMap, ClientId, HashMap as RHashMap, Id, NodeId, QoS, Route, SubRelation,
    SubRelationsMap, SubsSearchParams, SubsSearchResult, SubscriptionOptions, Topic, TopicName,
};
use rmqtt::utils::Counter;

use super::access::Access;
use super::escape::unescape;

/// rmqtt's router with per-client merging and read checks.
pub struct SpecRouter {
    inner: DefaultRouter,
    access: Arc<Access>,
}

impl SpecRouter {
    pub fn new(scx: ServerContext, access: Arc<Access>) -> Self {
        Self {
            inner: DefaultRouter::new(Some(scx)),
            access,
        }
    }
}

/// The matching subscriptions of one client, merged.
struct Merged {
    filter: rmqtt::types::TopicFilter,
    opts: SubscriptionOptions,
    sub_ids: Vec<rmqtt::types::SubscriptionIdentifier>,
}

fn rank(qos: QoS) -> u8 {
    match qos {
        QoS::AtMostOnce => 0,
        QoS::AtLeastOnce => 1,
        QoS::ExactlyOnce => 2,
    }
}

#[async_trait]
impl Router for SpecRouter {
    async fn add(
        &self,
        topic_filter: &str,
        id: Id,
        opts: SubscriptionOptions,
    ) -> rmqtt::Result<()> {
        self.inner.add(topic_filter, id, opts).await
    }

    async fn remove(&self, topic_filter: &str, id: Id) -> rmqtt::Result<bool> {
        self.inner.remove(topic_filter, id).await
    }

    async fn matches(&self, this_id: Id, topic: &TopicName) -> rmqtt::Result<SubRelationsMap> {
        let parsed = Topic::from_str(topic)?;
        let plain = unescape(topic);
        let check_read = self.access.has_acl();
        // Insertion order per node, so delivery order does not depend on hashing.
        let mut merged: HashMap<NodeId, Vec<(ClientId, Merged)>> = HashMap::new();
        let mut index: HashMap<ClientId, (NodeId, usize)> = HashMap::new();
        for (levels, _) in self.inner.topics.read().await.matches(&parsed).iter() {
            let filter = levels.to_topic_filter();
            let Some(rels) = self.inner.relations.get(&filter) else {
                continue;
            };
            for (client_id, (id, opts)) in rels.iter() {
                if opts.no_local() == Some(true) && *id == this_id {
                    continue;
                }
                if check_read
                    && !self
                        .access
                        .may_read(client_id, id.username.as_deref(), &plain)
                {
                    continue;
                }
                let sub_id = opts.subscription_identifier();
                match index.get(client_id) {
                    Some(&(node, i)) => {
                        let m = &mut merged.entry(node).or_default()[i].1;
                        if rank(opts.qos()) > rank(m.opts.qos()) {
                            m.filter = filter.clone();
                            m.opts = opts.clone();
                        }
                        m.sub_ids.extend(sub_id);
                    }
                    None => {
                        let list = merged.entry(id.node_id).or_default();
                        index.insert(client_id.clone(), (id.node_id, list.len()));
                        list.push((
                            client_id.clone(),
                            Merged {
                                filter: filter.clone(),
                                opts: opts.clone(),
                                sub_ids: sub_id.into_iter().collect(),
                            },
                        ));
                    }
                }
            }
        }
        let mut out = SubRelationsMap::default();
        for (node, list) in merged {
            let rels: Vec<SubRelation> = list
                .into_iter()
                .map(|(client_id, m)| {
                    let ids = (!m.sub_ids.is_empty()).then_some(m.sub_ids);
                    (m.filter, client_id, m.opts, ids, None)
                })
                .collect();
            out.insert(node, rels);
        }
        Ok(out)
    }

    async fn is_online(&self, node_id: NodeId, client_id: &str) -> bool {
        self.inner.is_online(node_id, client_id).await
    }

    async fn gets(&self, limit: usize) -> Vec<Route> {
        self.inner.gets(limit).await
    }

    async fn get(&self, topic: &str) -> rmqtt::Result<Vec<Route>> {
        self.inner.get(topic).await
    }

    async fn query_subscriptions(&self, q: &SubsSearchParams) -> Vec<SubsSearchResult> {
        self.inner.query_subscriptions(q).await
    }

    async fn topics_tree(&self) -> usize {
        self.inner.topics_tree().await
    }

    fn topics(&self) -> Counter {
        self.inner.topics()
    }

    fn routes(&self) -> Counter {
        self.inner.routes()
    }

    fn merge_topics(&self, topics_map: &RHashMap<NodeId, Counter>) -> Counter {
        self.inner.merge_topics(topics_map)
    }

    fn merge_routes(&self, routes_map: &RHashMap<NodeId, Counter>) -> Counter {
        self.inner.merge_routes(routes_map)
    }

    async fn list_topics(&self, top: usize) -> Vec<String> {
        self.inner.list_topics(top).await
    }

    async fn list_relations(&self, top: usize) -> Vec<serde_json::Value> {
        self.inner.list_relations(top).await
    }

    fn relations(&self) -> &AllRelationsMap {
        self.inner.relations()
    }
}
