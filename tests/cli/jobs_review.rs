//! `--jobs N` under stress: a signal with several collections in flight, and a failure in one
//! collection while another is half way through.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use qdrant_double::{AI_MEMORY_COLLECTIONS, Config, Double, Fault, FaultKind, LateAnswer};
use serde_json::Value;

use super::support::{KEY, Run, TestEnv, to_run};

/// Waits for `child` to end, at most a generous minute: a run that hangs is killed and fails
/// the test instead of hanging it.
#[track_caller]
fn finish(mut child: Child) -> Run {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match child.try_wait().expect("try_wait") {
            Some(_) => return to_run(child.wait_with_output().expect("output")),
            None if Instant::now() >= deadline => {
                child.kill().expect("kill");
                let run = to_run(child.wait_with_output().expect("output"));
                panic!("aimem did not end within a minute:\n{}", run.all_output());
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Waits (up to 30 s) until `ready`, then sends SIGINT to `child`.
#[track_caller]
fn interrupt_when(child: &Child, ready: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready() {
        assert!(Instant::now() < deadline, "the moment to signal never came");
        std::thread::sleep(Duration::from_millis(10));
    }
    let killed = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
}

fn snapshot_creations(double: &Double) -> usize {
    double
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/snapshots"))
        .count()
}

#[test]
fn ctrl_c_with_three_backup_jobs_building_exits_130_and_leaves_nothing() {
    let env = TestEnv::ai_memory();
    env.double.inject(Fault::always(
        Some("POST"),
        "/snapshots",
        FaultKind::Delay(Duration::from_millis(1500)),
    ));
    let child = env
        .command(&["backup", "--no-stream", "--jobs", "3"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn aimem");
    let double = &env.double;
    interrupt_when(&child, || snapshot_creations(double) >= 3);
    let run = finish(child);
    run.assert_code(130);
    assert_eq!(env.root_entries(), Vec::<String>::new(), "backup root");
    assert_eq!(env.server_snapshots(), 0, "server snapshots left");
    assert_eq!(
        snapshot_creations(&env.double),
        3,
        "no collection is started after the signal"
    );
}

fn target_server() -> Double {
    Double::start(Config {
        api_key: Some(KEY.to_string()),
        ..Config::default()
    })
}

fn state(server: &Double, name: &str) -> (Value, Vec<u64>) {
    (
        server.collection_info(name).expect("collection"),
        server.point_ids(name).expect("points"),
    )
}

fn spawn_restore(env: &TestEnv, target: &Double, backup: &Path, extra: &[&str]) -> Child {
    let mut args = vec!["restore", backup.to_str().expect("utf-8 path"), "--force"];
    args.extend_from_slice(extra);
    let mut command = env.command(&args);
    command
        .env("QDRANT_URL", target.url())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command.spawn().expect("spawn aimem")
}

#[track_caller]
fn assert_rolled_back(
    env: &TestEnv,
    target: &Double,
    existing: &[&str],
    was: &[(Value, Vec<u64>)],
) {
    for (name, was) in existing.iter().zip(was) {
        assert_eq!(&state(target, name), was, "`{name}` is back as it was");
        assert!(
            target.snapshot_names(name).is_empty(),
            "`{name}`: snapshots left {:?}",
            target.snapshot_names(name)
        );
    }
    for name in AI_MEMORY_COLLECTIONS
        .iter()
        .filter(|n| !existing.contains(n))
    {
        assert!(
            target.collection_info(name).is_none(),
            "`{name}` (created by the restore) is deleted again"
        );
    }
    let left: Vec<String> = env
        .root_entries()
        .into_iter()
        .filter(|e| e.starts_with(".aimem-prerestore-"))
        .collect();
    assert!(left.is_empty(), "pre-restore folders left: {left:?}");
}

#[test]
fn ctrl_c_with_restore_jobs_recovering_rolls_every_collection_back_and_exits_130() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--no-stream"]);
    let target = target_server();
    let existing = &AI_MEMORY_COLLECTIONS[..2];
    for name in existing {
        target.seed_from_fixture(name, &format!("collections/info-{name}.json"), 7);
    }
    let before: Vec<_> = existing.iter().map(|n| state(&target, n)).collect();
    target.inject(Fault::always(
        Some("POST"),
        "/snapshots/upload",
        FaultKind::SlowRecovery {
            takes: Duration::from_millis(1500),
            answer: LateAnswer::Wait,
        },
    ));
    let child = spawn_restore(&env, &target, &backup, &["--jobs", "3"]);
    interrupt_when(&child, || target.recoveries_running() >= 2);
    let run = finish(child);
    run.assert_code(130).assert_stderr_contains("rolled back");
    assert_rolled_back(&env, &target, existing, &before);
}

#[test]
fn a_failure_while_another_job_saves_its_pre_restore_copy_cleans_that_copy_too() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&[]);
    let target = target_server();
    // The first two collections in the restore's order (the manifest's): the first exists and
    // its pre-restore snapshot takes a while to build; the second is fresh, and its creation is
    // refused meanwhile.
    let mut in_order = AI_MEMORY_COLLECTIONS.to_vec();
    in_order.sort_unstable();
    let (saved, fresh) = (in_order[0], in_order[1]);
    target.seed_from_fixture(saved, &format!("collections/info-{saved}.json"), 7);
    let before = vec![state(&target, saved)];
    target.inject(Fault::always(
        Some("POST"),
        &format!("/collections/{saved}/snapshots"),
        FaultKind::Delay(Duration::from_millis(1500)),
    ));
    target.inject(Fault::always(
        Some("PUT"),
        &format!("/collections/{fresh}"),
        FaultKind::Status {
            code: 500,
            message: "Service internal error: no space left on device".into(),
        },
    ));
    let run = finish(spawn_restore(&env, &target, &backup, &["--jobs", "2"]));
    run.assert_code(4).assert_stderr_contains(fresh);
    assert_rolled_back(&env, &target, &[saved], &before);
}

#[test]
fn an_index_present_with_another_type_than_asked_fails_before_the_upload() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&[]);
    let target = target_server();
    let victim = AI_MEMORY_COLLECTIONS[0];
    let info = env.double.collection_info(victim).expect("victim");
    let indexes = aimem::fingerprint::Fingerprint::from_collection_info(&info)
        .expect("fingerprint")
        .payload_indexes();
    let (field, schema) = indexes.first().expect("the victim has a payload index");
    let asked = schema
        .as_str()
        .or_else(|| schema.get("type").and_then(Value::as_str))
        .expect("an index type");
    let other = if asked == "keyword" {
        "integer"
    } else {
        "keyword"
    };
    // Someone else keeps an index of another type on the field (an application provisioning
    // its collection as it starts, say): every look at the collection finds it.
    target.inject(Fault::always(
        Some("GET"),
        &format!("/collections/{victim}"),
        FaultKind::AddPayloadIndex {
            field: field.clone(),
            schema: other.to_string(),
        },
    ));
    let mut args = vec!["restore", backup.to_str().expect("utf-8 path")];
    args.extend(["--request-timeout", "2", "--jobs", "1"]);
    let run = env.run_with(&args, |c| {
        c.env("QDRANT_URL", target.url());
    });
    run.assert_code(4)
        .assert_stderr_contains("rolled back")
        .assert_stderr_contains(field);
    assert!(
        !target
            .requests()
            .iter()
            .any(|r| r.path == format!("/collections/{victim}/snapshots/upload")),
        "a snapshot was uploaded into `{victim}` though its `{field}` index has the wrong type"
    );
    assert!(
        target.collection_names().is_empty(),
        "fresh collections are deleted again: {:?}",
        target.collection_names()
    );
}

#[test]
#[cfg_attr(
    not(debug_assertions),
    ignore = "uses AIMEM_TEST_FREE_SPACE, which exists only in debug builds"
)]
fn no_room_for_one_snapshot_with_backup_jobs_exits_3_and_leaves_nothing() {
    let env = TestEnv::ai_memory();
    // The estimate fits, the real snapshot of one collection (64 MiB of filler) does not: a
    // worker finds out while the others run.
    env.double
        .set_snapshot_filler("conventions", 64 * 1024 * 1024);
    let run = env.run_with(&["backup", "--no-stream", "--jobs", "3"], |c| {
        c.env("AIMEM_TEST_FREE_SPACE", "100000000");
    });
    run.assert_code(3)
        .assert_stderr_contains("snapshot of `conventions`");
    assert_eq!(env.root_entries(), Vec::<String>::new(), "backup root");
    assert_eq!(env.server_snapshots(), 0, "server snapshots left");
}

#[test]
#[cfg_attr(
    not(debug_assertions),
    ignore = "uses AIMEM_TEST_FREE_SPACE, which exists only in debug builds"
)]
fn no_room_for_pre_restore_copies_with_restore_jobs_exits_3_and_changes_nothing() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&[]);
    // Every collection exists (the backup's own server): each must be saved first.
    let before: Vec<_> = AI_MEMORY_COLLECTIONS
        .iter()
        .map(|n| state(&env.double, n))
        .collect();
    env.double.clear_requests();
    let run = env.run_with(
        &[
            "restore",
            backup.to_str().expect("utf-8"),
            "--force",
            "--jobs",
            "3",
        ],
        |c| {
            c.env("AIMEM_TEST_FREE_SPACE", "1000");
        },
    );
    run.assert_code(3)
        .assert_stderr_contains("nothing was changed")
        .assert_stderr_contains("not enough free space");
    for (name, was) in AI_MEMORY_COLLECTIONS.iter().zip(&before) {
        assert_eq!(&state(&env.double, name), was, "`{name}`");
        assert!(
            env.double.snapshot_names(name).is_empty(),
            "`{name}`: snapshots left {:?}",
            env.double.snapshot_names(name)
        );
    }
    let left: Vec<String> = env
        .root_entries()
        .into_iter()
        .filter(|e| e.starts_with(".aimem-prerestore-"))
        .collect();
    assert!(left.is_empty(), "pre-restore folders left: {left:?}");
}
