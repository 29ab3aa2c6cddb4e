//! Distributed mode (docs/qdrant.md, "Distributed mode", "Shard snapshots"): the cluster's
//! peers, a collection's shard placement, shard keys and shard snapshots, typed and checked.
//!
//! Every answer is hostile: peer ids must be u64, shard ids u32, counts are bounded, shard
//! keys are strings or u64, and a state aimem does not know is kept but never counts as Active.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Value, json};
use ureq::http::Method;

use super::{
    Cancelled, Client, QdrantError, RecoveryPriority, ResumeFrom, ServerUrl, SnapshotBody,
    SnapshotDescription, UploadTarget, collection_path, encode_segment,
};
use crate::json::{Count, Scalar};

/// A plain value, shared with the manifest (which does not depend on this client).
pub use crate::names::ShardKey;

/// More peers than this is not a cluster aimem was written for (nor a sane answer).
pub const MAX_PEERS: usize = 1024;
/// More shards than this in one collection is not a sane answer.
pub const MAX_SHARDS: usize = 65_536;
/// `GET /cluster`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterStatus {
    /// `"status":"disabled"`: a single node.
    Disabled,
    /// This peer's id and every peer's P2P URI (never a REST address).
    Enabled {
        peer_id: u64,
        peers: BTreeMap<u64, String>,
    },
}

/// The replica states Qdrant reports (docs/qdrant.md, "Replica states"). Only `Active` holds
/// complete, current data.
pub const REPLICA_STATES: [&str; 11] = [
    "Active",
    "Dead",
    "Partial",
    "Initializing",
    "Listener",
    "PartialSnapshot",
    "Recovery",
    "Resharding",
    "ReshardingScaleDown",
    "ActiveRead",
    "ManualRecovery",
];

/// One replica of one shard as a peer reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replica {
    pub shard_id: u32,
    pub peer_id: u64,
    /// One of [`REPLICA_STATES`], or `Unknown` for anything else.
    pub state: String,
    /// Only for the reporting peer's own (local) replicas.
    pub points_count: Option<u64>,
    pub shard_key: Option<ShardKey>,
}

impl Replica {
    pub fn is_active(&self) -> bool {
        self.state == "Active"
    }
}

/// `GET /collections/{c}/cluster` from one peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionClusterView {
    pub peer_id: u64,
    pub shard_count: u32,
    /// This peer's replicas (`peer_id` = the view's).
    pub local: Vec<Replica>,
    /// Other peers' replicas as this peer sees them.
    pub remote: Vec<Replica>,
    /// Shard transfers running now.
    pub transfers: usize,
}

/// `GET /cluster`'s result as sent: only what aimem reads (`raft_info` and the rest are
/// skipped unread), the peers bounded while they are read.
#[derive(Debug, Default, Deserialize)]
pub struct ClusterAnswer {
    #[serde(default)]
    status: Scalar,
    #[serde(default)]
    peer_id: Scalar,
    #[serde(default)]
    peers: PeerList,
}

/// The `peers` map of `GET /cluster`, in the order sent; `None` when it is not a map.
#[derive(Debug, Default)]
struct PeerList(Option<Vec<(String, PeerAnswer)>>);

#[derive(Debug, Deserialize)]
struct PeerAnswer {
    #[serde(default)]
    uri: Scalar,
}

impl<'de> Deserialize<'de> for PeerList {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<PeerList, D::Error> {
        struct Peers;
        impl<'de> serde::de::Visitor<'de> for Peers {
            type Value = PeerList;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map of peers")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<PeerList, A::Error> {
                let mut peers = Vec::new();
                while let Some(id) = map.next_key::<String>()? {
                    if peers.len() == MAX_PEERS {
                        return Err(serde::de::Error::custom(format!(
                            "more than {MAX_PEERS} peers, more than aimem accepts"
                        )));
                    }
                    peers.push((id, map.next_value()?));
                }
                Ok(PeerList(Some(peers)))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<PeerList, A::Error> {
                IgnoredAny.visit_seq(seq).map(|_| PeerList(None))
            }
            fn visit_bool<E>(self, _: bool) -> Result<PeerList, E> {
                Ok(PeerList(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<PeerList, E> {
                Ok(PeerList(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<PeerList, E> {
                Ok(PeerList(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<PeerList, E> {
                Ok(PeerList(None))
            }
            fn visit_str<E>(self, _: &str) -> Result<PeerList, E> {
                Ok(PeerList(None))
            }
            fn visit_unit<E>(self) -> Result<PeerList, E> {
                Ok(PeerList(None))
            }
        }
        deserializer.deserialize_any(Peers)
    }
}

impl ClusterAnswer {
    /// Checks the answer: a known status, a numeric `peer_id` listed among the peers, each
    /// peer's id in plain decimal and a usable `uri`.
    pub fn check(self) -> Result<ClusterStatus, String> {
        match self.status.as_str() {
            Some("disabled") => return Ok(ClusterStatus::Disabled),
            Some("enabled") => {}
            Some(other) => {
                return Err(format!(
                    "unknown cluster status {}",
                    crate::names::shown(other)
                ));
            }
            None if self.status.is_null() => return Err("no cluster `status`".to_string()),
            None => return Err(format!("the cluster `status` is {}", self.status.kind())),
        }
        let peer_id = self.peer_id.as_u64().ok_or("no numeric `peer_id`")?;
        let listed = self.peers.0.ok_or("no `peers` map")?;
        let mut peers = BTreeMap::new();
        for (id, peer) in listed {
            // Only the plain decimal form: `01` or `+1` would be a second entry for peer 1.
            let id: u64 = id
                .parse()
                .ok()
                .filter(|n: &u64| n.to_string() == *id)
                .ok_or_else(|| format!("peer id {} is not a number", crate::names::shown(&id)))?;
            let uri = peer
                .uri
                .as_str()
                .ok_or_else(|| format!("peer {id} has no `uri`"))?;
            if uri.len() > 2048 || uri.chars().any(|c| c.is_control() || c.is_whitespace()) {
                return Err(format!("peer {id} has an unusable `uri`"));
            }
            if peers.insert(id, uri.to_string()).is_some() {
                return Err(format!("peer {id} is listed twice"));
            }
        }
        if !peers.contains_key(&peer_id) {
            return Err(format!(
                "peer {peer_id} does not list itself among the peers"
            ));
        }
        Ok(ClusterStatus::Enabled { peer_id, peers })
    }
}

/// Parses `GET /cluster`'s result (already parsed JSON: tests and property tests; the client
/// reads the answer as a [`ClusterAnswer`] while it arrives).
pub fn parse_cluster_status(result: &Value) -> Result<ClusterStatus, String> {
    ClusterAnswer::deserialize(result)
        .map_err(|e| e.to_string())?
        .check()
}

/// The most replicas one `GET /collections/{c}/cluster` list may hold.
const MAX_LISTED_REPLICAS: usize = MAX_SHARDS * 4;

/// `GET /collections/{c}/cluster`'s result as sent (transfers only counted).
#[derive(Debug, Default, Deserialize)]
pub struct CollectionClusterAnswer {
    #[serde(default)]
    peer_id: Scalar,
    #[serde(default)]
    shard_count: Scalar,
    #[serde(
        default,
        deserialize_with = "crate::json::at_most::<_, _, MAX_LISTED_REPLICAS>"
    )]
    local_shards: Vec<ReplicaAnswer>,
    #[serde(
        default,
        deserialize_with = "crate::json::at_most::<_, _, MAX_LISTED_REPLICAS>"
    )]
    remote_shards: Vec<ReplicaAnswer>,
    #[serde(default)]
    shard_transfers: Count,
}

#[derive(Debug, Deserialize)]
struct ReplicaAnswer {
    #[serde(default)]
    shard_id: Scalar,
    #[serde(default)]
    peer_id: Scalar,
    #[serde(default)]
    state: Scalar,
    #[serde(default)]
    points_count: Scalar,
    #[serde(default)]
    shard_key: Scalar,
}

impl CollectionClusterAnswer {
    pub fn check(self) -> Result<CollectionClusterView, String> {
        let peer_id = self.peer_id.as_u64().ok_or("no numeric `peer_id`")?;
        let shard_count = self
            .shard_count
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|&n| (n as usize) <= MAX_SHARDS)
            .ok_or("no sane `shard_count`")?;
        let list = |items: Vec<ReplicaAnswer>, local: bool| -> Result<Vec<Replica>, String> {
            let key = match local {
                true => "local_shards",
                false => "remote_shards",
            };
            items
                .into_iter()
                .map(|item| {
                    let shard_id = item
                        .shard_id
                        .as_u64()
                        .and_then(|n| u32::try_from(n).ok())
                        .ok_or_else(|| format!("`{key}` has a shard without a u32 `shard_id`"))?;
                    let owner = match local {
                        true => peer_id,
                        false => item.peer_id.as_u64().ok_or_else(|| {
                            format!("remote shard {shard_id} has no numeric `peer_id`")
                        })?,
                    };
                    let state = match item.state.as_str() {
                        Some(s) if REPLICA_STATES.contains(&s) => s.to_string(),
                        _ => "Unknown".to_string(),
                    };
                    let points_count = match local {
                        true => item.points_count.as_u64(),
                        false => None,
                    };
                    let shard_key = match &item.shard_key {
                        Scalar::Null => None,
                        key => Some(ShardKey::from_scalar(key)?),
                    };
                    Ok(Replica {
                        shard_id,
                        peer_id: owner,
                        state,
                        points_count,
                        shard_key,
                    })
                })
                .collect()
        };
        let local = list(self.local_shards, true)?;
        let remote = list(self.remote_shards, false)?;
        if remote.iter().any(|r| r.peer_id == peer_id) {
            return Err(format!(
                "peer {peer_id} lists itself among the remote shards"
            ));
        }
        Ok(CollectionClusterView {
            peer_id,
            shard_count,
            local,
            remote,
            transfers: self.shard_transfers.0,
        })
    }
}

/// Parses `GET /collections/{c}/cluster`'s result (already parsed JSON, as
/// [`parse_cluster_status`]).
pub fn parse_collection_cluster(result: &Value) -> Result<CollectionClusterView, String> {
    CollectionClusterAnswer::deserialize(result)
        .map_err(|e| e.to_string())?
        .check()
}

/// `GET /collections/{c}/shards`'s result: the keys, each `{"key": …}` or a bare key.
#[derive(Debug, Default, Deserialize)]
pub struct ShardKeysAnswer {
    #[serde(default, deserialize_with = "crate::json::at_most::<_, _, MAX_SHARDS>")]
    shard_keys: Vec<KeyItem>,
}

/// One listed shard key: the `key` of an object, or the value itself.
#[derive(Debug)]
struct KeyItem(Scalar);

impl<'de> Deserialize<'de> for KeyItem {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<KeyItem, D::Error> {
        struct Item;
        impl<'de> serde::de::Visitor<'de> for Item {
            type Value = KeyItem;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a shard key")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<KeyItem, A::Error> {
                let mut key = Scalar::Object;
                while let Some(name) = map.next_key::<String>()? {
                    match name.as_str() {
                        "key" => key = map.next_value()?,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(KeyItem(key))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<KeyItem, A::Error> {
                IgnoredAny.visit_seq(seq).map(|_| KeyItem(Scalar::List))
            }
            fn visit_bool<E>(self, v: bool) -> Result<KeyItem, E> {
                Ok(KeyItem(Scalar::Bool(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<KeyItem, E> {
                Ok(KeyItem(Scalar::Signed(v)))
            }
            fn visit_u64<E>(self, v: u64) -> Result<KeyItem, E> {
                Ok(KeyItem(Scalar::Unsigned(v)))
            }
            fn visit_f64<E>(self, v: f64) -> Result<KeyItem, E> {
                Ok(KeyItem(Scalar::Float(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<KeyItem, E> {
                Scalar::deserialize(serde::de::value::StrDeserializer::<E>::new(v)).map(KeyItem)
            }
            fn visit_unit<E>(self) -> Result<KeyItem, E> {
                Ok(KeyItem(Scalar::Null))
            }
        }
        deserializer.deserialize_any(Item)
    }
}

impl ShardKeysAnswer {
    pub fn check(self) -> Result<Vec<ShardKey>, String> {
        self.shard_keys
            .iter()
            .map(|k| ShardKey::from_scalar(&k.0))
            .collect()
    }
}

/// Parses `GET /collections/{c}/shards`'s result: the shard keys, in the server's order.
pub fn parse_shard_keys(result: &Value) -> Result<Vec<ShardKey>, String> {
    if result.is_null() {
        return Ok(Vec::new());
    }
    ShardKeysAnswer::deserialize(result)
        .map_err(|e| e.to_string())?
        .check()
}

/// Splits `host[:port]` (host may be a bracketed IPv6 address) into host and optional port.
fn split_host_port(hostport: &str) -> (&str, Option<&str>) {
    if hostport.starts_with('[') {
        return match hostport.find(']') {
            Some(end) => {
                let (host, rest) = hostport.split_at(end + 1);
                (host, rest.strip_prefix(':'))
            }
            None => (hostport, None),
        };
    }
    match hostport.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (hostport, None),
    }
}

/// The host of a peer's P2P URI (`http://10.0.0.2:6335/` → `10.0.0.2`, IPv6 kept in
/// brackets), or None when it is not a plain host name or address.
pub fn p2p_host(uri: &str) -> Option<String> {
    let rest = uri.split_once("://").map_or(uri, |(_, rest)| rest);
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, _) = split_host_port(hostport);
    let sane = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_:[]%".contains(&b));
    sane.then(|| host.to_string())
}

fn shard_path(name: &str, shard: u32, rest: &str) -> String {
    collection_path(name, &format!("/shards/{shard}{rest}"))
}

impl Client {
    /// A client for another peer of the same cluster: same key and timeouts.
    pub fn for_peer(&self, url: &ServerUrl) -> Client {
        Client::for_url(url, self.api_key.clone(), self.timeouts)
    }

    /// `GET /cluster`.
    pub fn cluster_status(&self) -> Result<ClusterStatus, QdrantError> {
        let answer: Option<ClusterAnswer> = self.result(Method::GET, "/cluster", None)?;
        let mut status = answer
            .unwrap_or_default()
            .check()
            .map_err(|e| self.invalid("/cluster", e))?;
        // The peers' P2P addresses are shown in messages.
        if let ClusterStatus::Enabled { peers, .. } = &mut status {
            peers.values_mut().for_each(|uri| *uri = self.scrub(uri));
        }
        Ok(status)
    }

    /// `GET /collections/{c}/cluster`, typed.
    pub fn collection_cluster_view(
        &self,
        name: &str,
    ) -> Result<CollectionClusterView, QdrantError> {
        let path = collection_path(name, "/cluster");
        let answer: Option<CollectionClusterAnswer> = self.result(Method::GET, &path, None)?;
        answer
            .unwrap_or_default()
            .check()
            .map_err(|e| self.invalid(&path, e))
    }

    /// `GET /collections/{c}/shards`: the custom-sharding keys.
    pub fn shard_keys(&self, name: &str) -> Result<Vec<ShardKey>, QdrantError> {
        let path = collection_path(name, "/shards");
        let answer: Option<ShardKeysAnswer> = self.result(Method::GET, &path, None)?;
        answer
            .unwrap_or_default()
            .check()
            .map_err(|e| self.invalid(&path, e))
    }

    /// `PUT /collections/{c}/shards`: creates a shard key (`extra` may add `shards_number`,
    /// `replication_factor`, `placement`).
    pub fn create_shard_key(
        &self,
        name: &str,
        key: &ShardKey,
        extra: &serde_json::Map<String, Value>,
    ) -> Result<(), QdrantError> {
        let mut body = extra.clone();
        body.insert("shard_key".to_string(), key.to_value());
        let path = collection_path(name, "/shards?wait=true");
        self.call(Method::PUT, &path, Some(&Value::Object(body)))
    }

    /// `POST /collections/{c}/shards/{id}/snapshots?wait=true` on this peer (the shard must be
    /// local to it).
    pub fn create_shard_snapshot(
        &self,
        name: &str,
        shard: u32,
    ) -> Result<SnapshotDescription, QdrantError> {
        let path = shard_path(name, shard, "/snapshots?wait=true");
        let request = self.request(Method::POST, &path, Some(Vec::new()))?;
        let request = self
            .agent
            .configure_request(request)
            .timeout_recv_response(Some(self.timeouts.snapshot_create))
            .build();
        let answer: super::types::Envelope<SnapshotDescription> = self.exchange_json(
            Method::POST,
            &path,
            request,
            &format!("creating the snapshot of shard {shard}"),
            self.timeouts.snapshot_create,
        )?;
        let description = answer
            .result
            .ok_or_else(|| self.invalid(&path, "no `result`"))?;
        if description.name.is_empty() {
            return Err(self.invalid(&path, "the snapshot has an empty `name`"));
        }
        if description.size.is_none() {
            return Err(self.invalid(&path, "the snapshot has no `size`"));
        }
        Ok(description)
    }

    /// `GET /collections/{c}/shards/{id}/snapshots` (names that are not safe are left out).
    pub fn list_shard_snapshots(
        &self,
        name: &str,
        shard: u32,
    ) -> Result<Vec<SnapshotDescription>, QdrantError> {
        let path = shard_path(name, shard, "/snapshots");
        self.snapshot_list(&path)
    }

    /// `DELETE /collections/{c}/shards/{id}/snapshots/{snapshot}?wait=true`.
    pub fn delete_shard_snapshot(
        &self,
        name: &str,
        shard: u32,
        snapshot: &str,
    ) -> Result<(), QdrantError> {
        let path = shard_path(
            name,
            shard,
            &format!("/snapshots/{}?wait=true", encode_segment(snapshot)),
        );
        self.call(Method::DELETE, &path, None)
    }

    /// `GET /collections/{c}/shards/{id}/snapshots/{snapshot}`, resumable as
    /// [`Client::open_snapshot`].
    pub fn open_shard_snapshot(
        &self,
        name: &str,
        shard: u32,
        snapshot: &str,
        resume: Option<&ResumeFrom>,
    ) -> Result<SnapshotBody<'_>, QdrantError> {
        self.open_snapshot_at(&shard_path(name, shard, ""), snapshot, resume)
    }

    /// `GET /collections/{c}/shards/{id}/snapshot` (singular): a snapshot of this peer's
    /// replica of the shard (a single node's collection is shard 0, or its shards 0..n), built
    /// and streamed into the answer, with nothing stored on the server (docs/qdrant.md, "Shard
    /// snapshots"). A server without this endpoint answers 404, as it does for an unknown
    /// shard or collection: the caller tells them apart by what it knows exists. The body
    /// cannot be resumed, and a failure while the server streams only shows as a body that
    /// ends early: the archive itself must be checked for its end.
    pub fn open_streamed_shard_snapshot(
        &self,
        name: &str,
        shard: u32,
    ) -> Result<SnapshotBody<'_>, QdrantError> {
        self.open_streamed(&shard_path(name, shard, "/snapshot"))
    }

    /// `POST /collections/{c}/shards/{id}/snapshots/upload?wait=true&priority=…&checksum=`:
    /// recovers this peer's replica of the shard, streamed as [`Client::upload_snapshot_file`].
    /// The server does not keep the file.
    #[allow(clippy::too_many_arguments)]
    pub fn upload_shard_snapshot_file(
        &self,
        name: &str,
        shard: u32,
        file: crate::manifest::files::Opened,
        shown: &str,
        file_name: &str,
        sha256: &str,
        priority: RecoveryPriority,
        on_progress: &mut dyn FnMut(u64) -> Result<(), Cancelled>,
    ) -> Result<(), QdrantError> {
        let base = shard_path(name, shard, "");
        let target = UploadTarget {
            base: &base,
            collection: name,
            priority,
        };
        self.upload_snapshot_at(&target, file, shown, file_name, sha256, on_progress)
    }
}

impl Client {
    /// The exact number of points under one shard key (custom sharding).
    pub fn count_exact_in_shard_key(&self, name: &str, key: &ShardKey) -> Result<u64, QdrantError> {
        let body = json!({ "exact": true, "shard_key": key.to_value() });
        self.count_at(name, "/points/count", body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Value {
        let path = format!(
            "{}/tests/fixtures/qdrant/cluster/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        let exchange: Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        exchange["response"]["body"]["result"].clone()
    }

    #[test]
    fn a_single_node_reports_disabled() {
        assert_eq!(
            parse_cluster_status(&fixture("status-single-node.json")),
            Ok(ClusterStatus::Disabled)
        );
    }

    #[test]
    fn the_real_three_node_status_lists_three_peers_by_p2p_uri() {
        let ClusterStatus::Enabled { peer_id, peers } =
            parse_cluster_status(&fixture("3-node-status.json")).unwrap()
        else {
            panic!("enabled expected");
        };
        assert_eq!(peer_id, 2650921678778859);
        assert_eq!(peers.len(), 3);
        assert_eq!(peers[&4991361595838338], "http://127.0.0.1:20345/");
    }

    #[test]
    fn hostile_statuses_are_refused() {
        let mut status = fixture("3-node-status.json");
        status["peer_id"] = json!(-1);
        assert!(parse_cluster_status(&status).is_err());
        let mut status = fixture("3-node-status.json");
        status["peers"]["x"] = json!({"uri": "http://a:1/"});
        assert!(parse_cluster_status(&status).is_err());
        let mut status = fixture("3-node-status.json");
        status["peer_id"] = json!(7);
        assert!(parse_cluster_status(&status).is_err(), "self not listed");
        assert!(parse_cluster_status(&json!({"status": "weird"})).is_err());
    }

    #[test]
    fn the_real_collection_view_is_typed() {
        let view =
            parse_collection_cluster(&fixture("3-node-collection-cluster-peer0.json")).unwrap();
        assert_eq!(view.peer_id, 2650921678778859);
        assert_eq!(view.shard_count, 3);
        assert_eq!(view.local.len(), 2);
        assert_eq!(view.local[0].points_count, Some(173));
        assert!(view.local.iter().all(Replica::is_active));
        assert_eq!(view.remote.len(), 4);
        assert_eq!(view.remote[3].peer_id, 2915558401092421);
        assert_eq!(view.transfers, 0);
    }

    #[test]
    fn unknown_states_are_not_active_and_bad_ids_are_refused() {
        let mut view = fixture("3-node-collection-cluster-peer0.json");
        view["local_shards"][0]["state"] = json!("Sparkling");
        let parsed = parse_collection_cluster(&view).unwrap();
        assert!(!parsed.local[0].is_active());
        assert_eq!(parsed.local[0].state, "Unknown");
        let mut view = fixture("3-node-collection-cluster-peer0.json");
        view["local_shards"][0]["shard_id"] = json!(1u64 << 32);
        assert!(parse_collection_cluster(&view).is_err());
        let mut view = fixture("3-node-collection-cluster-peer0.json");
        view["local_shards"][0]["shard_key"] = json!({"nested": 1});
        assert!(parse_collection_cluster(&view).is_err());
        let mut view = fixture("3-node-collection-cluster-peer0.json");
        view["remote_shards"][0]["peer_id"] = json!(2650921678778859u64);
        assert!(parse_collection_cluster(&view).is_err());
    }

    #[test]
    fn shard_keys_are_strings_or_numbers_in_order() {
        let keys = parse_shard_keys(&json!({"shard_keys": [{"key": "eu"}, {"key": 7}]})).unwrap();
        assert_eq!(keys, [ShardKey::Keyword("eu".into()), ShardKey::Number(7)]);
        assert!(parse_shard_keys(&json!({"shard_keys": [{"key": -1}]})).is_err());
        assert!(parse_shard_keys(&json!({"shard_keys": [{"key": [1]}]})).is_err());
        assert_eq!(parse_shard_keys(&json!({})).unwrap(), []);
    }

    #[test]
    fn rest_addresses_take_the_p2p_host_and_the_given_scheme_port_and_credentials() {
        assert_eq!(
            p2p_host("http://127.0.0.1:20335/").as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(
            p2p_host("http://[fd00::2]:6335/").as_deref(),
            Some("[fd00::2]")
        );
        assert_eq!(
            p2p_host("http://qdrant-1.svc:6335").as_deref(),
            Some("qdrant-1.svc")
        );
        assert_eq!(p2p_host("http://a b:1/"), None);
        assert_eq!(p2p_host("http://:1/"), None);
        let given = ServerUrl::parse("https://u:pw@q0.example:6333").unwrap();
        let derived = given.with_host("10.0.0.2");
        assert_eq!(derived.base(), "https://10.0.0.2:6333");
        assert_eq!(derived.authorization(), given.authorization());
        assert_eq!(derived.shown(), "https://***@10.0.0.2:6333");
        let given = ServerUrl::parse("http://[::1]:6333/").unwrap();
        assert_eq!(given.with_host("[fd00::2]").base(), "http://[fd00::2]:6333");
        let given = ServerUrl::parse("http://localhost").unwrap();
        assert_eq!(given.with_host("10.0.0.3").base(), "http://10.0.0.3");
    }

    fn three_peers() -> (qdrant_double::Cluster, Vec<Client>) {
        let cluster = qdrant_double::Cluster::start(3, qdrant_double::Config::default());
        let clients = cluster
            .urls()
            .iter()
            .map(|u| Client::new(u, None, crate::qdrant::Timeouts::default()).unwrap())
            .collect();
        (cluster, clients)
    }

    /// A single node streams shard 0 of a collection: a tar named as Qdrant names it, with the
    /// shard's files at its root and nothing stored; an unknown shard and a server without the
    /// endpoint are 404s; a stream cut short is an error, not a short file.
    #[test]
    fn a_streamed_shard_snapshot_is_received_whole_or_fails() {
        use qdrant_double::{Config, Double, Fault, FaultKind};
        let double = Double::start(Config::default());
        double.seed_ai_memory();
        let client = Client::new(&double.url(), None, crate::qdrant::Timeouts::default()).unwrap();
        let body = client.open_streamed_shard_snapshot("github", 0).unwrap();
        let name = body.file_name().unwrap();
        assert!(
            name.starts_with("github-shard-0-") && name.ends_with(".snapshot"),
            "{name}"
        );
        assert_eq!(body.resume_tag(), None);
        let mut bytes = Vec::new();
        let written = body.receive(&mut bytes).unwrap();
        assert_eq!(written, bytes.len() as u64);
        let names: Vec<String> = tar::Archive::new(bytes.as_slice())
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().any(|n| n == "replica_state.json"), "{names:?}");
        let stored = std::fs::read_dir(double.snapshots_dir())
            .map(|d| d.flatten().filter(|e| e.path().is_file()).count())
            .unwrap_or(0);
        assert_eq!(stored, 0, "nothing is stored on the server");

        let unknown = client
            .open_streamed_shard_snapshot("github", 7)
            .err()
            .unwrap();
        assert!(unknown.is_not_found(), "{unknown}");

        double.inject(Fault::always(
            Some("GET"),
            "/shards/0/snapshot",
            FaultKind::TruncateBody { after_bytes: 1000 },
        ));
        let cut = client
            .open_streamed_shard_snapshot("github", 0)
            .unwrap()
            .receive(&mut Vec::new());
        assert!(cut.is_err(), "a cut stream must not pass for a whole one");

        let older = Double::start(Config {
            no_streamed_shard_snapshot: true,
            ..Config::default()
        });
        older.seed_ai_memory();
        let client = Client::new(&older.url(), None, crate::qdrant::Timeouts::default()).unwrap();
        let refused = client
            .open_streamed_shard_snapshot("github", 0)
            .err()
            .unwrap();
        assert!(refused.is_not_found(), "{refused}");
    }

    #[test]
    fn shard_snapshots_round_trip_through_the_typed_calls() {
        let (cluster, clients) = three_peers();
        cluster.seed(
            "discussions",
            qdrant_double::info_from_fixture("cluster/3-node-collection-info.json"),
            3,
            1,
            (1..=30).collect(),
        );
        let ClusterStatus::Enabled { peer_id, peers } = clients[0].cluster_status().unwrap() else {
            panic!("a cluster");
        };
        assert_eq!(peer_id, cluster.peer_id(0));
        assert_eq!(peers.len(), 3);
        let view = clients[0].collection_cluster_view("discussions").unwrap();
        let shard = view.local[0].shard_id;
        let outsider = (0..3u32).find(|id| view.local.iter().all(|r| r.shard_id != *id));
        if let Some(other) = outsider {
            let refused = clients[0].create_shard_snapshot("discussions", other);
            assert!(matches!(refused, Err(QdrantError::Api { status: 400, .. })));
        }
        let made = clients[0]
            .create_shard_snapshot("discussions", shard)
            .unwrap();
        let listed = clients[0]
            .list_shard_snapshots("discussions", shard)
            .unwrap();
        assert_eq!(listed, std::slice::from_ref(&made));
        let mut bytes = Vec::new();
        clients[0]
            .open_shard_snapshot("discussions", shard, &made.name, None)
            .unwrap()
            .receive(&mut bytes)
            .unwrap();
        assert_eq!(Some(bytes.len() as u64), made.size);
        clients[0]
            .delete_shard_snapshot("discussions", shard, &made.name)
            .unwrap();
        assert_eq!(
            clients[0]
                .list_shard_snapshots("discussions", shard)
                .unwrap(),
            []
        );

        // The file goes back in through the upload, checksum checked by the server.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shard.snapshot");
        std::fs::write(&path, &bytes).unwrap();
        let sha = made.checksum.clone().unwrap();
        let upload = |sha: &str| {
            clients[0].upload_shard_snapshot_file(
                "discussions",
                shard,
                crate::manifest::files::Opened::file(std::fs::File::open(&path).unwrap()).unwrap(),
                "shard.snapshot",
                "shard.snapshot",
                sha,
                RecoveryPriority::Snapshot,
                &mut |_| Ok(()),
            )
        };
        let wrong = upload(&"0".repeat(64));
        assert!(
            matches!(wrong, Err(QdrantError::Api { status: 400, .. })),
            "{wrong:?}"
        );
        upload(&sha).unwrap();
        let requests = cluster.peer(0).requests();
        let sent = requests
            .iter()
            .rfind(|r| r.path.ends_with("/snapshots/upload"))
            .unwrap();
        assert_eq!(
            sent.path,
            format!("/collections/discussions/shards/{shard}/snapshots/upload")
        );
        assert_eq!(sent.query["priority"], "snapshot");
        assert_eq!(sent.query["checksum"], sha);
    }

    #[test]
    fn shard_keys_are_created_and_listed_in_order() {
        let (cluster, clients) = three_peers();
        clients[0]
            .create_collection(
                "tenants",
                &json!({"vectors": {"size": 4, "distance": "Cosine"}, "shard_number": 1,
                        "replication_factor": 2, "sharding_method": "custom"}),
            )
            .unwrap();
        for key in [ShardKey::Keyword("zulu".into()), ShardKey::Number(7)] {
            clients[1]
                .create_shard_key("tenants", &key, &serde_json::Map::new())
                .unwrap();
        }
        assert_eq!(
            clients[2].shard_keys("tenants").unwrap(),
            [ShardKey::Keyword("zulu".into()), ShardKey::Number(7)]
        );
        assert_eq!(
            cluster.shard_key_order("tenants"),
            Some(vec![json!("zulu"), json!(7)])
        );
    }

    #[test]
    fn a_peer_listed_twice_under_two_spellings_of_its_id_is_refused() {
        // `1`, `01` and `+1` are one peer id: a second entry would silently replace the first.
        for other in ["01", "+1"] {
            let status = json!({"status": "enabled", "peer_id": 1, "peers": {
                "1": {"uri": "http://10.0.0.1:6335/"}, other: {"uri": "http://10.0.0.9:6335/"}}});
            assert!(parse_cluster_status(&status).is_err(), "{other}");
        }
    }
}
