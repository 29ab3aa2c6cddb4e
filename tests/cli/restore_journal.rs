//! A restore killed with `kill -9` leaves objects on the server (its pre-restore snapshot, the
//! uploaded copy Qdrant keeps): its journal, in the user's state folder, lets the next restore
//! or backup against that server delete what is provably its own, wherever the backup it
//! restored lives, while the local pre-restore copy is never deleted and a live restore's
//! snapshot is never touched. `list` reports killed restores.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use qdrant_double::{Fault, FaultKind};

use super::support::{TestEnv, to_run, wait_for_request};

/// The restore journals in the test's state folder (aimem's `~/.local/state/aimem/restores`).
fn state_journals(env: &TestEnv) -> Vec<PathBuf> {
    let dir = env.tmp.path().join("home/.local/state/aimem/restores");
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "journal"))
                .collect()
        })
        .unwrap_or_default()
}

/// A private lock folder for the test's restores (aimem's `$XDG_RUNTIME_DIR/aimem`).
fn runtime_dir(env: &TestEnv) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = env.tmp.path().join("run");
    std::fs::create_dir_all(&dir).expect("run dir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    dir
}

fn spawn_restore(env: &TestEnv, backup: &Path) -> Child {
    env.command(&["restore", backup.to_str().expect("utf-8"), "--force"])
        .env("XDG_RUNTIME_DIR", runtime_dir(env))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn aimem")
}

fn restore_now(env: &TestEnv, backup: &Path) -> super::support::Run {
    let runtime = runtime_dir(env);
    env.run_with(
        &["restore", backup.to_str().expect("utf-8"), "--force"],
        |c| {
            c.env("XDG_RUNTIME_DIR", runtime);
        },
    )
}

fn kill_9(child: &mut Child) {
    std::process::Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status()
        .expect("kill");
    child.wait().expect("wait");
}

/// The pre-restore folders in the backup root.
fn prerestore_folders(env: &TestEnv) -> Vec<PathBuf> {
    env.root_entries()
        .into_iter()
        .filter(|e| e.starts_with(".aimem-prerestore-"))
        .map(|e| env.root().join(e))
        .collect()
}

/// Waits until `conventions` has a snapshot not in `before` on the server, and returns it.
fn new_snapshot(env: &TestEnv, before: &[String]) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(name) = env
            .double
            .snapshot_names("conventions")
            .into_iter()
            .find(|n| !before.contains(n))
        {
            return name;
        }
        assert!(Instant::now() < deadline, "the snapshot never appeared");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_restore_killed_before_its_pre_restore_snapshot_was_named_has_it_reported_not_guessed() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--no-stream", "--collection", "conventions"]);
    let before = env.double.snapshot_names("conventions");
    // The backup's own requests are not the restore's.
    env.double.clear_requests();
    // The creation answers late: the run is killed before it learns the snapshot's name.
    env.double.inject(Fault::new(
        Some("POST"),
        "/collections/conventions/snapshots",
        FaultKind::Delay(Duration::from_secs(2)),
    ));
    let mut restore = spawn_restore(&env, &backup);
    wait_for_request(&env.double, "POST", |p| {
        p.starts_with("/collections/conventions/snapshots")
    });
    kill_9(&mut restore);
    env.double.clear_faults();
    // The server finishes the snapshot the dead restore asked for.
    let left = new_snapshot(&env, &before);
    assert_eq!(
        prerestore_folders(&env).len(),
        1,
        "{:?}",
        env.root_entries()
    );

    // The dead restore never heard the snapshot's name: it may be its own or someone else's
    // taken meanwhile, so it is kept and named, and so is the record.
    let next = env.run(&["backup", "--no-stream", "--collection", "github"]);
    next.assert_code(0)
        .assert_stderr_contains(&left)
        .assert_stderr_contains("deletes only what it can prove");
    assert!(env.double.snapshot_names("conventions").contains(&left));
    assert_eq!(state_journals(&env).len(), 1);
}

#[test]
fn a_restore_killed_after_saving_its_copy_has_its_server_snapshot_deleted_and_its_copy_kept() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--no-stream", "--collection", "conventions"]);
    let before = env.double.snapshot_names("conventions");
    // The backup's own requests are not the restore's.
    env.double.clear_requests();
    // The upload answers late: the pre-restore copy is saved, its server snapshot still there.
    env.double.inject(Fault::new(
        Some("POST"),
        "/snapshots/upload",
        FaultKind::Delay(Duration::from_secs(2)),
    ));
    let mut restore = spawn_restore(&env, &backup);
    wait_for_request(&env.double, "POST", |p| p.ends_with("/snapshots/upload"));
    let left = new_snapshot(&env, &before);
    kill_9(&mut restore);
    env.double.clear_faults();
    let folders = prerestore_folders(&env);
    assert_eq!(folders.len(), 1, "{:?}", env.root_entries());
    let folder = &folders[0];
    let copies = |folder: &Path| -> Vec<String> {
        std::fs::read_dir(folder)
            .expect("pre-restore folder")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".snapshot"))
            .collect()
    };
    let saved = copies(folder);
    assert_eq!(saved.len(), 1, "the pre-restore copy was saved");
    // Let the server finish what the dead restore started.
    std::thread::sleep(Duration::from_secs(3));

    let next = restore_now(&env, &backup);
    next.assert_code(0);
    assert!(
        !env.double.snapshot_names("conventions").contains(&left),
        "the dead restore's pre-restore snapshot {left} is still on the server:\n{}",
        next.stderr
    );
    assert_eq!(copies(folder), saved, "the local pre-restore copy is kept");
    assert!(state_journals(&env).is_empty(), "its journal is cleared");
    // The output says where the copy is.
    next.assert_stderr_contains(folder.file_name().and_then(|n| n.to_str()).expect("name"));
}

#[test]
fn a_backup_never_touches_a_live_restores_pre_restore_snapshot() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--no-stream", "--collection", "conventions"]);
    let before = env.double.snapshot_names("conventions");
    // The backup's own requests are not the restore's.
    env.double.clear_requests();
    env.double.inject(Fault::new(
        Some("POST"),
        "/snapshots/upload",
        FaultKind::Delay(Duration::from_secs(3)),
    ));
    let restore = spawn_restore(&env, &backup);
    wait_for_request(&env.double, "POST", |p| p.ends_with("/snapshots/upload"));
    let live = new_snapshot(&env, &before);
    let folders = prerestore_folders(&env);
    assert_eq!(folders.len(), 1, "{:?}", env.root_entries());
    assert_eq!(state_journals(&env).len(), 1, "the restore journals");

    env.run(&["backup", "--no-stream", "--collection", "github"])
        .assert_code(0);
    assert!(
        env.double.snapshot_names("conventions").contains(&live),
        "a concurrent backup deleted the live restore's pre-restore snapshot"
    );
    to_run(restore.wait_with_output().expect("wait")).assert_code(0);
    // The restore deleted it itself, and left no journal (nor folder) behind.
    assert!(!env.double.snapshot_names("conventions").contains(&live));
    assert!(
        prerestore_folders(&env).is_empty(),
        "{:?}",
        env.root_entries()
    );
    assert!(state_journals(&env).is_empty());
}

/// Snapshot files in the snapshot folders of every peer of `cluster`.
fn cluster_snapshot_files(cluster: &qdrant_double::Cluster) -> Vec<PathBuf> {
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
    let mut found = Vec::new();
    for i in 0..3 {
        walk(&cluster.peer(i).snapshots_dir(), &mut found);
    }
    found
}

#[test]
fn a_cluster_restore_killed_while_a_shard_snapshot_is_built_has_it_reported_not_guessed() {
    use qdrant_double::{Cluster, Config, info_from_fixture};
    // Peers that do not stream shard snapshots: the pre-restore copy is one they build.
    let cluster = Cluster::start(
        3,
        Config {
            api_key: Some(super::support::KEY.to_string()),
            no_streamed_shard_snapshot: true,
            ..Config::default()
        },
    );
    cluster.seed(
        "discussions",
        info_from_fixture("cluster/3-node-collection-info.json"),
        3,
        2,
        (1..=600).collect(),
    );
    let env = TestEnv::new();
    let aimem = |args: &[&str]| {
        let mut command = env.command(args);
        command
            .env("QDRANT_URL", cluster.url(0))
            .env("XDG_RUNTIME_DIR", runtime_dir(&env));
        command
    };
    let run = to_run(
        aimem(&["backup", "--no-stream", "--collection", "discussions"])
            .output()
            .expect("run aimem"),
    );
    run.assert_code(0);
    let backup = run.stdout.trim().to_string();
    assert!(cluster_snapshot_files(&cluster).is_empty());
    // Every shard snapshot takes a while to build: the restore is killed before any answer.
    for i in 0..3 {
        cluster.peer(i).clear_requests();
        cluster.peer(i).inject(Fault::always(
            Some("POST"),
            "/collections/discussions/shards/",
            FaultKind::Delay(Duration::from_secs(2)),
        ));
    }
    let mut restore = aimem(&["restore", &backup, "--force"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn aimem");
    let asked = || {
        (0..3)
            .map(|i| {
                cluster
                    .peer(i)
                    .requests()
                    .iter()
                    .filter(|r| {
                        r.method == "POST"
                            && r.path.starts_with("/collections/discussions/shards/")
                            && r.path.ends_with("/snapshots")
                    })
                    .count()
            })
            .sum::<usize>()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while asked() == 0 {
        assert!(Instant::now() < deadline, "no shard snapshot was asked for");
        std::thread::sleep(Duration::from_millis(10));
    }
    kill_9(&mut restore);
    let asked = asked();
    let deadline = Instant::now() + Duration::from_secs(30);
    while cluster_snapshot_files(&cluster).len() < asked {
        assert!(
            Instant::now() < deadline,
            "the shard snapshots never appeared"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    for i in 0..3 {
        cluster.peer(i).clear_faults();
    }
    // Snapshot names carry the time to the second: the next run's own must not share them.
    std::thread::sleep(Duration::from_millis(1100));
    let next = to_run(
        aimem(&["backup", "--no-stream", "--collection", "discussions"])
            .output()
            .expect("run aimem"),
    );
    next.assert_code(0);
    // Their names never came back: kept and named, never deleted on a guess.
    let left = cluster_snapshot_files(&cluster);
    assert_eq!(left.len(), asked, "{}", next.stderr);
    assert!(
        next.stderr.contains("deletes only what it can prove"),
        "{}",
        next.stderr
    );
}

/// A restore from a backup on another disk (`usb/`) is killed while Qdrant recovers its upload:
/// the server holds its pre-restore snapshot and the uploaded copy. The nightly backup into
/// another root finds it through the state folder and deletes both; `list` there reports it
/// first; the local pre-restore copy is kept.
#[test]
fn a_killed_restore_from_another_folder_is_cleaned_up_by_a_backup_into_any_root() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--no-stream", "--collection", "conventions"]);
    let usb = env.tmp.path().join("usb");
    std::fs::create_dir_all(&usb).expect("usb");
    let on_usb = usb.join(backup.file_name().expect("name"));
    super::support::copy_dir(&backup, &on_usb);
    let before = env.double.snapshot_names("conventions");
    env.double.clear_requests();
    env.double.inject(Fault::new(
        Some("POST"),
        "/snapshots/upload",
        FaultKind::SlowRecovery {
            takes: Duration::from_secs(5),
            answer: qdrant_double::LateAnswer::Wait,
        },
    ));
    let mut restore = spawn_restore(&env, &on_usb);
    wait_for_request(&env.double, "POST", |p| p.ends_with("/snapshots/upload"));
    // The upload copy is kept by the server as soon as its body is in.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !env
        .double
        .snapshot_names("conventions")
        .iter()
        .any(|n| n.starts_with("aimem-restore-"))
    {
        assert!(Instant::now() < deadline, "the upload copy never appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
    kill_9(&mut restore);
    let left: Vec<String> = env
        .double
        .snapshot_names("conventions")
        .into_iter()
        .filter(|n| !before.contains(n))
        .collect();
    assert_eq!(
        left.len(),
        2,
        "a pre-restore snapshot and an upload copy: {left:?}"
    );
    // Let the server finish what the dead restore started.
    std::thread::sleep(Duration::from_secs(6));

    let nightly = env.tmp.path().join("nightly");
    std::fs::create_dir_all(&nightly).expect("nightly");
    let list = env.run_with(&["list", "--json"], |c| {
        c.env("AI_MEMORY_BACKUP_DIR", &nightly);
    });
    list.assert_code(0);
    let json = super::support::json_stdout(&list);
    let leftovers = json["leftovers"].as_array().expect("leftovers");
    assert_eq!(leftovers.len(), 1, "{json}");
    assert_eq!(leftovers[0]["kind"], "restore");
    for name in &left {
        assert!(
            leftovers[0]["snapshots"]
                .as_array()
                .expect("snapshots")
                .iter()
                .any(|s| s.as_str() == Some(&format!("conventions/{name}"))),
            "{json}"
        );
    }

    let run = env.run_with(
        &["backup", "--no-stream", "--collection", "github", "-o"],
        |c| {
            c.arg(&nightly);
        },
    );
    run.assert_code(0);
    for name in &left {
        assert!(
            !env.double.snapshot_names("conventions").contains(name),
            "{name} is still on the server:\n{}",
            run.stderr
        );
    }
    assert!(state_journals(&env).is_empty(), "{}", run.stderr);
    // The pre-restore copy beside the restored backup is kept, and said.
    let kept: Vec<_> = std::fs::read_dir(&usb)
        .expect("usb")
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".aimem-prerestore-")
        })
        .collect();
    assert_eq!(kept.len(), 1);
    run.assert_stderr_contains("never deletes it");
}

/// A single-node backup restored into a cluster goes up to each peer holding its shard as a
/// collection snapshot, a copy of which each peer keeps: a restore killed while the peers
/// recover leaves those copies, and the next backup against the cluster deletes them on their
/// peers.
#[test]
fn upload_copies_a_killed_restore_left_on_cluster_peers_are_deleted_by_the_next_backup() {
    use qdrant_double::{Cluster, Config, Double, LateAnswer};
    let world = super::support::World::new();
    let single = Double::start(super::support::keyed_config());
    single.seed_from_fixture("discussions", "collections/info-discussions.json", 40);
    // The single node's one stored snapshot, uploaded whole to each peer holding shard 0.
    let backup = world.backup_with(
        &single.url(),
        &["--no-stream", "--collection", "discussions"],
    );
    let cluster = Cluster::start(
        3,
        Config {
            api_key: Some(super::support::KEY.to_string()),
            ..Config::default()
        },
    );
    for i in 0..3 {
        cluster.peer(i).inject(Fault::always(
            Some("POST"),
            "/collections/discussions/snapshots/upload",
            FaultKind::SlowRecovery {
                takes: Duration::from_secs(5),
                answer: LateAnswer::Wait,
            },
        ));
    }
    let mut restore = world
        .command(&cluster.url(0), &["restore", &backup, "--force"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn aimem");
    let copies = || -> Vec<PathBuf> {
        cluster_snapshot_files(&cluster)
            .into_iter()
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("aimem-restore-"))
            })
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while copies().is_empty() {
        assert!(Instant::now() < deadline, "no upload copy appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
    kill_9(&mut restore);
    // Let the peers finish what the dead restore started.
    std::thread::sleep(Duration::from_secs(6));
    for i in 0..3 {
        cluster.peer(i).clear_faults();
    }
    assert!(!copies().is_empty());
    let run = world.run(
        &cluster.url(0),
        &["backup", "--no-stream", "--collection", "discussions"],
    );
    run.assert_code(0);
    assert_eq!(copies(), Vec::<PathBuf>::new(), "{}", run.stderr);
}
