//! Cluster backups (issue 12) that are killed while a shard snapshot is being built, and whose
//! collection changes its schema while its shards are snapshotted.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use qdrant_double::{Cluster, Fault, FaultKind, info_from_fixture};

use super::support::{Run, json_stdout, manifest, to_run};
use super::support::{World, keyed_config};

/// A three-peer cluster holding `discussions` (3 shards, 2 replicas), plus a temporary HOME,
/// backup root and install dir.
struct Env {
    cluster: Cluster,
    world: World,
}

impl Env {
    fn new() -> Env {
        let cluster = Cluster::start(3, keyed_config());
        cluster.seed(
            "discussions",
            info_from_fixture("cluster/3-node-collection-info.json"),
            3,
            2,
            (1..=600).collect(),
        );
        Env {
            cluster,
            world: World::new(),
        }
    }

    fn root(&self) -> PathBuf {
        self.world.root()
    }

    /// `aimem` pointed at peer 0 of the cluster.
    fn command(&self, args: &[&str]) -> Command {
        self.world.command(&self.cluster.url(0), args)
    }

    fn run(&self, args: &[&str]) -> Run {
        to_run(self.command(args).output().expect("run aimem"))
    }

    fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn aimem")
    }

    fn root_entries(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.root()) else {
            return Vec::new();
        };
        entries
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect()
    }

    /// Snapshot files in the snapshot folders of every peer.
    fn server_snapshot_files(&self) -> Vec<PathBuf> {
        let mut found = Vec::new();
        for i in 0..3 {
            walk(&self.cluster.peer(i).snapshots_dir(), &mut found);
        }
        found
    }

    /// Shard snapshot creations the peers were asked for.
    fn shard_creations(&self) -> usize {
        (0..3)
            .map(|i| {
                self.cluster
                    .peer(i)
                    .requests()
                    .iter()
                    .filter(|r| r.method == "POST" && is_shard_snapshots(&r.path))
                    .count()
            })
            .sum()
    }
}

fn is_shard_snapshots(path: &str) -> bool {
    path.starts_with("/collections/discussions/shards/") && path.contains("/snapshots")
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

#[test]
fn a_shard_snapshot_still_being_built_when_the_backup_is_killed_is_kept_and_reported() {
    let env = Env::new();
    // Every shard snapshot takes a while to build: the run is killed before any answer.
    for i in 0..3 {
        env.cluster.peer(i).inject(Fault::always(
            Some("POST"),
            "/collections/discussions/shards/",
            FaultKind::Delay(Duration::from_secs(2)),
        ));
    }
    let mut child = env.spawn(&["backup", "--no-stream", "--collection", "discussions"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while env.shard_creations() == 0 {
        assert!(
            Instant::now() < deadline,
            "no shard snapshot creation started"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status()
        .expect("kill");
    child.wait().expect("wait");
    // The peers finish the snapshots the dead run asked for.
    let asked = env.shard_creations();
    let deadline = Instant::now() + Duration::from_secs(30);
    while env.server_snapshot_files().len() < asked {
        assert!(
            Instant::now() < deadline,
            "the shard snapshots never appeared"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    for i in 0..3 {
        env.cluster.peer(i).clear_faults();
    }
    assert!(!env.server_snapshot_files().is_empty());

    // `list` (offline) says a shard snapshot may be left, and on which peer.
    let list = env.run(&["list"]);
    list.assert_code(0)
        .assert_stderr_contains("never came back");
    let json = json_stdout(&env.run(&["list", "--json"]));
    let leftovers = json["leftovers"].as_array().expect("leftovers listed");
    assert_eq!(leftovers.len(), 1, "{json}");
    assert!(
        leftovers[0]["unanswered"]
            .as_array()
            .is_some_and(|u| u.iter().any(|c| c == "discussions")),
        "{json}"
    );
    let peers: Vec<String> = (0..3)
        .map(|i| format!("peer {}", env.cluster.peer_id(i)))
        .collect();
    assert!(
        peers.iter().any(|p| list.stderr.contains(p.as_str())),
        "{}",
        list.stderr
    );

    // Snapshot names carry the time to the second: the next run's own snapshots must not
    // share the leftovers' names.
    std::thread::sleep(Duration::from_millis(1100));
    let left = env.server_snapshot_files();
    let run = env.run(&["backup", "--no-stream", "--collection", "discussions"]);
    // The dead run never heard those snapshots' names: they may be its own or someone else's
    // taken meanwhile, so they are kept and named, with the record.
    run.assert_code(0)
        .assert_stderr_contains("deletes only what it can prove");
    for file in &left {
        let name = file.file_name().and_then(|n| n.to_str()).expect("name");
        run.assert_stderr_contains(name);
    }
    assert_eq!(env.server_snapshot_files(), left);
    assert_eq!(env.root_entries().len(), 2, "{:?}", env.root_entries());
}

#[test]
fn a_shard_snapshot_of_another_tool_taken_meanwhile_is_not_deleted_by_the_cleanup() {
    let env = Env::new();
    for i in 0..3 {
        env.cluster.peer(i).inject(Fault::always(
            Some("POST"),
            "/collections/discussions/shards/",
            FaultKind::Delay(Duration::from_secs(2)),
        ));
    }
    let mut child = env.spawn(&["backup", "--no-stream", "--collection", "discussions"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while env.shard_creations() == 0 {
        assert!(
            Instant::now() < deadline,
            "no shard snapshot creation started"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status()
        .expect("kill");
    child.wait().expect("wait");
    let asked = env.shard_creations();
    let deadline = Instant::now() + Duration::from_secs(30);
    while env.server_snapshot_files().len() < asked {
        assert!(
            Instant::now() < deadline,
            "the shard snapshots never appeared"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    for i in 0..3 {
        env.cluster.peer(i).clear_faults();
    }
    let theirs = env.server_snapshot_files();
    // Someone else's shard snapshot, taken before the dead run asked (another tool's,
    // named before the request time): not the dead run's to delete.
    let older = theirs[0].with_file_name(
        theirs[0]
            .file_name()
            .and_then(|n| n.to_str())
            .map(|n| format!("{}2001-01-01-00-00-00.snapshot", &n[..n.len() - 28]))
            .expect("name"),
    );
    std::fs::copy(&theirs[0], &older).expect("copy");
    std::thread::sleep(Duration::from_millis(1100));
    let run = env.run(&["backup", "--no-stream", "--collection", "discussions"]);
    run.assert_code(0);
    // Nothing is deleted on a guess; the older one is not even a candidate.
    let mut all = theirs.clone();
    all.push(older.clone());
    all.sort();
    let mut now = env.server_snapshot_files();
    now.sort();
    assert_eq!(now, all);
    let older_name = older.file_name().and_then(|n| n.to_str()).expect("name");
    assert!(!run.stderr.contains(older_name), "{}", run.stderr);
}

#[test]
fn a_schema_change_during_the_shard_snapshots_takes_them_again() {
    let env = Env::new();
    env.cluster.peer(0).inject(Fault::new(
        Some("POST"),
        "/collections/discussions/shards/",
        FaultKind::AddClusterPayloadIndex {
            field: "topic".into(),
            schema: "keyword".into(),
        },
    ));
    let run = env.run(&["backup", "--no-stream", "--collection", "discussions"]);
    run.assert_code(0)
        .assert_stderr_contains("schema changed while it was snapshotted");
    // Two attempts of three shards each, and nothing of either left on a peer.
    assert_eq!(env.shard_creations(), 6);
    assert_eq!(env.server_snapshot_files(), Vec::<PathBuf>::new());
    let backup = PathBuf::from(run.stdout.trim());
    let written = manifest(&backup);
    let entry = &written["collections"]["discussions"];
    assert!(
        entry["schema"].to_string().contains("topic"),
        "the backup describes the schema its shards hold: {entry}"
    );
    env.run(&["verify", &backup.to_string_lossy()])
        .assert_code(0);
}

#[test]
fn a_schema_that_keeps_changing_fails_the_cluster_backup_after_three_attempts() {
    let env = Env::new();
    for field in ["a", "b", "c"] {
        env.cluster.peer(0).inject(Fault::new(
            Some("POST"),
            "/collections/discussions/shards/",
            FaultKind::AddClusterPayloadIndex {
                field: field.into(),
                schema: "keyword".into(),
            },
        ));
    }
    let run = env.run(&["backup", "--no-stream", "--collection", "discussions"]);
    run.assert_code(2)
        .assert_stderr_contains("changed during each of 3 snapshots");
    assert_eq!(env.shard_creations(), 9);
    assert_eq!(env.server_snapshot_files(), Vec::<PathBuf>::new());
    assert_eq!(env.root_entries(), Vec::<String>::new());
}

#[test]
fn points_written_during_the_shard_snapshots_take_them_again() {
    let env = Env::new();
    env.cluster.peer(0).inject(Fault::new(
        Some("POST"),
        "/collections/discussions/shards/",
        FaultKind::AddClusterPoint { id: 10_000 },
    ));
    let run = env.run(&["backup", "--no-stream", "--collection", "discussions"]);
    run.assert_code(0)
        .assert_stderr_contains("taking them again");
    assert_eq!(env.shard_creations(), 6);
    assert_eq!(env.server_snapshot_files(), Vec::<PathBuf>::new());
    let backup = PathBuf::from(run.stdout.trim());
    let written = manifest(&backup);
    let entry = &written["collections"]["discussions"];
    assert_eq!(entry["records"], 601, "{entry:#}");
    assert!(
        entry.get("records_max").is_none_or(|m| m.is_null()),
        "{entry:#}"
    );
}

#[test]
fn a_shard_snapshot_whose_creation_timed_out_is_kept_and_reported_by_the_next_backup() {
    let env = Env::new();
    for i in 0..3 {
        env.cluster.peer(i).inject(Fault::always(
            Some("POST"),
            "/collections/discussions/shards/",
            FaultKind::Delay(Duration::from_secs(3)),
        ));
    }
    let run = env.run(&[
        "backup",
        "--no-stream",
        "--collection",
        "discussions",
        "--create-timeout",
        "1",
    ]);
    run.assert_code(2);
    // The peers finish the snapshots aimem stopped waiting for.
    let asked = env.shard_creations();
    let deadline = Instant::now() + Duration::from_secs(30);
    while env.server_snapshot_files().len() < asked {
        assert!(
            Instant::now() < deadline,
            "the shard snapshots never appeared"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    for i in 0..3 {
        env.cluster.peer(i).clear_faults();
    }
    assert!(!env.server_snapshot_files().is_empty());
    std::thread::sleep(Duration::from_millis(1100));
    let left = env.server_snapshot_files();
    env.run(&["backup", "--no-stream", "--collection", "discussions"])
        .assert_code(0)
        .assert_stderr_contains("deletes only what it can prove");
    assert_eq!(env.server_snapshot_files(), left);
}

/// A shard snapshot a peer would not delete after a successful backup is recorded for the next
/// backup, which deletes it, as a single node's is: none stays on a peer unrecorded.
#[test]
fn a_shard_snapshot_a_peer_would_not_delete_is_deleted_by_the_next_backup() {
    let env = Env::new();
    for i in 0..3 {
        env.cluster.peer(i).inject(Fault::always(
            Some("DELETE"),
            "/collections/discussions/shards/",
            FaultKind::Status {
                code: 500,
                message: "Service internal error: busy".into(),
            },
        ));
    }
    let run = env.run(&["backup", "--no-stream", "--collection", "discussions"]);
    run.assert_code(0)
        .assert_stderr_contains("stayed on the server");
    let left = env.server_snapshot_files();
    assert!(!left.is_empty(), "{}", run.stderr);
    // Recorded with the peer's address, in a staging folder of its own.
    assert!(
        env.root_entries()
            .iter()
            .any(|e| e.starts_with(".aimem-staging-")),
        "{:?}",
        env.root_entries()
    );
    for i in 0..3 {
        env.cluster.peer(i).clear_faults();
    }
    let run = env.run(&["backup", "--no-stream", "--collection", "discussions"]);
    run.assert_code(0);
    assert!(env.server_snapshot_files().is_empty(), "{}", run.stderr);
    assert!(
        !env.root_entries()
            .iter()
            .any(|e| e.starts_with(".aimem-staging-")),
        "{:?}",
        env.root_entries()
    );
}
