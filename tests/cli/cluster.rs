//! Backups of a distributed Qdrant (issue 12), against the double's multi-peer mode.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use qdrant_double::{Cluster, Config, info_from_fixture};
use serde_json::{Value, json};

use super::support::{KEY, Run, manifest, sha256_hex, sha256sum_check, to_run};
use super::support::{World, keyed_config};

/// A cluster of doubles plus a temporary HOME, backup root and install dir.
struct ClusterEnv {
    cluster: Cluster,
    world: World,
}

impl ClusterEnv {
    fn new(peers: usize) -> ClusterEnv {
        let cluster = Cluster::start(peers, keyed_config());
        ClusterEnv {
            cluster,
            world: World::new(),
        }
    }

    fn root(&self) -> PathBuf {
        self.world.root()
    }

    /// `aimem` pointed at peer 0 of the cluster.
    fn run_with(&self, args: &[&str], tweak: impl FnOnce(&mut Command)) -> Run {
        self.world.run_with(&self.cluster.url(0), args, tweak)
    }

    fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, |_| {})
    }

    /// Every entry of the backup root (staging folders included).
    fn root_entries(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.root()) else {
            return Vec::new();
        };
        entries
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect()
    }

    /// Snapshot files left in the snapshot folders of the running peers.
    fn server_snapshot_files(&self, running: &[usize]) -> Vec<PathBuf> {
        let mut found = Vec::new();
        for &i in running {
            walk(&self.cluster.peer(i).snapshots_dir(), &mut found);
        }
        found
    }
}

fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, found);
        } else if path.extension().is_some_and(|e| e == "snapshot") {
            found.push(path);
        }
    }
}

fn seed_discussions(env: &ClusterEnv) {
    env.cluster.seed(
        "discussions",
        info_from_fixture("cluster/3-node-collection-info.json"),
        3,
        2,
        (1..=600).collect(),
    );
}

/// The points a shard file holds: the double's shard snapshots list them in one tar entry.
fn shard_file_points(path: &Path) -> BTreeSet<u64> {
    let file = std::fs::File::open(path).expect("shard file");
    let mut archive = tar::Archive::new(file);
    for entry in archive.entries().expect("a tar") {
        let mut entry = entry.expect("entry");
        if entry.path().expect("path").to_string_lossy() == "segments/double-points.json" {
            let listed: Value = serde_json::from_reader(&mut entry).expect("points JSON");
            return listed["ids"]
                .as_array()
                .expect("ids")
                .iter()
                .map(|id| id.as_u64().expect("id"))
                .collect();
        }
    }
    panic!("{} lists no points", path.display());
}

#[test]
fn a_three_peer_collection_is_backed_up_shard_by_shard() {
    let env = ClusterEnv::new(3);
    seed_discussions(&env);
    let run = env.run(&["backup", "--no-stream", "--collection", "discussions"]);
    run.assert_code(0);
    // The user sees every address the run talks to.
    run.assert_stderr_contains("Cluster: 3 peers: ");
    for i in 0..3 {
        run.assert_stderr_contains(&env.cluster.url(i));
    }
    let backup = PathBuf::from(run.stdout.trim());

    let m = manifest(&backup);
    let entry = &m["collections"]["discussions"];
    assert_eq!(entry["records"], 600, "{entry:#}");
    assert!(entry.get("snapshot_file").is_none(), "{entry:#}");
    let cluster = &entry["cluster"];
    assert_eq!(cluster["shard_number"], 3);
    assert_eq!(cluster["replication_factor"], 2);
    assert_eq!(cluster["write_consistency_factor"], 1);
    assert_eq!(cluster["sharding_method"], "auto");
    assert_eq!(cluster["shard_keys"], json!([]));
    let shards = cluster["shards"].as_array().expect("shards");
    assert_eq!(shards.len(), 3);

    let placement = env.cluster.placement("discussions").expect("placement");
    let mut all_points = BTreeSet::new();
    let mut size = 0;
    for (i, shard) in shards.iter().enumerate() {
        let id = i as u32;
        assert_eq!(shard["shard_id"], id);
        let file = format!("qdrant/discussions/shard-{id}.snapshot");
        assert_eq!(shard["file"], file.as_str());
        let path = backup.join(&file);
        assert_eq!(shard["sha256"], sha256_hex(&path).as_str());
        assert_eq!(shard["size_bytes"], std::fs::metadata(&path).unwrap().len());
        size += std::fs::metadata(&path).unwrap().len();
        let points = shard_file_points(&path);
        let expected: BTreeSet<u64> = (1..=600).filter(|p| p % 3 == u64::from(id)).collect();
        assert_eq!(points, expected, "shard {id} holds its points");
        assert_eq!(shard["records"], expected.len() as u64);
        all_points.extend(points);
        let replicas: Vec<(u64, String)> = shard["replicas"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["peer_id"].as_u64().unwrap(),
                    r["state"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(replicas, placement[&id]);
        let source = shard["source_peer"].as_u64().unwrap();
        assert!(placement[&id].iter().any(|(p, _)| *p == source));
    }
    assert_eq!(entry["size_bytes"], size);
    assert_eq!(all_points, (1..=600).collect());

    // Each shard once, spread over the peers: one shard snapshot creation on each.
    let creations: Vec<usize> = (0..3)
        .map(|i| {
            env.cluster
                .peer(i)
                .requests()
                .iter()
                .filter(|r| r.method == "POST" && r.path.contains("/shards/"))
                .filter(|r| r.path.ends_with("/snapshots"))
                .count()
        })
        .collect();
    assert_eq!(creations, [1, 1, 1]);

    let peers = m["cluster"]["peers"].as_array().expect("peers");
    assert_eq!(peers.len(), 3);
    for i in 0..3 {
        let peer = peers
            .iter()
            .find(|p| p["peer_id"] == env.cluster.peer_id(i))
            .unwrap_or_else(|| panic!("peer {i} recorded: {peers:?}"));
        assert_eq!(peer["url"], env.cluster.url(i).as_str());
        let p2p_host = format!("http://127.0.0.{}:", i + 1);
        assert!(peer["uri"].as_str().unwrap().starts_with(&p2p_host));
    }
    let checksums = std::fs::read_to_string(backup.join("CHECKSUMS.sha256")).unwrap();
    for id in 0..3 {
        let line = format!("  qdrant/discussions/shard-{id}.snapshot\n");
        assert_eq!(checksums.matches(&line).count(), 1, "{checksums}");
    }
    sha256sum_check(&backup).assert_code(0);
    assert_eq!(env.server_snapshot_files(&[0, 1, 2]), Vec::<PathBuf>::new());
}

#[test]
fn a_peer_that_is_down_is_named_and_nothing_is_written() {
    let mut env = ClusterEnv::new(3);
    seed_discussions(&env);
    let down = env.cluster.peer_id(2);
    env.cluster.stop_peer(2);
    let run = env.run(&["backup", "--collection", "discussions"]);
    run.assert_code(1);
    run.assert_stderr_contains(&down.to_string());
    run.assert_stderr_contains(&env.cluster.url(2));
    assert_eq!(env.root_entries(), Vec::<String>::new());
    assert_eq!(env.server_snapshot_files(&[0, 1]), Vec::<PathBuf>::new());
}

#[test]
fn a_shard_without_an_active_replica_is_refused() {
    let env = ClusterEnv::new(3);
    seed_discussions(&env);
    let placement = env.cluster.placement("discussions").expect("placement");
    for (peer, _) in &placement[&1] {
        env.cluster
            .set_replica_state("discussions", 1, *peer, "Dead");
    }
    let run = env.run(&["backup", "--collection", "discussions"]);
    run.assert_code(2);
    run.assert_stderr_contains("shard 1");
    run.assert_stderr_contains("Dead");
    assert_eq!(env.root_entries(), Vec::<String>::new());
    assert_eq!(env.server_snapshot_files(&[0, 1, 2]), Vec::<PathBuf>::new());
}

#[test]
fn a_wrong_peer_url_is_refused_by_name() {
    let env = ClusterEnv::new(3);
    seed_discussions(&env);
    // Peer 1's address given twice, peer 2's not at all.
    let peers = format!(
        "{},{},{}",
        env.cluster.url(0),
        env.cluster.url(1),
        env.cluster.url(1)
    );
    let run = env.run_with(&["backup", "--collection", "discussions"], |c| {
        c.env("QDRANT_PEERS", &peers);
    });
    run.assert_code(1);
    run.assert_stderr_contains(&env.cluster.url(1));
    run.assert_stderr_contains(&env.cluster.peer_id(1).to_string());
    assert_eq!(env.root_entries(), Vec::<String>::new());

    // A single node given as a peer.
    let single = qdrant_double::Double::start(Config {
        api_key: Some(KEY.to_string()),
        ..Config::default()
    });
    let run = env.run(&[
        "backup",
        "--collection",
        "discussions",
        "--peer",
        &env.cluster.url(0),
        "--peer",
        &single.url(),
        "--peer",
        &env.cluster.url(2),
    ]);
    run.assert_code(1);
    run.assert_stderr_contains(&single.url());
    assert_eq!(env.root_entries(), Vec::<String>::new());

    // All three, in any order: fine.
    let peers = format!(
        "{},{},{}",
        env.cluster.url(2),
        env.cluster.url(0),
        env.cluster.url(1)
    );
    let run = env.run_with(&["backup", "--collection", "discussions"], |c| {
        c.env("QDRANT_PEERS", &peers);
    });
    run.assert_code(0);
}

#[test]
fn custom_sharding_records_the_keys_in_creation_order() {
    let env = ClusterEnv::new(3);
    env.cluster.seed_custom(
        "tenants",
        info_from_fixture("collections/info-custom-sharding.json"),
        2,
        2,
        &[
            (json!("zulu"), (1..=40).collect()),
            (json!(7), (41..=50).collect()),
        ],
    );
    let run = env.run(&["backup", "--collection", "tenants"]);
    run.assert_code(0);
    let backup = PathBuf::from(run.stdout.trim());
    let m = manifest(&backup);
    let entry = &m["collections"]["tenants"];
    assert_eq!(entry["records"], 50);
    let cluster = &entry["cluster"];
    assert_eq!(cluster["sharding_method"], "custom");
    assert_eq!(cluster["shard_keys"], json!(["zulu", 7]));
    // Each key's exact count, in key order: what a restore checks per key.
    assert_eq!(cluster["key_records"], json!([40, 10]));
    let keys: Vec<Value> = cluster["shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["shard_key"].clone())
        .collect();
    let by_id = env.cluster.shard_keys("tenants").expect("keys");
    let expected: Vec<Value> = by_id.values().map(|k| k.clone().unwrap()).collect();
    assert_eq!(keys, expected);
    let mut points = BTreeSet::new();
    for shard in cluster["shards"].as_array().unwrap() {
        points.extend(shard_file_points(
            &backup.join(shard["file"].as_str().unwrap()),
        ));
    }
    assert_eq!(points, (1..=50).collect());
    sha256sum_check(&backup).assert_code(0);
}

#[test]
fn verify_checks_a_cluster_backups_shard_files() {
    let env = ClusterEnv::new(3);
    seed_discussions(&env);
    let run = env.run(&["backup", "--collection", "discussions"]);
    run.assert_code(0);
    let backup = run.stdout.trim().to_string();
    env.run(&["verify", &backup]).assert_code(0);
    // A changed shard file is caught.
    let shard = Path::new(&backup).join("qdrant/discussions/shard-1.snapshot");
    let mut bytes = std::fs::read(&shard).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&shard, bytes).unwrap();
    let verified = env.run(&["verify", &backup]);
    verified.assert_code(2);
    assert!(
        verified
            .stdout
            .contains("qdrant/discussions/shard-1.snapshot"),
        "{verified:?}"
    );
}

#[test]
fn shard_snapshots_of_a_killed_backup_are_deleted_on_their_peers_by_the_next_backup() {
    use qdrant_double::{Fault, FaultKind};
    use std::time::{Duration, Instant};

    let env = ClusterEnv::new(3);
    seed_discussions(&env);
    let stall = || {
        Fault::always(
            Some("GET"),
            "/snapshots/discussions-shard-",
            FaultKind::StallBody {
                after_bytes: 100,
                stall: Duration::from_secs(60),
            },
        )
    };
    for i in 0..3 {
        env.cluster.peer(i).inject(stall());
    }
    let mut command = env.world.command(
        &env.cluster.url(0),
        &["backup", "--no-stream", "--collection", "discussions"],
    );
    command.stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = command.spawn().expect("spawn aimem");
    let deadline = Instant::now() + Duration::from_secs(30);
    // Every shard's download under way: every creation was answered, so every name is recorded
    // (a creation never answered is only reported by the next run, never deleted).
    let downloading = || {
        (0..3)
            .map(|i| {
                env.cluster
                    .peer(i)
                    .requests()
                    .iter()
                    .filter(|r| {
                        r.method == "GET" && r.path.contains("/snapshots/discussions-shard-")
                    })
                    .count()
            })
            .sum::<usize>()
            >= 3
    };
    while !downloading() {
        assert!(
            Instant::now() < deadline,
            "the shard downloads did not all start"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status()
        .expect("kill");
    child.wait().expect("wait");
    for i in 0..3 {
        env.cluster.peer(i).clear_faults();
    }
    assert!(
        !env.server_snapshot_files(&[0, 1, 2]).is_empty(),
        "the killed run left shard snapshots"
    );

    // Snapshot names carry the time to the second: the next run's own snapshots must not
    // share (and so overwrite) the leftovers' names.
    std::thread::sleep(Duration::from_millis(1100));
    let run = env.run(&["backup", "--no-stream", "--collection", "discussions"]);
    run.assert_code(0);
    assert_eq!(env.server_snapshot_files(&[0, 1, 2]), Vec::<PathBuf>::new());
    assert_eq!(env.root_entries().len(), 1, "{:?}", env.root_entries());
}

#[test]
fn other_commands_read_a_cluster_backup_and_restore_puts_it_back() {
    let env = ClusterEnv::new(3);
    seed_discussions(&env);
    let run = env.run(&["backup", "--collection", "discussions"]);
    run.assert_code(0);
    let backup = run.stdout.trim().to_string();
    env.run(&["list", "--verify"]).assert_code(0);
    env.run(&["diff-schema", &backup]).assert_code(0);
    let points = env.cluster.point_ids("discussions");
    env.run(&["restore", &backup, "--force"]).assert_code(0);
    assert_eq!(env.cluster.point_ids("discussions"), points);
}

#[test]
fn ctrl_c_during_shard_downloads_cleans_up_every_peer_at_once() {
    use qdrant_double::{Fault, FaultKind};
    use std::time::{Duration, Instant};

    let env = ClusterEnv::new(3);
    seed_discussions(&env);
    for i in 0..3 {
        env.cluster.peer(i).inject(Fault::always(
            Some("GET"),
            "/snapshots/discussions-shard-",
            FaultKind::StallBody {
                after_bytes: 100,
                stall: Duration::from_secs(600),
            },
        ));
    }
    let mut command = env.world.command(
        &env.cluster.url(0),
        &["backup", "--no-stream", "--collection", "discussions"],
    );
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().expect("spawn aimem");
    let downloads = || {
        (0..3)
            .map(|i| {
                env.cluster
                    .peer(i)
                    .requests()
                    .iter()
                    .filter(|r| {
                        r.method == "GET" && r.path.contains("/snapshots/discussions-shard-")
                    })
                    .count()
            })
            .sum::<usize>()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    // A download on every peer at once is under way (and stalled): the three shards are
    // spread over the three peers, which work in parallel.
    while downloads() < 3 {
        assert!(
            Instant::now() < deadline,
            "the shard downloads did not start"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    // Generous, but far below the 600 s stall: aimem must not wait for the transfers.
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            child.kill().ok();
            panic!("aimem kept waiting for the stalled transfers after Ctrl-C");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let run = to_run(child.wait_with_output().expect("output"));
    run.assert_code(130);
    assert_eq!(env.root_entries(), Vec::<String>::new());
    assert_eq!(env.server_snapshot_files(&[0, 1, 2]), Vec::<PathBuf>::new());
}
