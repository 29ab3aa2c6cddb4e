//! Review of the cluster restore (issue 12): the worst-day paths of overwriting an existing
//! cluster collection, against the double's multi-peer mode.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use qdrant_double::{Cluster, Fault, FaultKind, LateAnswer, info_from_fixture};
use serde_json::json;

use super::support::{World, keyed_config as config, to_run};

/// A three-peer cluster holding `discussions` (3 shards × replication 2) with `points`.
fn cluster_with(points: Vec<u64>) -> Cluster {
    let cluster = Cluster::start(3, config());
    cluster.seed(
        "discussions",
        info_from_fixture("cluster/3-node-collection-info.json"),
        3,
        2,
        points,
    );
    cluster
}

/// Shard id → the points of each of its replicas, with the replica's peer and state.
fn replicas(cluster: &Cluster, name: &str) -> BTreeMap<u32, Vec<(u64, String, Vec<u64>)>> {
    let placement = cluster.placement(name).expect("collection");
    placement
        .into_iter()
        .map(|(shard, holders)| {
            let points = holders
                .into_iter()
                .map(|(peer, state)| {
                    let ids = cluster
                        .replica_point_ids(name, shard, peer)
                        .expect("replica");
                    (peer, state, ids)
                })
                .collect();
            (shard, points)
        })
        .collect()
}

/// The requests that change something, over every peer.
fn writes(cluster: &Cluster) -> Vec<String> {
    (0..cluster.len())
        .flat_map(|i| cluster.peer(i).requests())
        .filter(|r| r.method != "GET" && !r.path.ends_with("/points/count"))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

#[test]
#[cfg_attr(
    not(debug_assertions),
    ignore = "uses AIMEM_TEST_FREE_SPACE, which exists only in debug builds"
)]
fn no_room_for_the_pre_restore_copy_of_a_cluster_collection_changes_nothing() {
    let world = World::new();
    let source = cluster_with((1..=600).collect());
    let backup = world.backup(&source.url(0), "discussions");
    let target = cluster_with((1001..=1010).collect());
    let before = replicas(&target, "discussions");
    for i in 0..target.len() {
        target.peer(i).clear_requests();
    }
    let run = world.run_with(&target.url(0), &["restore", &backup, "--force"], |c| {
        c.env("AIMEM_TEST_FREE_SPACE", "1000");
    });
    // The disk-space status of the guide's table.
    run.assert_code(3)
        .assert_stderr_contains("not enough free space")
        .assert_stderr_contains("nothing was changed");
    assert_eq!(writes(&target), Vec::<String>::new(), "{run:?}");
    assert_eq!(replicas(&target, "discussions"), before);
    assert_eq!(world.prerestore_left(), Vec::<String>::new(), "{run:?}");
}

/// The peer aimem uploads `shard`'s file to: among the shard's holders, the one with the
/// fewest uploads so far, then the lowest peer id, shard by shard in id order.
fn upload_peer(cluster: &Cluster, name: &str, shard: u32) -> usize {
    let mut load: BTreeMap<u64, usize> = BTreeMap::new();
    let mut chosen = None;
    for (id, holders) in cluster.placement(name).expect("collection") {
        let peer = holders
            .iter()
            .map(|(peer, _)| *peer)
            .min_by_key(|p| (load.get(p).copied().unwrap_or(0), *p))
            .expect("a holder");
        *load.entry(peer).or_default() += 1;
        if id == shard {
            chosen = Some(peer);
        }
    }
    let chosen = chosen.expect("the shard");
    (0..cluster.len())
        .find(|&i| cluster.peer_id(i) == chosen)
        .expect("a peer")
}

/// Waits (bounded) until no peer recovers anything and every replica is Active: what the
/// cluster settles to once the double's late recoveries are over.
fn settled(cluster: &Cluster, name: &str) {
    for _ in 0..200 {
        let recovering: u64 = (0..cluster.len())
            .map(|i| cluster.peer(i).recoveries_running())
            .sum();
        let active = cluster
            .placement(name)
            .expect("collection")
            .values()
            .all(|holders| holders.iter().all(|(_, state)| state == "Active"));
        if recovering == 0 && active {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the cluster did not settle");
}

#[test]
fn a_lost_shard_upload_is_waited_for_before_the_rollback_puts_the_shard_back() {
    let world = World::new();
    let source = cluster_with((1..=600).collect());
    let backup = world.backup(&source.url(0), "discussions");
    let target = cluster_with((1001..=1010).collect());
    let before = replicas(&target, "discussions");
    // Shard 1's upload loses its connection once the file is in, while that peer goes on
    // recovering the shard from it; shard 2's upload then fails for good, so aimem rolls back.
    let peer = upload_peer(&target, "discussions", 1);
    target.peer(peer).inject(Fault::new(
        Some("POST"),
        "/shards/1/snapshots/upload",
        FaultKind::SlowRecovery {
            takes: Duration::from_millis(1500),
            answer: LateAnswer::Drop,
        },
    ));
    let run = world.run_with(&target.url(0), &["restore", &backup, "--force"], |_| {});
    run.assert_code(4)
        .assert_stderr_contains("shard 1")
        .assert_stderr_contains("recovered shard by shard from its pre-restore copy");
    settled(&target, "discussions");
    assert_eq!(replicas(&target, "discussions"), before, "{run:?}");
    assert_eq!(
        target.point_ids("discussions"),
        Some((1001..=1010).collect())
    );
}

#[test]
fn ctrl_c_during_the_shard_uploads_rolls_an_existing_collection_back() {
    let world = World::new();
    let source = cluster_with((1..=600).collect());
    let backup = world.backup(&source.url(0), "discussions");
    let target = cluster_with((1001..=1010).collect());
    let before = replicas(&target, "discussions");
    let peer = upload_peer(&target, "discussions", 1);
    target.peer(peer).inject(Fault::new(
        Some("POST"),
        "/shards/1/snapshots/upload",
        FaultKind::SlowRecovery {
            takes: Duration::from_millis(1500),
            answer: LateAnswer::Wait,
        },
    ));
    let child = world
        .command(&target.url(0), &["restore", &backup, "--force"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn aimem");
    let recovering = || target.peer(peer).recoveries_running() > 0;
    for _ in 0..500 {
        if recovering() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(recovering(), "the shard upload never started recovering");
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let run = to_run(child.wait_with_output().expect("wait"));
    run.assert_code(130)
        .assert_stderr_contains("recovered shard by shard from its pre-restore copy");
    settled(&target, "discussions");
    assert_eq!(replicas(&target, "discussions"), before, "{run:?}");
    assert_eq!(world.prerestore_left(), Vec::<String>::new(), "{run:?}");
}

#[test]
fn a_dry_run_of_a_cluster_backup_changes_nothing_on_any_peer() {
    let world = World::new();
    let source = cluster_with((1..=600).collect());
    let backup = world.backup(&source.url(0), "discussions");
    let target = cluster_with((1001..=1010).collect());
    let before = replicas(&target, "discussions");
    for i in 0..target.len() {
        target.peer(i).clear_requests();
    }
    let run = world.run_with(
        &target.url(0),
        &["restore", &backup, "--force", "--dry-run"],
        |_| {},
    );
    run.assert_code(0);
    assert_eq!(writes(&target), Vec::<String>::new(), "{run:?}");
    assert_eq!(replicas(&target, "discussions"), before);
    assert_eq!(world.prerestore_left(), Vec::<String>::new(), "{run:?}");
    // Into an empty cluster: nothing is created either.
    let empty = Cluster::start(3, config());
    let run = world.run_with(&empty.url(0), &["restore", &backup, "--dry-run"], |_| {});
    run.assert_code(0);
    assert_eq!(writes(&empty), Vec::<String>::new(), "{run:?}");
    assert!(empty.collection_names().is_empty());
}

#[test]
fn shard_keys_created_with_their_own_shard_numbers_round_trip() {
    let world = World::new();
    let source = Cluster::start(3, config());
    // Key "small" was created with one shard and one replica, key 7 with three shards
    // (`shards_number`) of two replicas, the collection's defaults being two and two.
    source.seed_custom_per_key(
        "tenants",
        info_from_fixture("cluster/3-node-collection-info.json"),
        2,
        2,
        &[
            (json!("small"), 1, 1, (1..=40).collect()),
            (json!(7), 3, 2, (100..=160).collect()),
        ],
    );
    let backup = world.backup(&source.url(0), "tenants");
    let target = Cluster::start(3, config());
    let run = world.run_with(&target.url(0), &["restore", &backup, "--force"], |_| {});
    run.assert_code(0);
    assert_eq!(target.point_ids("tenants"), source.point_ids("tenants"));
    assert_eq!(target.shard_keys("tenants"), source.shard_keys("tenants"));
    // Each key keeps its own replication factor: as many replicas per shard as before.
    let replicas = |cluster: &Cluster| -> Vec<usize> {
        let placement = cluster.placement("tenants").expect("collection");
        placement.values().map(|r| r.len()).collect()
    };
    assert_eq!(replicas(&target), replicas(&source));
}

#[test]
fn a_lost_shard_upload_on_a_peer_without_metrics_is_not_rolled_back_blindly() {
    let world = World::new();
    let source = cluster_with((1..=600).collect());
    let backup = world.backup(&source.url(0), "discussions");
    let target = cluster_with((1001..=1010).collect());
    let peer = upload_peer(&target, "discussions", 1);
    target.peer(peer).inject(Fault::always(
        Some("GET"),
        "/metrics",
        FaultKind::PlainStatus {
            code: 404,
            body: "Not Found".into(),
        },
    ));
    target.peer(peer).inject(Fault::new(
        Some("POST"),
        "/shards/1/snapshots/upload",
        FaultKind::SlowRecovery {
            takes: Duration::from_millis(300),
            answer: LateAnswer::Drop,
        },
    ));
    let run = world.run_with(&target.url(0), &["restore", &backup, "--force"], |_| {});
    // Not rolled back: the pre-restore copy is kept, and the run says why.
    run.assert_code(5)
        .assert_stderr_contains("may still be recovering shard 1");
    assert_eq!(world.prerestore_left().len(), 1, "{run:?}");
}

#[test]
fn a_passing_failure_to_read_the_placement_does_not_fail_the_restore() {
    let world = World::new();
    let source = cluster_with((1..=600).collect());
    let backup = world.backup(&source.url(0), "discussions");
    let target = Cluster::start(3, config());
    // A peer busy for a moment: its placement answers 503 twice, then as usual.
    target.peer(1).inject(Fault {
        method: Some("GET".into()),
        path_contains: "/collections/discussions/cluster".into(),
        kind: FaultKind::Status {
            code: 503,
            message: "Service unavailable: busy".into(),
        },
        times: 2,
    });
    let run = world.run_with(&target.url(0), &["restore", &backup, "--force"], |_| {});
    run.assert_code(0);
    assert_eq!(
        target.point_ids("discussions"),
        source.point_ids("discussions")
    );
}
