//! Restores of cluster backups (issue 12): into an empty cluster, custom sharding, rollback,
//! and the cross layouts, against the double's multi-peer mode.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use qdrant_double::{Cluster, Config, Double, Fault, FaultKind, info_from_fixture};
use serde_json::json;

use super::support::{World, json_stdout, keyed_config as config};

fn seed_discussions(cluster: &Cluster) {
    cluster.seed(
        "discussions",
        info_from_fixture("cluster/3-node-collection-info.json"),
        3,
        2,
        (1..=600).collect(),
    );
}

fn seed_tenants(cluster: &Cluster) {
    cluster.seed_custom(
        "tenants",
        info_from_fixture("cluster/3-node-collection-info.json"),
        2,
        2,
        &[
            (json!("zulu"), (1..=40).collect()),
            (json!(7), (100..=130).collect()),
        ],
    );
}

/// Shard id → the points of each of its replicas (by peer id), states left out.
fn replica_points(cluster: &Cluster, name: &str) -> BTreeMap<u32, Vec<Vec<u64>>> {
    let placement = cluster.placement(name).expect("collection");
    placement
        .iter()
        .map(|(&shard, replicas)| {
            let points = replicas
                .iter()
                .map(|(peer, _)| {
                    cluster
                        .replica_point_ids(name, shard, *peer)
                        .expect("replica")
                })
                .collect();
            (shard, points)
        })
        .collect()
}

fn every_replica_active(cluster: &Cluster, name: &str) -> bool {
    cluster
        .placement(name)
        .expect("collection")
        .values()
        .all(|replicas| replicas.iter().all(|(_, state)| state == "Active"))
}

#[test]
fn a_three_peer_backup_restores_into_an_empty_three_peer_cluster() {
    let world = World::new();
    let source = Cluster::start(3, config());
    seed_discussions(&source);
    let backup = world.backup(&source.url(0), "discussions");

    let target = Cluster::start(3, config());
    let dry = world.run(&target.url(0), &["restore", &backup, "--dry-run"]);
    dry.assert_code(0);
    assert!(
        dry.stderr.contains("3 shards") && dry.stderr.contains("3 peers"),
        "the plan names the cluster: {dry:?}"
    );
    assert!(
        target.collection_names().is_empty(),
        "a dry run changes nothing"
    );

    let run = world.run(&target.url(0), &["restore", &backup, "--force", "--json"]);
    run.assert_code(0);
    assert_eq!(
        target.point_ids("discussions"),
        source.point_ids("discussions")
    );
    let placement = target.placement("discussions").expect("restored");
    assert_eq!(placement.len(), 3);
    assert!(placement.values().all(|r| r.len() == 2), "{placement:?}");
    assert!(every_replica_active(&target, "discussions"));
    // Every replica holds exactly its shard's points, as in the source cluster.
    let expected: BTreeMap<u32, Vec<u64>> = replica_points(&source, "discussions")
        .into_iter()
        .map(|(shard, replicas)| (shard, replicas[0].clone()))
        .collect();
    for (shard, replicas) in replica_points(&target, "discussions") {
        for points in replicas {
            assert_eq!(points, expected[&shard], "shard {shard}");
        }
    }
    // Each replica was recovered from its shard's file on its own peer, once, with
    // priority=no_sync (nothing left to Qdrant's synchronisation) and the file's checksum.
    let mut uploaded = Vec::new();
    for i in 0..3 {
        for request in target.peer(i).requests() {
            if let Some(shard) = request
                .path
                .strip_prefix("/collections/discussions/shards/")
                .and_then(|rest| rest.strip_suffix("/snapshots/upload"))
            {
                assert_eq!(request.query["priority"], "no_sync");
                assert_eq!(request.query["checksum"].len(), 64);
                uploaded.push((shard.parse::<u32>().expect("shard id"), target.peer_id(i)));
            }
        }
    }
    uploaded.sort();
    let mut replicas: Vec<(u32, u64)> = placement
        .iter()
        .flat_map(|(shard, holders)| holders.iter().map(move |(peer, _)| (*shard, *peer)))
        .collect();
    replicas.sort();
    assert_eq!(uploaded, replicas);
    let report = json_stdout(&run);
    let collection = &report["collections"][0];
    assert_eq!(collection["cluster"]["shard_number"], 3);
    assert_eq!(
        collection["cluster"]["shards"].as_array().map(Vec::len),
        Some(3)
    );
}

#[test]
fn a_custom_sharded_collection_round_trips_with_its_keys_in_order() {
    let world = World::new();
    let source = Cluster::start(3, config());
    seed_tenants(&source);
    let backup = world.backup(&source.url(0), "tenants");

    let target = Cluster::start(3, config());
    world
        .run(&target.url(1), &["restore", &backup, "--force"])
        .assert_code(0);
    assert_eq!(
        target.shard_key_order("tenants"),
        Some(vec![json!("zulu"), json!(7)])
    );
    assert_eq!(target.shard_keys("tenants"), source.shard_keys("tenants"));
    assert_eq!(target.point_ids("tenants"), source.point_ids("tenants"));
    assert_eq!(
        replica_points(&target, "tenants"),
        replica_points(&source, "tenants")
    );
    assert!(every_replica_active(&target, "tenants"));
}

#[test]
fn a_failed_shard_upload_rolls_the_fresh_collection_back() {
    let world = World::new();
    let source = Cluster::start(3, config());
    seed_discussions(&source);
    let backup = world.backup(&source.url(0), "discussions");

    let target = Cluster::start(3, config());
    for i in 0..3 {
        target.peer(i).inject(Fault {
            method: Some("POST".into()),
            path_contains: "/shards/1/snapshots/upload".into(),
            kind: FaultKind::Status {
                code: 500,
                message: "Service internal error: disk broke".into(),
            },
            times: usize::MAX,
        });
    }
    let run = world.run(&target.url(0), &["restore", &backup, "--force"]);
    run.assert_code(4).assert_stderr_contains("shard 1");
    assert!(
        target.collection_names().is_empty(),
        "the collection this restore created is deleted: {run:?}"
    );
}

#[test]
fn a_replica_that_never_turns_active_fails_after_a_bounded_wait_and_rolls_back() {
    let world = World::new();
    let source = Cluster::start(3, config());
    seed_discussions(&source);
    let backup = world.backup(&source.url(0), "discussions");

    let target = Cluster::start(
        3,
        Config {
            replica_init_delay: Duration::from_secs(3600),
            ..config()
        },
    );
    let run = world.run(
        &target.url(0),
        &["restore", &backup, "--force", "--recovery-timeout", "2"],
    );
    run.assert_code(4)
        .assert_stderr_contains("Initializing")
        .assert_stderr_contains("--recovery-timeout");
    assert!(target.collection_names().is_empty(), "{run:?}");
    // Nothing was uploaded into a collection whose replicas were not all Active.
    for i in 0..3 {
        assert!(
            target
                .peer(i)
                .requests()
                .iter()
                .all(|r| !r.path.ends_with("/snapshots/upload")),
            "{run:?}"
        );
    }
}

/// A target cluster whose `discussions` exists with other points (same sharding as the backup).
fn existing_target() -> Cluster {
    let target = Cluster::start(3, config());
    target.seed(
        "discussions",
        info_from_fixture("cluster/3-node-collection-info.json"),
        3,
        2,
        (1001..=1010).collect(),
    );
    target
}

#[test]
fn an_existing_cluster_collection_is_overwritten_shard_by_shard() {
    let world = World::new();
    let source = Cluster::start(3, config());
    seed_discussions(&source);
    let backup = world.backup(&source.url(0), "discussions");
    let target = existing_target();
    let run = world.run(&target.url(0), &["restore", &backup, "--force"]);
    run.assert_code(0);
    assert_eq!(
        target.point_ids("discussions"),
        source.point_ids("discussions")
    );
    assert!(every_replica_active(&target, "discussions"));
    // The pre-restore copies are gone after success, on the servers and on disk.
    for i in 0..3 {
        for shard in 0..3 {
            assert_eq!(
                target.shard_snapshot_names(i, "discussions", shard),
                Vec::<String>::new()
            );
        }
    }
    let leftovers: Vec<_> = std::fs::read_dir(world.root())
        .expect("root")
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".aimem-prerestore")
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_failed_shard_upload_puts_an_existing_collection_back_exactly() {
    let world = World::new();
    let source = Cluster::start(3, config());
    seed_discussions(&source);
    let backup = world.backup(&source.url(0), "discussions");
    let target = existing_target();
    let placement_before = target.placement("discussions");
    let replicas_before = replica_points(&target, "discussions");
    for i in 0..3 {
        target.peer(i).inject(Fault {
            method: Some("POST".into()),
            path_contains: "/shards/1/snapshots/upload".into(),
            kind: FaultKind::Status {
                code: 500,
                message: "Service internal error: disk broke".into(),
            },
            times: 1,
        });
    }
    let run = world.run(&target.url(0), &["restore", &backup, "--force"]);
    run.assert_code(4)
        .assert_stderr_contains("shard 1")
        .assert_stderr_contains("recovered shard by shard from its pre-restore copy");
    assert_eq!(
        target.point_ids("discussions"),
        Some((1001..=1010).collect())
    );
    assert_eq!(target.placement("discussions"), placement_before, "{run:?}");
    assert_eq!(replica_points(&target, "discussions"), replicas_before);
}

#[test]
fn an_existing_collection_sharded_otherwise_is_refused_before_anything_changes() {
    let world = World::new();
    let source = Cluster::start(3, config());
    seed_discussions(&source);
    let backup = world.backup(&source.url(0), "discussions");
    let target = Cluster::start(3, config());
    target.seed(
        "discussions",
        info_from_fixture("cluster/3-node-collection-info.json"),
        2,
        2,
        (1..=10).collect(),
    );
    let placement = target.placement("discussions");
    let run = world.run(&target.url(0), &["restore", &backup, "--force"]);
    run.assert_code(2).assert_stderr_contains("--target-name");
    assert_eq!(target.point_ids("discussions"), Some((1..=10).collect()));
    assert_eq!(target.placement("discussions"), placement);
}

#[test]
fn a_single_node_backup_with_one_shard_restores_into_a_cluster() {
    let world = World::new();
    let single = Double::start(config());
    single.seed_from_fixture("discussions", "collections/info-discussions.json", 40);
    let backup = world.backup(&single.url(), "discussions");

    // Pointed at each peer in turn: the snapshot goes to every peer holding shard 0, whichever
    // peer aimem was given.
    for given in 0..3 {
        let target = Cluster::start(3, config());
        let run = world.run(&target.url(given), &["restore", &backup, "--force"]);
        run.assert_code(0);
        assert_eq!(
            target.point_ids("discussions"),
            single.point_ids("discussions")
        );
        let placement = target.placement("discussions").expect("restored");
        assert_eq!(placement.len(), 1);
        assert!(every_replica_active(&target, "discussions"));
        for points in replica_points(&target, "discussions")[&0].iter() {
            assert_eq!(Some(points.clone()), single.point_ids("discussions"));
        }
        // One upload to each peer holding a replica of shard 0, whichever peer was given.
        let holders: Vec<u64> = placement[&0].iter().map(|(peer, _)| *peer).collect();
        let mut uploaded_to = Vec::new();
        for i in 0..3 {
            for request in target.peer(i).requests() {
                if request.path.ends_with("/snapshots/upload") {
                    assert_eq!(request.query["priority"], "no_sync");
                    uploaded_to.push(target.peer_id(i));
                }
            }
        }
        uploaded_to.sort();
        assert_eq!(
            uploaded_to, holders,
            "given peer {given}: uploaded to {uploaded_to:?}, shard 0 is on {holders:?}"
        );
    }
}

#[test]
fn a_single_node_backup_with_several_shards_is_refused_naming_why() {
    let world = World::new();
    let single = Double::start(config());
    let mut info = info_from_fixture("collections/info-discussions.json");
    info["config"]["params"]["shard_number"] = json!(2);
    single.seed("discussions", info, (1..=5).collect());
    // One stored snapshot of both shards: it recovers only where shard 0 is.
    let backup = world.backup_with(
        &single.url(),
        &["--no-stream", "--collection", "discussions"],
    );

    let target = Cluster::start(3, config());
    let run = world.run(&target.url(0), &["restore", &backup, "--force"]);
    run.assert_code(2).assert_stderr_contains("shard_number");
    assert!(target.collection_names().is_empty());
}

/// Streamed, each of a single node's shards has its own file, which goes to its shard on
/// whichever peers hold it: the backup restores into a cluster whole.
#[test]
fn a_streamed_single_node_backup_with_several_shards_restores_into_a_cluster() {
    let world = World::new();
    let single = Double::start(config());
    let mut info = info_from_fixture("collections/info-discussions.json");
    info["config"]["params"]["shard_number"] = json!(2);
    single.seed("discussions", info, (1..=5).collect());
    let backup = world.backup(&single.url(), "discussions");

    let target = Cluster::start(3, config());
    let run = world.run(&target.url(0), &["restore", &backup, "--force"]);
    run.assert_code(0);
    assert_eq!(target.point_ids("discussions"), Some((1..=5).collect()));
    let shards = target.placement("discussions").map(|p| p.len());
    assert_eq!(shards, Some(2), "{run:?}");
}

#[test]
fn a_cluster_backup_restores_into_a_single_node() {
    let world = World::new();
    let source = Cluster::start(3, config());
    seed_discussions(&source);
    let backup = world.backup(&source.url(0), "discussions");

    let single = Double::start(config());
    let run = world.run(&single.url(), &["restore", &backup, "--force"]);
    run.assert_code(0);
    assert_eq!(
        single.point_ids("discussions"),
        source.point_ids("discussions")
    );
    let uploads: Vec<String> = single
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/snapshots/upload"))
        .map(|r| r.path)
        .collect();
    assert_eq!(
        uploads.len(),
        3,
        "one upload per shard, shard by shard: {uploads:?}"
    );
    assert!(
        uploads.iter().all(|p| p.contains("/shards/")),
        "{uploads:?}"
    );
    let info = single.collection_info("discussions").expect("created");
    assert_eq!(info["config"]["params"]["shard_number"], 3);
    assert_eq!(info["config"]["params"]["replication_factor"], 1);
}

#[test]
fn a_custom_sharded_cluster_backup_into_a_node_that_refuses_shard_keys_says_what_to_do() {
    let world = World::new();
    let source = Cluster::start(3, config());
    seed_tenants(&source);
    let backup = world.backup(&source.url(0), "tenants");

    let single = Double::start(config());
    let run = world.run(&single.url(), &["restore", &backup, "--force"]);
    run.assert_code(4)
        .assert_stderr_contains("shard key")
        .assert_stderr_contains("distributed Qdrant");
    assert!(single.collection_names().is_empty(), "{run:?}");
}

#[test]
fn a_peer_that_is_down_at_restore_time_is_named_and_nothing_changes() {
    let world = World::new();
    let source = Cluster::start(3, config());
    seed_discussions(&source);
    let backup = world.backup(&source.url(0), "discussions");
    let mut target = Cluster::start(3, config());
    let down = target.peer_id(2);
    target.stop_peer(2);
    let run = world.run(&target.url(0), &["restore", &backup, "--force"]);
    run.assert_code(3).assert_stderr_contains(&down.to_string());
    assert!(target.collection_names().is_empty(), "{run:?}");
}

#[test]
fn a_failed_pre_restore_copy_changes_nothing_and_leaves_no_copy_behind() {
    let world = World::new();
    let source = Cluster::start(3, config());
    seed_discussions(&source);
    let backup = world.backup(&source.url(0), "discussions");
    let target = existing_target();
    let replicas_before = replica_points(&target, "discussions");
    // The shard snapshot of the last shard cannot be taken on any peer, streamed or stored.
    for i in 0..3 {
        target.peer(i).inject(Fault {
            method: None,
            path_contains: "/shards/2/snapshot".into(),
            kind: FaultKind::Status {
                code: 500,
                message: "Service internal error: no space".into(),
            },
            times: usize::MAX,
        });
    }
    let run = world.run(&target.url(0), &["restore", &backup, "--force"]);
    run.assert_code(2);
    assert_eq!(replica_points(&target, "discussions"), replicas_before);
    let copies: Vec<_> = std::fs::read_dir(world.root())
        .expect("root")
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".aimem-prerestore")
        })
        .collect();
    assert!(copies.is_empty(), "{copies:?} {run:?}");
}

/// A shard's `points_count` is approximate in Qdrant: a restore checks the exact total and each
/// key's exact count, never the per-shard figures.
#[test]
fn per_key_counts_are_checked_exactly_and_per_shard_counts_are_not() {
    let world = World::new();
    let source = Cluster::start(3, config());
    seed_tenants(&source);
    let backup = world.backup(&source.url(0), "tenants");
    // Per-shard figures off by a few, as a busy real server may report them: no effect.
    super::support::edit_manifest(Path::new(&backup), |m| {
        for shard in m["collections"]["tenants"]["cluster"]["shards"]
            .as_array_mut()
            .unwrap()
        {
            shard["records"] = json!(shard["records"].as_u64().unwrap() + 3);
        }
    });
    let target = Cluster::start(3, config());
    world
        .run(&target.url(0), &["restore", &backup, "--force"])
        .assert_code(0);
    assert_eq!(target.point_ids("tenants"), source.point_ids("tenants"));

    // A key that does not hold the count the backup recorded for it: rolled back.
    let recorded = super::support::manifest(Path::new(&backup))["collections"]["tenants"]
        ["cluster"]["key_records"]
        .clone();
    let counts: Vec<u64> = serde_json::from_value(recorded).unwrap();
    super::support::edit_manifest(Path::new(&backup), |m| {
        m["collections"]["tenants"]["cluster"]["key_records"] =
            json!([counts[0] + 1, counts[1] - 1]);
    });
    let fresh = Cluster::start(3, config());
    world
        .run(&fresh.url(0), &["restore", &backup, "--force"])
        .assert_code(4)
        .assert_stderr_contains("shard key");
    assert!(fresh.collection_names().is_empty());
}

/// The five AI Memory collections, with their payload indexes, through a whole-cluster backup
/// and a restore with the default `--jobs` (several collections and their indexes at once).
#[test]
fn the_ai_memory_collections_round_trip_through_a_cluster_with_their_indexes() {
    let world = World::new();
    let source = Cluster::start(3, config());
    source.seed_ai_memory(3, 2);
    let run = world.run(&source.url(0), &["backup"]);
    run.assert_code(0);
    let backup = run.stdout.trim().to_string();

    let target = Cluster::start(3, config());
    world
        .run(&target.url(0), &["restore", &backup, "--force"])
        .assert_code(0);
    for name in qdrant_double::AI_MEMORY_COLLECTIONS {
        assert_eq!(target.point_ids(name), source.point_ids(name), "{name}");
        let schema = |cluster: &Cluster| {
            cluster.collection_info(name).expect("collection")["payload_schema"]
                .as_object()
                .map(|m| m.keys().cloned().collect::<Vec<_>>())
        };
        assert_eq!(schema(&target), schema(&source), "{name}");
        assert!(!schema(&target).unwrap_or_default().is_empty(), "{name}");
    }
}

/// A cluster backup over an existing single-node collection with the same shards: each shard
/// file replaces that shard, after a pre-restore copy of each; with other shards, refused.
#[test]
fn a_cluster_backup_overwrites_a_single_node_collection_with_the_same_shards() {
    let world = World::new();
    let source = Cluster::start(3, config());
    seed_discussions(&source);
    let backup = world.backup(&source.url(0), "discussions");

    let single = Double::start(config());
    // The same schema on one node (its replication settings differ: a warning only).
    let mut info = info_from_fixture("cluster/3-node-collection-info.json");
    info["config"]["params"]["replication_factor"] = json!(1);
    single.seed("discussions", info.clone(), (5001..=5010).collect());
    let run = world.run(&single.url(), &["restore", &backup, "--force"]);
    run.assert_code(0);
    assert_eq!(
        single.point_ids("discussions"),
        source.point_ids("discussions")
    );
    assert!(world.prerestore_left().is_empty(), "{run:?}");

    let other = Double::start(config());
    info["config"]["params"]["shard_number"] = json!(2);
    other.seed("discussions", info, (5001..=5010).collect());
    let run = world.run(&other.url(), &["restore", &backup, "--force"]);
    run.assert_code(2).assert_stderr_contains("shard_number");
    assert_eq!(
        other.point_ids("discussions"),
        Some((5001..=5010).collect())
    );
}
