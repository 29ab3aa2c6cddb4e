//! Streamed shard snapshots (the default where the server offers them): nothing is stored on
//! the server, each shard's archive is hashed into the backup as it arrives, and the backup
//! restores shard by shard. Servers without the endpoint get stored snapshots.

use std::time::{Duration, Instant};

use qdrant_double::{AI_MEMORY_COLLECTIONS, Cluster, Config, Double, Fault, FaultKind};
use serde_json::Value;

use super::support::{
    KEY, TestEnv, World, json_stdout, keyed_config, manifest, sha256sum_check, wait_for_request,
};

/// Requests that make something on the server: snapshot creations and deletions.
fn snapshot_work(double: &Double) -> Vec<String> {
    double
        .requests()
        .into_iter()
        .filter(|r| {
            (r.method == "POST" && r.path.contains("/snapshots") && !r.path.contains("/upload"))
                || (r.method == "DELETE" && r.path.contains("/snapshots/"))
        })
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

/// How many snapshot files are under `dir`, at any depth.
fn snapshot_files(dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let path = e.path();
            match path.is_dir() {
                true => snapshot_files(&path),
                false => usize::from(path.extension().is_some_and(|x| x == "snapshot")),
            }
        })
        .sum()
}

/// No backup, no staging folder, no partial file, nothing on the server.
#[track_caller]
fn assert_nothing_left(env: &TestEnv) {
    assert_eq!(env.root_entries(), Vec::<String>::new());
    assert_eq!(env.server_snapshots(), 0);
}

fn stream_path(collection: &str) -> String {
    format!("/collections/{collection}/shards/0/snapshot")
}

#[test]
fn a_streamed_backup_makes_nothing_on_the_server_and_passes_sha256sum() {
    let env = TestEnv::ai_memory();
    let run = env.run(&["backup", "--json"]);
    run.assert_code(0);
    let backup = env.only_backup();
    assert_eq!(snapshot_work(&env.double), Vec::<String>::new());
    assert_eq!(env.server_snapshots(), 0);
    let check = sha256sum_check(&backup);
    assert_eq!(check.code, 0, "{}{}", check.stdout, check.stderr);

    let manifest = manifest(&backup);
    assert!(
        manifest.get("cluster").is_none(),
        "a single node has no peers record"
    );
    let listed = std::fs::read_to_string(backup.join("CHECKSUMS.sha256")).unwrap();
    let document = json_stdout(&run);
    for name in AI_MEMORY_COLLECTIONS {
        let entry = &manifest["collections"][name];
        assert!(entry.get("snapshot_file").is_none(), "{entry}");
        assert_eq!(entry["records"], 30);
        let shards = entry["cluster"]["shards"].as_array().expect("shards");
        assert_eq!(shards.len(), 1, "{entry}");
        let file = format!("qdrant/{name}/shard-0.snapshot");
        assert_eq!(shards[0]["file"], file.as_str());
        assert_eq!(shards[0]["replicas"].as_array().map(Vec::len), Some(1));
        let size = std::fs::metadata(backup.join(&file)).unwrap().len();
        assert_eq!(entry["size_bytes"], size);
        assert!(listed.contains(&format!(
            "{}  {file}",
            shards[0]["sha256"].as_str().unwrap()
        )));
        let reported = document["collections"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .expect("reported");
        assert_eq!(reported["method"], "streamed", "{reported}");
    }
    run.assert_stderr_contains("snapshot streamed");
    env.run(&["verify", backup.to_str().unwrap()])
        .assert_code(0);
    env.run(&["diff-schema", backup.to_str().unwrap()])
        .assert_code(0);
}

#[test]
fn a_streamed_backup_restores_over_the_live_collection_and_into_a_new_name() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--collection", "github"]);
    let before = env.double.point_ids("github").unwrap();
    env.double.upsert_points("github", &[901, 902]);
    env.double.clear_requests();

    let dir = backup.to_str().unwrap();
    env.run(&["restore", dir, "--force"]).assert_code(0);
    assert_eq!(env.double.point_ids("github").unwrap(), before);
    // The pre-restore copy was streamed too: nothing was built on the server.
    assert_eq!(snapshot_work(&env.double), Vec::<String>::new());
    assert_eq!(env.server_snapshots(), 0);
    assert!(
        env.double
            .requests()
            .iter()
            .any(|r| r.method == "GET" && r.path == stream_path("github")),
        "the pre-restore copy is the live shard's stream"
    );

    let run = env.run(&[
        "restore",
        dir,
        "--collection",
        "github",
        "--target-name",
        "github_copy",
        "--force",
    ]);
    run.assert_code(0);
    assert_eq!(env.double.point_ids("github_copy").unwrap(), before);
    assert_eq!(
        env.double.collection_info("github_copy").unwrap()["config"],
        env.double.collection_info("github").unwrap()["config"],
        "created from the recorded definition"
    );
}

/// A shard upload whose connection is lost is rolled back to the pre-restore copy, which was
/// streamed: the collection is exactly as before.
#[test]
fn a_streamed_restore_that_fails_is_rolled_back_to_the_streamed_copy() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--collection", "discussions"]);
    env.double.upsert_points("discussions", &[700, 701]);
    let before = env.double.point_ids("discussions").unwrap();
    env.double.inject(Fault::new(
        Some("POST"),
        "/collections/discussions/shards/0/snapshots/upload",
        FaultKind::UploadFailAfterClear,
    ));
    let run = env.run(&["restore", backup.to_str().unwrap(), "--force"]);
    assert_ne!(run.code, 0, "{}", run.stderr);
    run.assert_stderr_contains("discussions");
    assert_eq!(env.double.point_ids("discussions").unwrap(), before);
    assert_eq!(env.server_snapshots(), 0);
}

#[test]
fn a_server_without_streaming_gets_stored_snapshots_and_is_told_once() {
    let env = TestEnv::with_config(Config {
        no_streamed_shard_snapshot: true,
        api_key: Some(KEY.into()),
        ..Config::default()
    });
    env.double.seed_ai_memory();
    let run = env.run(&["backup", "--jobs", "1"]);
    run.assert_code(0);
    assert_eq!(
        run.stderr
            .matches("does not stream shard snapshots")
            .count(),
        1,
        "{}",
        run.stderr
    );
    let backup = env.only_backup();
    let manifest = manifest(&backup);
    for name in AI_MEMORY_COLLECTIONS {
        let entry = &manifest["collections"][name];
        assert_eq!(
            entry["snapshot_file"],
            format!("{name}.snapshot"),
            "{entry}"
        );
        assert!(entry.get("cluster").is_none());
    }
    // Asked once, then never again in this run.
    let asked = env
        .double
        .requests()
        .iter()
        .filter(|r| r.path.contains("/shards/0/snapshot"))
        .count();
    assert_eq!(asked, 1);
    assert!(
        !backup.join("qdrant/conventions").exists(),
        "no folder of the refused stream is left"
    );
    assert_eq!(env.server_snapshots(), 0);
    assert_eq!(sha256sum_check(&backup).code, 0);
}

#[test]
fn a_cluster_without_streaming_gets_stored_shard_snapshots() {
    let world = World::new();
    let cluster = Cluster::start(
        3,
        Config {
            no_streamed_shard_snapshot: true,
            ..keyed_config()
        },
    );
    cluster.seed(
        "discussions",
        qdrant_double::info_from_fixture("cluster/3-node-collection-info.json"),
        3,
        2,
        (1..=60).collect(),
    );
    let backup = world.backup(&cluster.url(0), "discussions");
    let entry = &manifest(std::path::Path::new(&backup))["collections"]["discussions"];
    assert_eq!(entry["cluster"]["shards"].as_array().map(Vec::len), Some(3));
    let built: usize = (0..3)
        .map(|i| {
            cluster
                .peer(i)
                .requests()
                .iter()
                .filter(|r| r.method == "POST" && r.path.ends_with("/snapshots"))
                .count()
        })
        .sum();
    assert_eq!(built, 3, "each shard snapshot built where it is taken");
    let left: usize = (0..3)
        .map(|i| snapshot_files(&cluster.peer(i).snapshots_dir()))
        .sum();
    assert_eq!(left, 0);
}

#[test]
fn a_cluster_backup_streams_each_shard_from_its_peer() {
    let world = World::new();
    let cluster = Cluster::start(3, keyed_config());
    cluster.seed(
        "discussions",
        qdrant_double::info_from_fixture("cluster/3-node-collection-info.json"),
        3,
        2,
        (1..=60).collect(),
    );
    let backup = world.backup(&cluster.url(0), "discussions");
    let streamed: usize = (0..3)
        .map(|i| {
            let requests = cluster.peer(i).requests();
            assert!(
                !requests
                    .iter()
                    .any(|r| r.method == "POST" && r.path.ends_with("/snapshots")),
                "nothing built on peer {i}"
            );
            requests
                .iter()
                .filter(|r| r.method == "GET" && r.path.ends_with("/snapshot"))
                .count()
        })
        .sum();
    assert_eq!(streamed, 3);
    let target = Cluster::start(3, keyed_config());
    world
        .run(&target.url(0), &["restore", &backup, "--force"])
        .assert_code(0);
    assert_eq!(
        target.point_ids("discussions"),
        cluster.point_ids("discussions")
    );
}

#[test]
fn a_stream_cut_in_the_middle_publishes_nothing_and_leaves_nothing() {
    let env = TestEnv::ai_memory();
    env.double.set_snapshot_filler("github", 256 * 1024);
    env.double.inject(Fault::new(
        Some("GET"),
        &stream_path("github"),
        FaultKind::TruncateBodyAtPercent { percent: 50 },
    ));
    let run = env.run(&["backup"]);
    run.assert_code(2).assert_stderr_contains("github");
    assert_nothing_left(&env);

    // With --retry the stream starts again from its first byte, and the backup is whole.
    env.double.inject(Fault::new(
        Some("GET"),
        &stream_path("github"),
        FaultKind::TruncateBodyAtPercent { percent: 50 },
    ));
    let run = env.run(&["backup", "--retry", "1"]);
    run.assert_code(0)
        .assert_stderr_contains("starting it again");
    let backup = env.only_backup();
    assert_eq!(sha256sum_check(&backup).code, 0);
    env.run(&["verify", backup.to_str().unwrap()])
        .assert_code(0);
    let streams: Vec<_> = env
        .double
        .requests()
        .into_iter()
        .filter(|r| r.path == stream_path("github"))
        .collect();
    assert_eq!(streams.len(), 3, "one cut, one failed run's, one retried");
    assert!(
        streams.iter().all(|r| !r.headers.contains_key("range")),
        "a stream is never resumed"
    );
}

#[test]
fn a_stalled_stream_times_out_and_leaves_nothing() {
    let env = TestEnv::ai_memory();
    env.double.inject(Fault::new(
        Some("GET"),
        &stream_path("discussions"),
        FaultKind::StallBody {
            after_bytes: 100,
            stall: Duration::from_secs(20),
        },
    ));
    let started = Instant::now();
    let run = env.run_with(&["backup", "--collection", "discussions"], |c| {
        c.env("BACKUP_SNAPSHOT_DOWNLOAD_TIMEOUT", "1");
    });
    run.assert_code(2).assert_stderr_contains("timed out");
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_nothing_left(&env);
}

#[test]
fn ctrl_c_during_a_stream_stops_at_once_and_leaves_nothing() {
    let env = TestEnv::ai_memory();
    env.double.inject(Fault::new(
        Some("GET"),
        &stream_path("conventions"),
        FaultKind::StallBody {
            after_bytes: 100,
            stall: Duration::from_secs(30),
        },
    ));
    let child = env
        .command(&["backup"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_request(&env.double, "GET", |p| p == stream_path("conventions"));
    std::thread::sleep(Duration::from_millis(200));
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let started = Instant::now();
    let run = super::support::to_run(child.wait_with_output().unwrap());
    run.assert_code(130);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_nothing_left(&env);
}

/// A server whose disk cannot hold a snapshot file (Qdrant answers the creation with an
/// internal error) is still backed up: a streamed snapshot needs no room on the server.
#[test]
fn a_server_without_room_for_a_snapshot_file_is_still_backed_up() {
    let env = TestEnv::ai_memory();
    env.double.inject(Fault::always(
        Some("POST"),
        "/snapshots",
        FaultKind::Status {
            code: 500,
            message: "Service internal error: No space left on device (os error 28)".into(),
        },
    ));
    let run = env.run(&["backup", "--no-stream", "--collection", "github"]);
    run.assert_code(2)
        .assert_stderr_contains("No space left on device");
    assert_nothing_left(&env);

    let backup = env.backup(&["--collection", "github"]);
    assert_eq!(sha256sum_check(&backup).code, 0);
    let target = TestEnv::new();
    target
        .run(&["restore", backup.to_str().unwrap(), "--force"])
        .assert_code(0);
    assert_eq!(
        target.double.point_ids("github"),
        env.double.point_ids("github")
    );
}

/// A schema change while the shards stream: the snapshot is taken again, as a stored one is.
#[test]
fn a_schema_change_during_a_stream_takes_it_again() {
    let env = TestEnv::ai_memory();
    env.double.inject(Fault::new(
        Some("GET"),
        &stream_path("github"),
        FaultKind::AddPayloadIndex {
            field: "added_meanwhile".into(),
            schema: "keyword".into(),
        },
    ));
    let run = env.run(&["backup", "--collection", "github"]);
    run.assert_code(0)
        .assert_stderr_contains("schema changed while it was snapshotted");
    let entry: Value = manifest(&env.only_backup())["collections"]["github"].clone();
    assert!(
        entry["schema"]["payload_schema"]
            .get("added_meanwhile")
            .is_some(),
        "{entry}"
    );
    let streams = env
        .double
        .requests()
        .iter()
        .filter(|r| r.path == stream_path("github"))
        .count();
    assert_eq!(streams, 2);
}

/// `verify` reads a streamed shard file as deeply as a stored snapshot: a cut archive whose
/// checksums were made to agree is still caught, by the deep check alone.
#[test]
fn verify_catches_a_cut_shard_file_whose_checksums_agree() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--collection", "discussions"]);
    let relative = "qdrant/discussions/shard-0.snapshot";
    let file = backup.join(relative);
    let bytes = std::fs::read(&file).unwrap();
    let cut = bytes.len() - 1024;
    std::fs::write(&file, &bytes[..cut]).unwrap();
    let (sha, _) =
        aimem::manifest::checksums::hash_file(camino::Utf8Path::from_path(&file).unwrap()).unwrap();
    let manifest_path = backup.join("manifest.json");
    let mut value = manifest(&backup);
    let old_sha = value["collections"]["discussions"]["cluster"]["shards"][0]["sha256"]
        .as_str()
        .unwrap()
        .to_string();
    value["collections"]["discussions"]["cluster"]["shards"][0]["sha256"] = sha.clone().into();
    value["collections"]["discussions"]["cluster"]["shards"][0]["size_bytes"] = cut.into();
    value["collections"]["discussions"]["size_bytes"] = cut.into();
    std::fs::write(
        &manifest_path,
        serde_json::to_string_pretty(&value).unwrap(),
    )
    .unwrap();
    let listed = std::fs::read_to_string(backup.join("CHECKSUMS.sha256"))
        .unwrap()
        .replace(&old_sha, &sha);
    let (manifest_sha, _) =
        aimem::manifest::checksums::hash_file(camino::Utf8Path::from_path(&manifest_path).unwrap())
            .unwrap();
    let listed: String = listed
        .lines()
        .map(|line| match line.ends_with("  manifest.json") {
            true => format!("{manifest_sha}  manifest.json\n"),
            false => format!("{line}\n"),
        })
        .collect();
    std::fs::write(backup.join("CHECKSUMS.sha256"), listed).unwrap();
    assert_eq!(sha256sum_check(&backup).code, 0, "every checksum agrees");

    let dir = backup.to_str().unwrap();
    let run = env.run(&["verify", "--json", dir]);
    run.assert_code(2);
    let report = json_stdout(&run);
    let problems = report["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{report:#}");
    assert_eq!(problems[0]["file"], relative);
    assert_eq!(problems[0]["kind"], "snapshot_damaged", "{report:#}");
    env.run(&["verify", "--no-deep", dir]).assert_code(0);
}

/// The points and schema a rollback must bring back.
fn state(double: &Double, name: &str) -> (Value, Vec<u64>) {
    (
        double.collection_info(name).expect("collection"),
        double.point_ids(name).expect("points"),
    )
}

fn shard_uploads(double: &Double) -> usize {
    double
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/snapshots/upload"))
        .count()
}

fn no_prerestore_left(env: &TestEnv) {
    let left: Vec<String> = env
        .root_entries()
        .into_iter()
        .filter(|e| e.starts_with(".aimem-prerestore-"))
        .collect();
    assert!(left.is_empty(), "pre-restore folders left: {left:?}");
}

/// Every shard upload refused before Qdrant read it (a proxy's body limit): nothing changed,
/// so nothing is uploaded back, and the collection is as it was.
#[test]
fn a_refused_shard_upload_changed_nothing_and_needs_no_rollback_upload() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--collection", "conventions"]);
    env.double.upsert_points("conventions", &[250]);
    let before = state(&env.double, "conventions");
    env.double.inject(Fault::always(
        Some("POST"),
        "/snapshots/upload",
        FaultKind::PlainStatus {
            code: 413,
            body: "<html><center><h1>413 Request Entity Too Large</h1></center></html>".into(),
        },
    ));
    let run = env.run(&["restore", backup.to_str().unwrap(), "--force"]);
    run.assert_code(4);
    assert!(
        run.stderr.contains("nothing had been changed yet"),
        "{}",
        run.stderr
    );
    assert_eq!(shard_uploads(&env.double), 1, "no rollback upload");
    assert_eq!(state(&env.double, "conventions"), before);
    assert_eq!(env.server_snapshots(), 0);
    no_prerestore_left(&env);
}

/// The connection of a shard upload is lost while Qdrant goes on recovering the shard: the
/// rollback waits for that recovery to end (it shows in `/metrics`, as on real servers), then
/// puts the streamed pre-restore copy back.
#[test]
fn the_rollback_waits_for_a_shard_recovery_still_running_after_a_lost_connection() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--collection", "discussions"]);
    env.double.upsert_points("discussions", &[400, 401]);
    let before = state(&env.double, "discussions");
    env.double.inject(Fault::new(
        Some("POST"),
        "/collections/discussions/shards/0/snapshots/upload",
        FaultKind::SlowRecovery {
            takes: Duration::from_millis(2500),
            answer: qdrant_double::LateAnswer::Drop,
        },
    ));
    let run = env.run(&["restore", backup.to_str().unwrap(), "--force"]);
    run.assert_code(4);
    assert!(env.double.wait_for_recoveries(Duration::from_secs(10)));
    // Had the rollback not waited, the late recovery would have replaced its work by now.
    assert_eq!(state(&env.double, "discussions"), before, "{}", run.stderr);
    no_prerestore_left(&env);
}

#[test]
fn points_written_while_a_shard_streams_take_it_again() {
    let env = TestEnv::ai_memory();
    env.double.inject(Fault::new(
        Some("GET"),
        &stream_path("github"),
        FaultKind::Delay(Duration::from_millis(1500)),
    ));
    let child = env
        .command(&["backup", "--collection", "github"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_request(&env.double, "GET", |p| p == stream_path("github"));
    env.double.upsert_points("github", &[1001]);
    let run = super::support::to_run(child.wait_with_output().unwrap());
    run.assert_code(0);
    assert!(run.stderr.contains("taking them again"), "{}", run.stderr);
    let entry = &manifest(&env.only_backup())["collections"]["github"];
    assert_eq!(entry["records"], 31, "the count the streamed shard holds");
    assert!(entry.get("records_max").is_none());
    let target = TestEnv::new();
    target
        .run_with(
            &["restore", env.only_backup().to_str().unwrap(), "--force"],
            |c| {
                c.env("QDRANT_URL", target.double.url());
            },
        )
        .assert_code(0);
    assert_eq!(target.double.point_ids("github").map(|p| p.len()), Some(31));
}

#[test]
fn a_server_without_streaming_is_told_once_with_several_jobs() {
    let env = TestEnv::with_config(Config {
        no_streamed_shard_snapshot: true,
        api_key: Some(KEY.into()),
        ..Config::default()
    });
    env.double.seed_ai_memory();
    let run = env.run(&["backup", "--jobs", "3"]);
    run.assert_code(0);
    assert_eq!(
        run.stderr
            .matches("does not stream shard snapshots")
            .count(),
        1,
        "{}",
        run.stderr
    );
    let backup = env.only_backup();
    let manifest = manifest(&backup);
    for name in AI_MEMORY_COLLECTIONS {
        assert_eq!(
            manifest["collections"][name]["snapshot_file"],
            format!("{name}.snapshot")
        );
        assert!(!backup.join("qdrant").join(name).exists());
    }
    assert_eq!(sha256sum_check(&backup).code, 0);
    env.run(&["verify", backup.to_str().unwrap()])
        .assert_code(0);
}

/// One peer of a cluster without the endpoint (a rolling upgrade): that peer's shards are
/// taken the stored way, the others' streamed (for every collection of the run), and the
/// backup is whole.
#[test]
fn a_cluster_peer_without_streaming_gets_stored_shard_snapshots_the_others_stream() {
    let world = World::new();
    let cluster = Cluster::start(3, keyed_config());
    cluster.seed(
        "discussions",
        qdrant_double::info_from_fixture("cluster/3-node-collection-info.json"),
        3,
        1,
        (1..=60).collect(),
    );
    cluster.seed(
        "github",
        qdrant_double::info_from_fixture("cluster/3-node-collection-info.json"),
        3,
        1,
        (1..=45).collect(),
    );
    // A server without the route answers 404 with an empty body (actix's default). The peer
    // holds one shard: its first GET of a snapshot path is the stream (a download's path has
    // the stream's in it, so only the order tells them apart).
    cluster.peer(1).inject(Fault::new(
        Some("GET"),
        "/snapshot",
        FaultKind::PlainStatus {
            code: 404,
            body: String::new(),
        },
    ));
    let run = world.run(
        &cluster.url(0),
        &[
            "backup",
            "--jobs",
            "1",
            "--collection",
            "discussions",
            "--collection",
            "github",
        ],
    );
    run.assert_code(0);
    assert_eq!(
        run.stderr
            .matches("does not stream shard snapshots")
            .count(),
        1,
        "{}",
        run.stderr
    );
    let refused = cluster.peer_ids()[1].to_string();
    assert!(
        run.stderr.contains(&format!("peer {refused}")),
        "{}",
        run.stderr
    );
    for i in [0, 2] {
        let built = cluster
            .peer(i)
            .requests()
            .iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/snapshots"))
            .count();
        assert_eq!(built, 0, "peer {i} streams every collection's shards");
    }
    let streams_asked = cluster
        .peer(1)
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.ends_with("/snapshot"))
        .count();
    assert_eq!(streams_asked, 1, "a peer that refused is not asked again");
    let backup = run.stdout.trim().to_string();
    let path = std::path::Path::new(&backup);
    let files: Vec<String> = std::fs::read_dir(path.join("qdrant/discussions"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files.len(), 3, "{files:?}");
    assert_eq!(sha256sum_check(path).code, 0);
    world
        .run(&cluster.url(0), &["verify", &backup])
        .assert_code(0);
    let built: usize = (0..3)
        .map(|i| {
            cluster
                .peer(i)
                .requests()
                .iter()
                .filter(|r| r.method == "POST" && r.path.ends_with("/snapshots"))
                .count()
        })
        .sum();
    assert_eq!(
        built, 2,
        "the peer without streaming built its shard of each collection"
    );
    let left: usize = (0..3)
        .map(|i| snapshot_files(&cluster.peer(i).snapshots_dir()))
        .sum();
    assert_eq!(left, 0);
    let target = Cluster::start(3, keyed_config());
    world
        .run(&target.url(0), &["restore", &backup, "--force"])
        .assert_code(0);
    assert_eq!(
        target.point_ids("discussions"),
        cluster.point_ids("discussions")
    );
}

/// A 404 that names the shard (it moved, or its collection went, meanwhile) is an error of
/// that collection, not a server without streaming.
#[test]
fn a_shard_that_is_gone_fails_the_collection_and_does_not_switch_the_run() {
    let env = TestEnv::ai_memory();
    env.double.inject(Fault::always(
        Some("GET"),
        &stream_path("github"),
        FaultKind::PlainStatus {
            code: 404,
            body: "Not found: shard 0 not found".into(),
        },
    ));
    let run = env.run(&["backup"]);
    run.assert_code(2).assert_stderr_contains("github");
    assert!(!run.stderr.contains("does not stream"), "{}", run.stderr);
    assert_nothing_left(&env);
}

/// A stream announces no size: one that would leave the backup's disk nearly full is stopped
/// (the disk-space exit), and nothing is kept.
#[test]
#[cfg_attr(
    not(debug_assertions),
    ignore = "uses AIMEM_TEST_FREE_SPACE, which exists only in debug builds"
)]
fn a_stream_that_would_fill_the_disk_is_stopped() {
    let env = TestEnv::ai_memory();
    env.double.set_snapshot_filler("github", 40 * 1024 * 1024);
    let run = env.run_with(&["backup", "--collection", "github"], |c| {
        c.env("AIMEM_TEST_FREE_SPACE", (60u64 * 1024 * 1024).to_string());
    });
    run.assert_code(3).assert_stderr_contains("would stay free");
    assert_nothing_left(&env);
}

/// A single node keeps whatever replication factor its collection was created with (from a
/// cluster's snapshot, say): its streamed backup records it, and restores it.
#[test]
fn a_single_node_collection_with_replication_factor_2_streams_and_restores() {
    let env = TestEnv::new();
    let mut info = qdrant_double::info_from_fixture("collections/info-discussions.json");
    info["config"]["params"]["replication_factor"] = 2.into();
    info["config"]["params"]["write_consistency_factor"] = 2.into();
    env.double.seed("discussions", info, (1..=12).collect());
    let backup = env.backup(&["--collection", "discussions"]);
    let entry = &manifest(&backup)["collections"]["discussions"];
    assert_eq!(entry["cluster"]["replication_factor"], 2);
    let dir = backup.to_str().unwrap();
    env.run(&["verify", dir]).assert_code(0);
    env.run(&[
        "restore",
        dir,
        "--collection",
        "discussions",
        "--target-name",
        "copy",
        "--force",
    ])
    .assert_code(0);
    assert_eq!(
        env.double.point_ids("copy"),
        env.double.point_ids("discussions")
    );
    let params = &env.double.collection_info("copy").unwrap()["config"]["params"];
    assert_eq!(params["replication_factor"], 2);
    assert_eq!(params["write_consistency_factor"], 2);
}
