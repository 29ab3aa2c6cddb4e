//! Every replica of a restored cluster collection (issue 16): a real cluster recovers a shard
//! on one replica and, with `priority=snapshot`, refills only the replicas that are Active at
//! that moment (and a moment after the upload answered); one still `Initializing` comes up
//! Active and empty. The double does the same, so these tests fail on a restore that leaves
//! replicas to that synchronisation or trusts one read of the count; and they check that a
//! replica going wrong during the uploads, after the checks, or in a rollback is caught.

use std::collections::BTreeMap;
use std::time::Duration;

use qdrant_double::{Cluster, Config, Fault, FaultKind, info_from_fixture};
use serde_json::json;

use super::support::{KEY, World, keyed_config as config};

/// As on a real cluster right after a collection or a shard key is created: the replicas
/// stay `Initializing` for a while.
fn slowly_initializing() -> Config {
    Config {
        replica_init_delay: Duration::from_millis(1500),
        ..config()
    }
}

/// Auto sharding, 3 shards × replication 2, 900 points (the first scenario).
fn seed_auto(cluster: &Cluster) {
    cluster.seed(
        "github",
        info_from_fixture("cluster/3-node-collection-info.json"),
        3,
        2,
        (1..=900).collect(),
    );
}

/// Custom sharding: keys `alpha` (200 points) and `beta` (300), replication 2 (the second).
/// A backup of [`seed_auto`]'s collection, and its source cluster.
fn auto_backup(world: &World) -> (Cluster, String) {
    let source = Cluster::start(3, config());
    seed_auto(&source);
    let backup = world.backup(&source.url(0), "github");
    (source, backup)
}

fn seed_custom(cluster: &Cluster) {
    cluster.seed_custom(
        "github",
        info_from_fixture("cluster/3-node-collection-info.json"),
        1,
        2,
        &[
            (json!("alpha"), (1..=200).collect()),
            (json!("beta"), (1001..=1300).collect()),
        ],
    );
}

/// Shard id → (peer id → that replica's points).
fn replicas(cluster: &Cluster, name: &str) -> BTreeMap<u32, BTreeMap<u64, Vec<u64>>> {
    cluster
        .placement(name)
        .expect("collection")
        .into_iter()
        .map(|(shard, holders)| {
            let points = holders
                .iter()
                .map(|(peer, _)| {
                    let points = cluster
                        .replica_point_ids(name, shard, *peer)
                        .expect("replica");
                    (*peer, points)
                })
                .collect();
            (shard, points)
        })
        .collect()
}

/// Every replica of every shard of `target` holds exactly what `source`'s replicas of that
/// shard hold, and is Active.
fn assert_every_replica_restored(source: &Cluster, target: &Cluster, name: &str) {
    let expected: BTreeMap<u32, Vec<u64>> = replicas(source, name)
        .into_iter()
        .map(|(shard, by_peer)| (shard, by_peer.into_values().next().expect("a replica")))
        .collect();
    let restored = replicas(target, name);
    assert_eq!(
        restored.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    for (shard, by_peer) in restored {
        assert_eq!(by_peer.len(), 2, "shard {shard}: {by_peer:?}");
        for (peer, points) in by_peer {
            assert_eq!(points, expected[&shard], "shard {shard} on peer {peer}");
        }
    }
    for (shard, holders) in target.placement(name).expect("collection") {
        for (peer, state) in holders {
            assert_eq!(state, "Active", "shard {shard} on peer {peer}");
        }
    }
}

/// The peer index holding a replica of `shard` (the lowest peer id).
fn holder(cluster: &Cluster, name: &str, shard: u32) -> usize {
    let peer = cluster.placement(name).expect("collection")[&shard][0].0;
    (0..cluster.len())
        .find(|&i| cluster.peer_id(i) == peer)
        .expect("a peer")
}

#[test]
fn every_replica_of_an_auto_sharded_collection_is_restored_while_replicas_initialize_slowly() {
    let world = World::new();
    let (source, backup) = auto_backup(&world);
    let target = Cluster::start(3, slowly_initializing());
    let run = world.run(&target.url(0), &["restore", &backup, "--force"]);
    run.assert_code(0);
    assert_every_replica_restored(&source, &target, "github");
}

#[test]
fn every_replica_of_each_shard_key_is_restored_while_replicas_initialize_slowly() {
    let world = World::new();
    let source = Cluster::start(3, config());
    seed_custom(&source);
    let backup = world.backup(&source.url(0), "github");
    let target = Cluster::start(3, slowly_initializing());
    let run = world.run(&target.url(1), &["restore", &backup, "--force"]);
    run.assert_code(0);
    assert_every_replica_restored(&source, &target, "github");
    assert_eq!(
        target.shard_key_order("github"),
        Some(vec![json!("alpha"), json!("beta")])
    );
}

#[test]
fn a_replica_left_empty_after_its_recovery_fails_the_restore_of_a_fresh_collection() {
    let world = World::new();
    let (_source, backup) = auto_backup(&world);
    let target = Cluster::start(3, config());
    // The first shard upload peer 0 gets is answered, and its replica then loses its points
    // (while the shard's other replica keeps them).
    target.peer(0).inject(Fault::new(
        Some("POST"),
        "/shards/",
        FaultKind::LateReplicaReset {
            after: Duration::ZERO,
        },
    ));
    let run = world.run(&target.url(0), &["restore", &backup, "--force"]);
    run.assert_code(4);
    // Seen leaving Active while the other uploads ran, or by the checks after them.
    assert!(
        run.stderr.contains("turned Initializing") || run.stderr.contains("replicas of shard"),
        "{run:?}"
    );
    assert!(
        target.collection_names().is_empty(),
        "the collection this restore created is deleted: {run:?}"
    );
}

#[test]
fn a_replica_emptied_after_the_first_checks_is_caught_once_the_cluster_is_quiet() {
    let world = World::new();
    let (_source, backup) = auto_backup(&world);
    let target = Cluster::start(3, config());
    // The first checks count twice through the peer aimem was given (a read, then every
    // replica); right after the second count, a replica of that peer loses its points.
    target.peer(0).inject(Fault::new(
        Some("POST"),
        "/points/count",
        FaultKind::Delay(Duration::ZERO),
    ));
    target.peer(0).inject(Fault::new(
        Some("POST"),
        "/points/count",
        FaultKind::ResetLocalReplicaAfterAnswer,
    ));
    let run = world.run(&target.url(0), &["-v", "restore", &backup, "--force"]);
    run.assert_code(4)
        .assert_stderr_contains("replicas changed after the checks")
        .assert_stderr_contains("replicas of shard");
    assert!(target.collection_names().is_empty(), "{run:?}");
}

/// A target whose `github` exists with other points, sharded as the backup.
fn existing_target() -> Cluster {
    existing_target_with(config(), 2)
}

fn existing_target_with(config: Config, replication: u32) -> Cluster {
    let target = Cluster::start(3, config);
    target.seed(
        "github",
        info_from_fixture("cluster/3-node-collection-info.json"),
        3,
        replication,
        (5001..=5030).collect(),
    );
    target
}

/// A restore over `target`'s `github` whose upload of shard 1 to one holder clears that
/// replica and fails, leaving it Dead: the rollback must put every replica back, without
/// waiting for a transfer that never comes.
fn rollback_over_a_dead_replica(target: &Cluster) {
    let world = World::new();
    let (_source, backup) = auto_backup(&world);
    let before = replicas(target, "github");
    let peer = holder(target, "github", 1);
    target.peer(peer).inject(Fault::new(
        Some("POST"),
        "/shards/1/snapshots/upload",
        FaultKind::UploadFailAfterClear,
    ));
    let run = world.run(&target.url(0), &["restore", &backup, "--force"]);
    run.assert_code(4)
        .assert_stderr_contains("is Dead and nothing refills it")
        .assert_stderr_contains("recovered shard by shard from its pre-restore copy");
    assert_eq!(replicas(target, "github"), before, "{run:?}");
    assert!(
        target
            .placement("github")
            .expect("collection")
            .values()
            .flatten()
            .all(|(_, state)| state == "Active"),
        "{run:?}"
    );
}

#[test]
fn a_replica_left_dead_with_no_other_replica_is_recovered_by_the_rollback_at_once() {
    rollback_over_a_dead_replica(&existing_target_with(config(), 1));
}

#[test]
fn a_replica_left_dead_that_no_transfer_refills_is_recovered_by_the_rollback() {
    rollback_over_a_dead_replica(&existing_target_with(
        Config {
            refill_dead_replicas: false,
            ..config()
        },
        2,
    ));
}

#[test]
fn a_restore_over_an_existing_cluster_collection_recovers_every_replica() {
    let world = World::new();
    let (source, backup) = auto_backup(&world);
    let target = existing_target();
    let run = world.run(&target.url(0), &["restore", &backup, "--force"]);
    run.assert_code(0);
    assert_every_replica_restored(&source, &target, "github");
}

#[test]
fn a_replica_left_empty_over_an_existing_collection_is_rolled_back_replica_by_replica() {
    let world = World::new();
    let (_source, backup) = auto_backup(&world);
    let target = existing_target();
    let before = replicas(&target, "github");
    let peer = holder(&target, "github", 1);
    target.peer(peer).inject(Fault::new(
        Some("POST"),
        "/shards/1/snapshots/upload",
        FaultKind::LateReplicaReset {
            after: Duration::ZERO,
        },
    ));
    let run = world.run(&target.url(0), &["restore", &backup, "--force"]);
    run.assert_code(4)
        .assert_stderr_contains("shard 1")
        .assert_stderr_contains("recovered shard by shard from its pre-restore copy");
    assert_eq!(replicas(&target, "github"), before, "{run:?}");
    assert_eq!(world.prerestore_left(), Vec::<String>::new(), "{run:?}");
}

#[test]
fn a_rollback_that_leaves_a_replica_wrong_says_so_and_keeps_the_pre_restore_copy() {
    let world = World::new();
    let (_source, backup) = auto_backup(&world);
    let target = existing_target();
    let before = replicas(&target, "github");
    let peer = holder(&target, "github", 1);
    // The restore's upload of shard 1 there fails; the rollback's is answered and then lost.
    target.peer(peer).inject(Fault::new(
        Some("POST"),
        "/shards/1/snapshots/upload",
        FaultKind::Status {
            code: 500,
            message: "Service internal error: disk broke".into(),
        },
    ));
    target.peer(peer).inject(Fault::new(
        Some("POST"),
        "/shards/1/snapshots/upload",
        FaultKind::LateReplicaReset {
            after: Duration::ZERO,
        },
    ));
    let run = world.run(&target.url(0), &["restore", &backup, "--force"]);
    run.assert_code(5)
        .assert_stderr_contains("its rollback failed")
        .assert_stderr_contains("shard 1 on peer");
    assert_eq!(world.prerestore_left().len(), 1, "{run:?}");

    // The commands printed to put it back by hand: each shard's copy onto every peer holding
    // a replica of it. Pasted as they are, they bring every replica back.
    let commands: Vec<&str> = run
        .stderr
        .lines()
        .filter_map(|line| line.find("curl ").map(|at| &line[at..]))
        .collect();
    assert_eq!(commands.len(), 6, "3 shards × 2 replicas: {}", run.stderr);
    for command in &commands {
        assert!(command.contains("priority=no_sync"), "{command}");
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(command)
            .env("QDRANT_API_KEY", KEY)
            .stdout(std::process::Stdio::null())
            .status()
            .expect("sh");
        assert!(status.success(), "{command}");
    }
    assert_eq!(replicas(&target, "github"), before);
}

/// Qdrant 1.16's API document lacks `GET /collections/{c}/shards`: a server that does not
/// answer it still backs up its keys (from the placement) and restores them in order.
#[test]
fn a_server_without_the_shard_key_list_still_backs_up_and_restores_its_keys() {
    let world = World::new();
    let source = Cluster::start(3, config());
    seed_custom(&source);
    // The key list is the first GET under that path (the shard snapshots come after it).
    source.peer(0).inject(Fault::new(
        Some("GET"),
        "/collections/github/shards",
        FaultKind::PlainStatus {
            code: 404,
            body: String::new(),
        },
    ));
    let run = world.run(&source.url(0), &["backup", "--collection", "github"]);
    run.assert_code(0);
    assert!(
        source
            .peer(0)
            .requests()
            .iter()
            .any(|r| r.method == "GET" && r.path == "/collections/github/shards"),
        "the key list was asked for"
    );
    let backup = run.stdout.trim().to_string();
    let manifest = super::support::manifest(std::path::Path::new(&backup));
    assert_eq!(
        manifest["collections"]["github"]["cluster"]["shard_keys"],
        json!(["alpha", "beta"])
    );
    let target = Cluster::start(3, config());
    world
        .run(&target.url(0), &["restore", &backup, "--force"])
        .assert_code(0);
    assert_every_replica_restored(&source, &target, "github");
}

/// The pre-restore copy takes each shard from one replica and a rollback would put it on all:
/// over a collection whose replicas hold different data (as an earlier restore that lost a
/// replica leaves it), nothing is touched.
#[test]
fn an_existing_collection_whose_replicas_differ_is_refused_before_anything_changes() {
    let world = World::new();
    let (_source, backup) = auto_backup(&world);
    let target = existing_target();
    let empty_peer = target.placement("github").expect("collection")[&1][1].0;
    target.set_replica_points("github", 1, empty_peer, Vec::new());
    let before = replicas(&target, "github");
    let run = world.run(&target.url(0), &["restore", &backup, "--force"]);
    run.assert_code(2)
        .assert_stderr_contains("do not hold the same data")
        .assert_stderr_contains(&format!("0 on peer {empty_peer}"))
        .assert_stderr_contains("--target-name");
    assert_eq!(replicas(&target, "github"), before);
    assert_eq!(world.prerestore_left(), Vec::<String>::new(), "{run:?}");
}
