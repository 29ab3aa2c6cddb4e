//! Properties for the cluster parsers (issue 12): Qdrant's cluster answers, the backup's
//! placement merge, the P2P host derivation, the manifest's cluster records and the shard tar
//! walk of `verify`'s deep check. As for the rest of [`super`]: no panic, an answer in bounded
//! time, and what is accepted keeps the invariants the callers rely on.

use std::io::Write;

use proptest::prelude::*;
use serde_json::{Value, json};

use super::{config, json_value, mutate, mutation};
use crate::manifest::cluster::{MAX_PEERS, MAX_SHARDS, shard_file};
use crate::manifest::{CollectionBackup, Manifest, shard_audit, snapshot_archive};
use crate::names::SafeName;
use crate::qdrant::ServerUrl;
use crate::qdrant::cluster::{
    ClusterStatus, REPLICA_STATES, ShardKey, p2p_host, parse_cluster_status,
    parse_collection_cluster, parse_shard_keys,
};

/// A value for a field aimem reads: sane, borderline or hostile.
fn field() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => json_value(),
        2 => prop::sample::select(vec![
            json!(0), json!(1), json!(2), json!(3), json!(u32::MAX), json!(u64::from(u32::MAX) + 1),
            json!(u64::MAX), json!(-1), json!(1.5), json!(null), json!(""), json!("Active"),
            json!("Dead"), json!("eu"), json!("e\u{1b}[2Ju"), json!("../x"), json!("a\nb"),
            json!("\u{202e}x"), json!([1]), json!({"key": "eu"}),
        ]),
    ]
}

/// A `GET /collections/{c}/cluster` result of the real shape with hostile fields.
fn collection_view() -> impl Strategy<Value = Value> {
    let replica = (field(), field(), field(), field(), field()).prop_map(
        |(shard_id, peer_id, state, points_count, shard_key)| {
            json!({"shard_id": shard_id, "peer_id": peer_id, "state": state,
                   "points_count": points_count, "shard_key": shard_key})
        },
    );
    let small_id = prop_oneof![(0u64..4).prop_map(Value::from), field()];
    let sane_replica = (small_id.clone(), 1u64..4, prop::sample::select(REPLICA_STATES.to_vec()))
        .prop_map(|(shard_id, peer_id, state)| {
            json!({"shard_id": shard_id, "peer_id": peer_id, "state": state, "points_count": 1})
        });
    let replicas = prop::collection::vec(prop_oneof![replica, sane_replica], 0..6);
    (
        prop_oneof![(1u64..4).prop_map(Value::from), field()],
        prop_oneof![(0u64..5).prop_map(Value::from), field()],
        replicas.clone(),
        replicas,
        field(),
    )
        .prop_map(|(peer_id, shard_count, local, remote, transfers)| {
            json!({"peer_id": peer_id, "shard_count": shard_count, "local_shards": local,
                   "remote_shards": remote, "shard_transfers": transfers})
        })
}

/// Every peer's `GET /collections/{c}/cluster` of one placement (peers 1..=n, each shard on
/// some of them in some state), then a few hostile edits of those views.
fn agreeing_views() -> impl Strategy<Value = Vec<Value>> {
    let shard = prop::collection::vec(
        (
            0u64..4,
            prop::sample::select(vec!["Active", "Active", "Dead", "Partial", "Odd"]),
        ),
        1..4,
    );
    (
        1u64..5,
        prop::collection::vec(shard, 0..6),
        prop::collection::vec((any::<usize>(), any::<usize>(), 0usize..4, field()), 0..3),
    )
        .prop_map(|(peers, shards, edits)| {
            let mut views: Vec<Value> = (1..=peers)
                .map(|me| {
                    let mut local = Vec::new();
                    let mut remote = Vec::new();
                    for (id, holders) in shards.iter().enumerate() {
                        let mut seen = Vec::new();
                        for (holder, state) in holders {
                            let holder = holder % peers + 1;
                            if seen.contains(&holder) {
                                continue;
                            }
                            seen.push(holder);
                            let replica = json!({"shard_id": id, "peer_id": holder,
                                                 "state": state, "points_count": 1});
                            match holder == me {
                                true => local.push(replica),
                                false => remote.push(replica),
                            }
                        }
                    }
                    json!({"peer_id": me, "shard_count": shards.len(), "local_shards": local,
                           "remote_shards": remote, "shard_transfers": []})
                })
                .collect();
            for (view, replica, what, value) in edits {
                let view = &mut views[view % peers as usize];
                let field = ["shard_id", "peer_id", "state", "shard_key"][what];
                let list = if replica % 2 == 0 {
                    "local_shards"
                } else {
                    "remote_shards"
                };
                if let Some(items) = view[list].as_array_mut()
                    && !items.is_empty()
                {
                    let at = replica / 2 % items.len();
                    items[at][field] = value;
                } else {
                    view["shard_count"] = value;
                }
            }
            views
        })
}

/// A `GET /cluster` result of the real shape with hostile peers.
fn cluster_status() -> impl Strategy<Value = Value> {
    let uri = prop_oneof![
        any::<String>(),
        prop::sample::select(vec![
            "http://10.0.0.2:6335/",
            "http://[fd00::2]:6335/",
            "http://u:pw@evil:6335/",
            "http://host/path?q=1#f",
            "http://a:b:c/",
            "http://[::1/",
            "//x",
            "http://@/",
            "http://a%2f@b/",
        ])
        .prop_map(str::to_string),
    ];
    (
        prop_oneof![(1u64..4).prop_map(Value::from), field()],
        prop::collection::vec(
            (
                prop_oneof![(1u64..4).prop_map(|n| n.to_string()), any::<String>()],
                uri,
            ),
            0..5,
        ),
        prop::sample::select(vec!["enabled", "disabled", "other"]),
    )
        .prop_map(|(peer_id, peers, status)| {
            let peers: serde_json::Map<String, Value> = peers
                .into_iter()
                .map(|(id, uri)| (id, json!({"uri": uri})))
                .collect();
            json!({"status": status, "peer_id": peer_id, "peers": peers,
                   "raft_info": {"term": 1}})
        })
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn cluster_status_answers_keep_their_invariants(value in prop_oneof![cluster_status(), json_value()]) {
        if let Ok(ClusterStatus::Enabled { peer_id, peers }) = parse_cluster_status(&value) {
            prop_assert!(peers.contains_key(&peer_id));
            prop_assert!(peers.len() <= crate::qdrant::cluster::MAX_PEERS);
            for uri in peers.values() {
                prop_assert!(!uri.chars().any(|c| c.is_control() || c.is_whitespace()));
            }
        }
    }

    /// The client reads an answer as it arrives into the typed struct: it accepts exactly
    /// what the check of the whole parsed answer accepts, with the same result.
    #[test]
    fn answers_read_as_they_arrive_decide_as_parsed_ones(
        status in prop_oneof![cluster_status(), json_value()],
        view in prop_oneof![collection_view(), json_value()],
    ) {
        use crate::qdrant::cluster::{ClusterAnswer, CollectionClusterAnswer, ShardKeysAnswer};
        use crate::qdrant::read_json;
        let streamed = read_json::<ClusterAnswer>(status.to_string().as_bytes())
            .map_err(|e| e.to_string())
            .and_then(ClusterAnswer::check);
        prop_assert_eq!(streamed.ok(), parse_cluster_status(&status).ok());
        let streamed = read_json::<CollectionClusterAnswer>(view.to_string().as_bytes())
            .map_err(|e| e.to_string())
            .and_then(CollectionClusterAnswer::check);
        prop_assert_eq!(streamed.ok(), parse_collection_cluster(&view).ok());
        if !view.is_null() {
            let streamed = read_json::<ShardKeysAnswer>(view.to_string().as_bytes())
                .map_err(|e| e.to_string())
                .and_then(ShardKeysAnswer::check);
            prop_assert_eq!(streamed.ok(), parse_shard_keys(&view).ok());
        }
    }

    /// Peers past the bound are refused while read, whatever follows them.
    #[test]
    fn too_many_peers_are_refused_while_read(extra in 1usize..64, tail in any::<String>()) {
        let peers: Vec<String> = (1..=(crate::qdrant::cluster::MAX_PEERS + extra))
            .map(|id| format!(r#""{id}": {{"uri": "http://10.0.0.1:6335/"}}"#))
            .collect();
        let text = format!(
            r#"{{"status": "enabled", "peer_id": 1, "peers": {{{}, {}"#,
            peers.join(", "),
            tail
        );
        let err = crate::qdrant::read_json::<crate::qdrant::cluster::ClusterAnswer>(text.as_bytes())
            .unwrap_err()
            .to_string();
        prop_assert!(err.contains("more than 1024 peers"), "{}", err);
    }

    #[test]
    fn collection_views_keep_their_invariants(value in prop_oneof![collection_view(), json_value()]) {
        if let Ok(view) = parse_collection_cluster(&value) {
            prop_assert!(view.shard_count as usize <= crate::qdrant::cluster::MAX_SHARDS);
            for replica in &view.local {
                prop_assert_eq!(replica.peer_id, view.peer_id);
            }
            for replica in view.local.iter().chain(&view.remote) {
                prop_assert!(replica.state == "Unknown" || REPLICA_STATES.contains(&replica.state.as_str()));
                if let Some(ShardKey::Keyword(k)) = &replica.shard_key {
                    prop_assert!(!k.chars().any(char::is_control));
                }
            }
            prop_assert!(view.remote.iter().all(|r| r.peer_id != view.peer_id));
        }
        let _ = parse_shard_keys(&value);
        let _ = ShardKey::from_value(&value);
    }

    /// The backup's merge of every peer's view, and its choice of a source per shard: a
    /// chosen source is always an Active holder the peers agree on, and the choice ends.
    #[test]
    fn placement_merges_and_source_choices_hold(
        views in prop_oneof![1 => prop::collection::vec(collection_view(), 1..4), 3 => agreeing_views()],
    ) {
        let views: Vec<_> = views.iter().filter_map(|v| parse_collection_cluster(v).ok()).collect();
        if let Ok(shards) = crate::engine::backup::shards::placement("c", &views) {
            if let Some(first) = views.first() {
                prop_assert_eq!(shards.len(), first.shard_count as usize);
            }
            if let Ok(sources) = crate::engine::backup::shards::choose_sources("c", &shards) {
                prop_assert_eq!(sources.len(), shards.len());
                for (shard, peer) in &sources {
                    let holder = shards[shard].replicas.get(peer);
                    prop_assert!(holder.is_some_and(|(state, _)| state == "Active"));
                }
            }
        }
    }

    /// A derived peer address keeps the user's scheme, credentials and port, and goes to the
    /// P2P host and nowhere else: the host never smuggles in credentials, a path or another
    /// authority.
    #[test]
    fn derived_peer_addresses_reach_only_the_p2p_host(
        uri in prop_oneof![any::<String>(), cluster_status().prop_map(|v| v.to_string())],
    ) {
        let Some(host) = p2p_host(&uri) else {
            return Ok(());
        };
        prop_assert!(!host.is_empty() && host.len() <= 253);
        prop_assert!(!host.contains(['/', '?', '#', '@']) && !host.chars().any(char::is_whitespace));
        let derived = ServerUrl::parse("https://u:secret@q0.example:6333").unwrap().with_host(&host);
        prop_assert!(!derived.shown().contains("secret"));
        // The shown form differs from the raw one only in the user info (`***`).
        if let Ok(parsed) = derived.shown().parse::<ureq::http::Uri>() {
            let authority = parsed.authority().map(|a| a.as_str().to_string()).unwrap_or_default();
            prop_assert_eq!(authority.rsplit_once('@').map(|(user, _)| user), Some("***"));
            prop_assert_eq!(parsed.host(), Some(host.as_str()));
        }
    }
}

/// A sound cluster manifest (one collection, two shards) as JSON.
fn cluster_manifest() -> Value {
    let name = SafeName::new("discussions").unwrap_or_else(|e| panic!("{e}"));
    let shard = |id: u32| {
        json!({"shard_id": id, "shard_key": null, "file": shard_file(&name, id),
               "size_bytes": 1, "records": 1, "sha256": "a".repeat(64), "source_peer": 1,
               "replicas": [{"peer_id": 1, "state": "Active"}, {"peer_id": 2, "state": "Active"}]})
    };
    json!({
        "backup_date": "2026-12-03T12:00:00+00:00",
        "collections": {"discussions": {
            "name": "discussions", "records": 2, "size_bytes": 2,
            "schema": {"params": {"shard_number": 2, "replication_factor": 2}},
            "cluster": {"shard_number": 2, "replication_factor": 2, "write_consistency_factor": 1,
                        "sharding_method": "auto", "shard_keys": [], "key_records": [],
                        "shards": [shard(0), shard(1)]}
        }},
        "cluster": {"peers": [{"peer_id": 1, "uri": "http://a:6335/", "url": "http://a:6333"},
                              {"peer_id": 2, "uri": "http://b:6335/", "url": "http://b:6333"}]}
    })
}

/// The places in [`cluster_manifest`] a hostile edit goes to.
const MANIFEST_PATHS: [&str; 16] = [
    "/collections/discussions/cluster/shard_number",
    "/collections/discussions/cluster/sharding_method",
    "/collections/discussions/cluster/shard_keys",
    "/collections/discussions/cluster/key_records",
    "/collections/discussions/cluster/shards",
    "/collections/discussions/cluster/shards/0/shard_id",
    "/collections/discussions/cluster/shards/0/shard_key",
    "/collections/discussions/cluster/shards/0/file",
    "/collections/discussions/cluster/shards/1/size_bytes",
    "/collections/discussions/cluster/shards/1/source_peer",
    "/collections/discussions/cluster/shards/1/replicas",
    "/collections/discussions/cluster/shards/1/replicas/0/state",
    "/collections/discussions/cluster",
    "/collections/discussions/snapshot_file",
    "/cluster/peers",
    "/cluster/peers/0/peer_id",
];

proptest! {
    #![proptest_config(config(96))]

    /// Whatever a manifest's cluster records hold, parsing answers; what it accepts names only
    /// the shard files aimem would write, within bounds, and the audit and layout code that
    /// reads accepted records does not panic.
    #[test]
    fn manifest_cluster_records_keep_their_invariants(
        edits in prop::collection::vec((0..MANIFEST_PATHS.len(), field()), 1..4),
    ) {
        let mut manifest = cluster_manifest();
        for (at, value) in edits {
            if let Some(slot) = manifest.pointer_mut(MANIFEST_PATHS[at]) {
                *slot = value;
            }
        }
        let text = manifest.to_string();
        super::parse_and_render_manifest(text.clone());
        let Ok(parsed) = Manifest::parse(camino::Utf8Path::new("manifest.json"), text) else {
            return Ok(());
        };
        if let Some(record) = parsed.cluster() {
            prop_assert!(record.peers.len() <= MAX_PEERS);
        }
        for (name, entry) in &parsed.collections {
            let CollectionBackup::Shards(cluster) = &entry.backup else {
                continue;
            };
            let safe = SafeName::new(name).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(cluster.shards.len() <= MAX_SHARDS);
            for shard in &cluster.shards {
                prop_assert_eq!(&shard.file, &shard_file(&safe, shard.shard_id));
                prop_assert!(crate::manifest::checksums::check_relative(&shard.file).is_ok());
            }
            let _ = shard_audit::placement(name, entry, &parsed);
            let _ = shard_audit::records_note(name, entry);
            if let Some(layout) = crate::engine::layout::of_backup(entry, &parsed) {
                let _ = crate::engine::layout::compare(layout.clone(), layout, "a", "b");
            }
        }
    }
}

/// A shard snapshot as Qdrant writes one (docs/qdrant.md, "Snapshot archive layout"): the
/// shard's own JSON files at the top, `segments/` and an empty `wal/`.
fn shard_tar(replica_state: &Value, key_mapping: Option<&Value>) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut add = |path: &str, bytes: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        builder
            .append_data(&mut header, path, bytes)
            .unwrap_or_else(|e| panic!("{e}"));
    };
    add("replica_state.json", replica_state.to_string().as_bytes());
    add("shard_config.json", br#"{"type":"ReplicaSet"}"#);
    if let Some(mapping) = key_mapping {
        add("shard_key_mapping.json", mapping.to_string().as_bytes());
    }
    add("segments/a/segment.json", b"{}");
    builder.into_inner().unwrap_or_else(|e| panic!("{e}"))
}

/// Writes `bytes` as shard 0 of `discussions` in a backup folder and runs verify's deep check.
fn deep_check(bytes: &[u8]) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let root = camino::Utf8Path::from_path(dir.path()).unwrap_or_else(|| panic!("utf-8"));
    std::fs::create_dir_all(root.join("qdrant/discussions")).unwrap_or_else(|e| panic!("{e}"));
    let file = "qdrant/discussions/shard-0.snapshot";
    let mut out = std::fs::File::create(root.join(file)).unwrap_or_else(|e| panic!("{e}"));
    out.write_all(bytes).unwrap_or_else(|e| panic!("{e}"));
    drop(out);
    let manifest = Manifest::parse(camino::Utf8Path::new("m"), cluster_manifest().to_string())
        .unwrap_or_else(|e| panic!("{e}"));
    let entry = &manifest.collections["discussions"];
    let opened = std::fs::File::open(root.join(file))
        .and_then(crate::manifest::files::Opened::file)
        .unwrap_or_else(|e| panic!("{e}"));
    let _ = snapshot_archive::read_shard_from(opened);
    let folder = crate::manifest::files::Folder(root);
    let _ = shard_audit::deep_check_shard("discussions", entry, &folder, file, false);
}

proptest! {
    #![proptest_config(config(48))]

    #[test]
    fn shard_deep_check_survives_any_state_and_mapping(
        state in prop_oneof![
            json_value(),
            (field(), field()).prop_map(|(peer, local)| json!({"this_peer_id": peer, "is_local": local, "peers": {}})),
        ],
        mapping in prop::option::of(prop_oneof![
            json_value(),
            (field(), field()).prop_map(|(key, ids)| json!([{"key": key, "shard_ids": ids}])),
        ]),
    ) {
        deep_check(&shard_tar(&state, mapping.as_ref()));
    }

    #[test]
    fn shard_deep_check_survives_damage(mutations in prop::collection::vec(mutation(), 1..3)) {
        let good = shard_tar(
            &json!({"this_peer_id": 1, "is_local": true, "peers": {"1": "Active"}}),
            Some(&json!([{"key": "eu", "shard_ids": [0]}])),
        );
        deep_check(&mutate(good, &mutations));
    }
}
