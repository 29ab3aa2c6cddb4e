//! Review of the cluster restore (issue 12): the worst-day paths of overwriting an existing
//! cluster collection, against the double's multi-peer mode.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use qdrant_double::{Cluster, Config, info_from_fixture};
use tempfile::TempDir;

use super::support::{KEY, Run, to_run};

/// A temporary HOME, backup root and install dir shared by the runs of one test.
struct World {
    tmp: TempDir,
}

fn config() -> Config {
    Config {
        api_key: Some(KEY.to_string()),
        ..Config::default()
    }
}

impl World {
    fn new() -> World {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(tmp.path().join("home")).expect("home");
        std::fs::create_dir_all(tmp.path().join("install")).expect("install");
        World { tmp }
    }

    fn root(&self) -> PathBuf {
        self.tmp.path().join("backups")
    }

    /// `aimem` pointed at `url`, `tweak` applied to its command.
    fn run_with(&self, url: &str, args: &[&str], tweak: impl FnOnce(&mut Command)) -> Run {
        let mut command = Command::new(env!("CARGO_BIN_EXE_aimem"));
        command.args(args).env_clear();
        if let Some(path) = std::env::var_os("PATH") {
            command.env("PATH", path);
        }
        command
            .env("HOME", self.tmp.path().join("home"))
            .env("NO_COLOR", "1")
            .env("QDRANT_URL", url)
            .env("QDRANT_API_KEY", KEY)
            .env("AI_MEMORY_BACKUP_DIR", self.root())
            .env("AI_MEMORY_INSTALL_DIR", self.tmp.path().join("install"))
            .stdin(Stdio::null());
        tweak(&mut command);
        to_run(command.output().expect("run aimem"))
    }

    /// Backs up `collection` from `url`; the backup folder.
    fn backup(&self, url: &str, collection: &str) -> String {
        let run = self.run_with(url, &["backup", "--collection", collection], |_| {});
        run.assert_code(0);
        let folder = run.stdout.trim().to_string();
        assert!(Path::new(&folder).is_dir(), "{run:?}");
        folder
    }

    /// The pre-restore folders left in the backup root.
    fn prerestore_left(&self) -> Vec<String> {
        std::fs::read_dir(self.root())
            .expect("root")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with(".aimem-prerestore"))
            .collect()
    }
}

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
