//! `aimem restore` against the Qdrant double: the same-version contract and the rollback.

use std::time::Duration;

use aimem::fingerprint::Fingerprint;
use qdrant_double::{AI_MEMORY_COLLECTIONS, Config, Double, Fault, FaultKind, LateAnswer};
use serde_json::Value;

use super::support::{
    KEY, Run, TestEnv, edit_manifest, fail_restore_and_rollback, lose_the_upload_without_metrics,
    mode, wait_for_request,
};

/// `text` appears in stderr once miette's line wrapping (and its `|` gutter) is ignored.
#[track_caller]
fn says(run: &Run, text: &str) {
    let squash = |s: &str| -> String {
        s.chars()
            .filter(|c| !c.is_whitespace() && *c != '|')
            .collect()
    };
    assert!(
        squash(&run.stderr).contains(&squash(text)),
        "stderr lacks {text:?}:\n{}",
        run.stderr
    );
}

/// A second, empty server that accepts the tests' key.
fn empty_server() -> Double {
    Double::start(Config {
        api_key: Some(KEY.to_string()),
        ..Config::default()
    })
}

fn restore_to(env: &TestEnv, server: &Double, args: &[&str]) -> Run {
    let mut all = vec!["restore"];
    all.extend_from_slice(args);
    let url = server.url();
    env.run_with(&all, |c| {
        c.env("QDRANT_URL", url);
    })
}

fn restore(env: &TestEnv, args: &[&str]) -> Run {
    let mut all = vec!["restore"];
    all.extend_from_slice(args);
    env.run(&all)
}

fn fingerprint(server: &Double, name: &str) -> Fingerprint {
    let info = server
        .collection_info(name)
        .unwrap_or_else(|| panic!("`{name}` is not on the server"));
    Fingerprint::from_collection_info(&info).expect("fingerprint")
}

/// Everything a test compares to say "the collection is exactly as before".
/// Backs up `collection` alone, then writes `extra` points into it: the state a restore must
/// replace and a rollback must bring back. Returns the backup and that state.
fn backed_up_then_changed(
    env: &TestEnv,
    collection: &str,
    extra: &[u64],
) -> (std::path::PathBuf, (Value, Vec<u64>)) {
    let backup = env.backup(&["--collection", collection]);
    env.double.upsert_points(collection, extra);
    (backup, state(&env.double, collection))
}

/// [`backed_up_then_changed`] with the collection's one stored snapshot (`--no-stream`, as
/// every backup before streaming and the Python scripts' are), restored as one snapshot.
fn stored_then_changed(
    env: &TestEnv,
    collection: &str,
    extra: &[u64],
) -> (std::path::PathBuf, (Value, Vec<u64>)) {
    let backup = env.backup(&["--no-stream", "--collection", collection]);
    env.double.upsert_points(collection, extra);
    (backup, state(&env.double, collection))
}

fn state(server: &Double, name: &str) -> (Value, Vec<u64>) {
    (
        server.collection_info(name).expect("collection"),
        server.point_ids(name).expect("points"),
    )
}

/// Requests that would change the server (everything but reads).
fn writes(server: &Double) -> Vec<String> {
    server
        .requests()
        .into_iter()
        .filter(|r| !(r.method == "GET" || r.method == "POST" && r.path.ends_with("/points/count")))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

fn uploads(server: &Double) -> usize {
    server
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

fn all_snapshots(server: &Double, names: &[&str]) -> Vec<String> {
    names
        .iter()
        .flat_map(|c| server.snapshot_names(c))
        .collect()
}

#[test]
fn round_trip_into_an_empty_server_gives_equal_fingerprints_and_counts() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--no-stream"]);
    let target = empty_server();
    let run = restore_to(&env, &target, &[backup.to_str().unwrap()]);
    run.assert_code(0)
        .assert_stderr_contains("Restore complete");
    for name in AI_MEMORY_COLLECTIONS {
        assert_eq!(
            fingerprint(&target, name),
            fingerprint(&env.double, name),
            "{name}"
        );
        assert_eq!(target.point_ids(name), env.double.point_ids(name), "{name}");
    }
    assert!(all_snapshots(&target, &AI_MEMORY_COLLECTIONS).is_empty());
    // Every upload streams with an exact length, asks for priority=snapshot and sends the
    // checksum the backup recorded.
    let manifest = super::support::manifest(&backup);
    let ups: Vec<_> = target
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/snapshots/upload"))
        .collect();
    assert_eq!(ups.len(), 5);
    for up in ups {
        let name = up.path.split('/').nth(2).unwrap().to_string();
        assert_eq!(up.query["priority"], "snapshot");
        assert_eq!(up.query["wait"], "true");
        assert_eq!(
            up.query["checksum"],
            manifest["collections"][&name]["sha256"].as_str().unwrap()
        );
        assert!(
            up.headers.contains_key("content-length"),
            "{:?}",
            up.headers
        );
        assert!(!up.headers.contains_key("transfer-encoding"));
    }
}

#[test]
fn latest_resolves_to_the_newest_backup() {
    let env = TestEnv::ai_memory();
    env.backup(&[]);
    let target = empty_server();
    restore_to(&env, &target, &["latest", "--collection", "github"]).assert_code(0);
    assert_eq!(target.collection_names(), ["github"]);
}

#[test]
fn restore_over_existing_collections_replaces_their_points() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--no-stream"]);
    env.double.clear_requests();
    env.double.upsert_points("discussions", &[100, 101, 102]);
    let before = fingerprint(&env.double, "discussions");
    let run = restore(&env, &[backup.to_str().unwrap(), "--force"]);
    run.assert_code(0);
    assert_eq!(
        env.double.point_ids("discussions").unwrap(),
        (1..=30).collect::<Vec<_>>(),
        "points added after the backup must be gone"
    );
    assert_eq!(fingerprint(&env.double, "discussions"), before);
    // Pre-restore snapshots and uploaded copies are removed, locally and on the server.
    assert!(all_snapshots(&env.double, &AI_MEMORY_COLLECTIONS).is_empty());
    no_prerestore_left(&env);
    // One pre-restore snapshot per collection was taken before its upload.
    let order: Vec<String> = env
        .double
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/collections/discussions/snapshots") && r.method == "POST")
        .map(|r| r.path)
        .collect();
    assert_eq!(
        order,
        [
            "/collections/discussions/snapshots",
            "/collections/discussions/snapshots/upload"
        ]
    );
}

#[test]
fn a_schema_mismatch_is_refused_with_the_fields_named_and_nothing_touched() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&[]);
    env.double
        .seed_from_fixture("discussions", "collections/info-colbert-variant.json", 7);
    let before = state(&env.double, "discussions");
    env.double.clear_requests();
    let run = restore(&env, &[backup.to_str().unwrap(), "--force"]);
    run.assert_code(2);
    says(&run, "schema mismatch on `discussions`");
    says(&run, "params.vectors");
    says(&run, "(backup) vs");
    says(&run, "migrate_v<XXX>_*.py");
    assert_eq!(state(&env.double, "discussions"), before);
    assert_eq!(writes(&env.double), Vec::<String>::new());
}

#[test]
fn a_legacy_manifest_restores_over_existing_collections_with_a_warning() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--no-stream", "--collection", "discussions"]);
    edit_manifest(&backup, |m| {
        m["collections"]["discussions"]
            .as_object_mut()
            .unwrap()
            .remove("schema");
    });
    env.double.upsert_points("discussions", &[500]);
    let run = restore(&env, &[backup.to_str().unwrap(), "--force"]);
    run.assert_code(0)
        .assert_stderr_contains("was checked against the config inside its snapshot instead");
    assert_eq!(env.double.point_ids("discussions").unwrap().len(), 30);
}

#[test]
fn a_legacy_manifest_into_an_absent_collection_is_refused() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--no-stream", "--collection", "discussions"]);
    edit_manifest(&backup, |m| {
        m["collections"]["discussions"]
            .as_object_mut()
            .unwrap()
            .remove("schema");
    });
    let target = empty_server();
    let run = restore_to(&env, &target, &[backup.to_str().unwrap(), "--force"]);
    run.assert_code(2);
    says(&run, "python scripts/setup-collections.py");
    assert!(target.collection_names().is_empty());
    assert_eq!(writes(&target), Vec::<String>::new());
}

#[test]
fn one_flipped_byte_is_refused_before_any_upload() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--no-stream"]);
    let file = backup.join("qdrant/conventions.snapshot");
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&file, bytes).unwrap();
    let target = empty_server();
    let run = restore_to(&env, &target, &[backup.to_str().unwrap(), "--force"]);
    run.assert_code(2);
    says(&run, "qdrant/conventions.snapshot");
    says(&run, "--skip-checksum-verify");
    assert!(target.requests().is_empty(), "not even a connection");
}

#[test]
fn an_unlisted_snapshot_is_refused() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--no-stream", "--collection", "github"]);
    let sums = backup.join("CHECKSUMS.sha256");
    let text: String = std::fs::read_to_string(&sums)
        .unwrap()
        .lines()
        .filter(|l| !l.ends_with("github.snapshot"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&sums, text).unwrap();
    let target = empty_server();
    restore_to(&env, &target, &[backup.to_str().unwrap(), "--force"])
        .assert_code(2)
        .assert_stderr_contains("github.snapshot: not listed");
    assert_eq!(uploads(&target), 0);
}

#[test]
fn a_broken_manifest_points_at_the_bad_spot() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--collection", "github"]);
    let path = backup.join("manifest.json");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replacen("\"records\":", "\"records\"", 1)).unwrap();
    let run = restore(&env, &[backup.to_str().unwrap()]);
    run.assert_code(2);
    says(&run, "is not a valid manifest: expected `:`");
    says(&run, "9 | \"records\" 30,");
}

#[test]
fn an_unreachable_server_is_exit_3() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--collection", "github"]);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    env.run_with(&["restore", backup.to_str().unwrap()], |c| {
        c.env("QDRANT_URL", url);
    })
    .assert_code(3);
}

#[test]
fn an_upload_failing_after_clearing_an_existing_collection_is_rolled_back() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--no-stream"]);
    // Different from the backup, so "as before" cannot be confused with "as in the backup".
    env.double.upsert_points("conventions", &[200, 201]);
    let before: Vec<_> = AI_MEMORY_COLLECTIONS
        .iter()
        .map(|c| state(&env.double, c))
        .collect();
    env.double.inject(Fault::new(
        Some("POST"),
        "/collections/conventions/snapshots/upload",
        FaultKind::UploadFailAfterClear,
    ));
    let run = restore(&env, &[backup.to_str().unwrap(), "--force"]);
    run.assert_code(4)
        .assert_stderr_contains("rolled back")
        .assert_stderr_contains("conventions");
    let after: Vec<_> = AI_MEMORY_COLLECTIONS
        .iter()
        .map(|c| state(&env.double, c))
        .collect();
    for ((name, b), a) in AI_MEMORY_COLLECTIONS.iter().zip(&before).zip(&after) {
        assert_eq!(a, b, "`{name}` must be exactly as before");
    }
    assert!(all_snapshots(&env.double, &AI_MEMORY_COLLECTIONS).is_empty());
    no_prerestore_left(&env);
}

#[test]
fn a_lost_connection_during_an_upload_is_rolled_back() {
    let env = TestEnv::ai_memory();
    let (backup, before) = stored_then_changed(&env, "github", &[999]);
    // The server reads the whole body, loses the client, and recovers anyway: the rollback
    // must undo a real change (a no-op rollback leaves the backup's points behind).
    env.double.inject(Fault::new(
        Some("POST"),
        "/snapshots/upload",
        FaultKind::SlowRecovery {
            takes: Duration::from_millis(300),
            answer: LateAnswer::Drop,
        },
    ));
    restore(&env, &[backup.to_str().unwrap(), "--force"]).assert_code(4);
    assert!(env.double.wait_for_recoveries(Duration::from_secs(10)));
    assert_eq!(state(&env.double, "github"), before);
    no_prerestore_left(&env);
}

#[test]
fn the_rollback_waits_for_a_recovery_still_running_after_a_lost_connection() {
    let env = TestEnv::ai_memory();
    let (backup, before) = stored_then_changed(&env, "discussions", &[400, 401]);
    env.double.inject(Fault::new(
        Some("POST"),
        "/snapshots/upload",
        FaultKind::SlowRecovery {
            takes: Duration::from_millis(2500),
            answer: LateAnswer::Drop,
        },
    ));
    let run = restore(&env, &[backup.to_str().unwrap(), "--force"]);
    run.assert_code(4);
    says(
        &run,
        "Waiting for Qdrant to finish recovering `discussions`",
    );
    says(&run, "snapshot_recovery_running{id=\"discussions\"}");
    // Had the rollback not waited, the late recovery would replace its work now.
    assert!(env.double.wait_for_recoveries(Duration::from_secs(10)));
    assert_eq!(state(&env.double, "discussions"), before);
    assert!(
        env.double
            .requests()
            .iter()
            .any(|r| r.path == "/metrics"
                && r.headers.get("api-key").map(String::as_str) == Some(KEY)),
        "the gauge is read with the key"
    );
    assert!(all_snapshots(&env.double, &["discussions"]).is_empty());
}

#[test]
fn a_gateway_timeout_into_a_fresh_server_waits_before_deleting_what_it_created() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--no-stream", "--collection", "jira-data"]);
    let target = empty_server();
    // nginx gives up after its read timeout; Qdrant behind it goes on recovering.
    target.inject(Fault::new(
        Some("POST"),
        "/snapshots/upload",
        FaultKind::SlowRecovery {
            takes: Duration::from_millis(2000),
            answer: LateAnswer::Gateway {
                code: 504,
                body: "<html><center><h1>504 Gateway Time-out</h1></center></html>".into(),
            },
        },
    ));
    let run = restore_to(&env, &target, &[backup.to_str().unwrap(), "--force"]);
    run.assert_code(4)
        .assert_stderr_contains("created by this restore) deleted");
    says(&run, "Waiting for Qdrant to finish recovering `jira-data`");
    assert!(target.wait_for_recoveries(Duration::from_secs(10)));
    assert!(
        target.collection_names().is_empty(),
        "a late recovery recreated it: {:?}",
        target.collection_names()
    );
}

#[test]
fn a_recovery_outlasting_the_timeout_is_exit_5_without_a_rollback_under_it() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--no-stream", "--collection", "code-patterns"]);
    env.double.upsert_points("code-patterns", &[700]);
    env.double.inject(Fault::new(
        Some("POST"),
        "/snapshots/upload",
        FaultKind::SlowRecovery {
            takes: Duration::from_millis(4000),
            answer: LateAnswer::Wait,
        },
    ));
    let started = std::time::Instant::now();
    let run = restore(
        &env,
        &[
            backup.to_str().unwrap(),
            "--force",
            "--recovery-timeout",
            "1",
        ],
    );
    run.assert_code(5);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "it did not wait it out"
    );
    says(&run, "may still be recovering it from the backup");
    says(&run, "--recovery-timeout");
    says(&run, "snapshot_recovery_running{id=\"code-patterns\"}");
    says(&run, "curl -fsS -X POST");
    assert!(!run.stderr.contains("as it was before"), "{}", run.stderr);
    // aimem did not roll back under the running recovery: it ends with the backup's points.
    assert!(env.double.wait_for_recoveries(Duration::from_secs(10)));
    assert_eq!(
        env.double.point_ids("code-patterns").unwrap(),
        (1..=30).collect::<Vec<_>>()
    );
    let uploads_after: usize = uploads(&env.double);
    assert_eq!(uploads_after, 1, "no rollback upload");
}

#[test]
fn without_metrics_a_lost_upload_is_exit_5_not_a_claimed_rollback() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--no-stream", "--collection", "github"]);
    env.double.upsert_points("github", &[999]);
    lose_the_upload_without_metrics(&env);
    let run = restore(&env, &[backup.to_str().unwrap(), "--force"]);
    run.assert_code(5);
    says(&run, "cannot tell whether Qdrant is still recovering it");
    says(&run, "curl -fsS -X POST");
    assert!(!run.stderr.contains("as it was before"), "{}", run.stderr);
}

#[test]
fn an_upload_refused_by_a_proxy_changed_nothing_and_needs_no_rollback_upload() {
    let env = TestEnv::ai_memory();
    let (backup, before) = stored_then_changed(&env, "conventions", &[250]);
    // nginx's default client_max_body_size: every upload, the rollback's too, gets a 413.
    env.double.inject(Fault::always(
        Some("POST"),
        "/snapshots/upload",
        FaultKind::PlainStatus {
            code: 413,
            body: "<html><center><h1>413 Request Entity Too Large</h1></center></html>".into(),
        },
    ));
    let run = restore(&env, &[backup.to_str().unwrap(), "--force"]);
    run.assert_code(4);
    says(&run, "nothing had been changed yet");
    assert_eq!(
        uploads(&env.double),
        1,
        "no rollback upload for an untouched collection"
    );
    assert_eq!(state(&env.double, "conventions"), before);
    assert!(all_snapshots(&env.double, &["conventions"]).is_empty());
    no_prerestore_left(&env);
}

#[test]
fn an_upload_failing_into_a_fresh_server_leaves_it_empty() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--no-stream"]);
    let target = empty_server();
    // The third collection fails: the two restored before it must go too.
    target.inject(Fault::new(
        Some("POST"),
        "/collections/discussions/snapshots/upload",
        FaultKind::UploadFailAfterClear,
    ));
    let run = restore_to(&env, &target, &[backup.to_str().unwrap(), "--force"]);
    run.assert_code(4)
        .assert_stderr_contains("created by this restore) deleted");
    assert!(
        target.collection_names().is_empty(),
        "{:?}",
        target.collection_names()
    );
}

#[test]
fn a_failed_post_restore_check_is_rolled_back() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--collection", "jira-data"]);
    edit_manifest(&backup, |m| {
        m["collections"]["jira-data"]["records"] = 31.into()
    });
    let before = state(&env.double, "jira-data");
    env.double.upsert_points("jira-data", &[77]);
    let before_with_extra = state(&env.double, "jira-data");
    assert_ne!(before, before_with_extra);
    restore(&env, &[backup.to_str().unwrap(), "--force"])
        .assert_code(4)
        .assert_stderr_contains("the backup recorded 31");
    assert_eq!(state(&env.double, "jira-data"), before_with_extra);
}

#[test]
fn a_failed_rollback_is_exit_5_and_keeps_the_pre_restore_snapshot() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--no-stream", "--collection", "discussions"]);
    fail_restore_and_rollback(&env);
    let run = restore(&env, &[backup.to_str().unwrap(), "--force"]);
    run.assert_code(5)
        .assert_stderr_contains("rollback failed")
        .assert_stderr_contains("curl -fsS -X POST");
    let kept: Vec<String> = env
        .root_entries()
        .into_iter()
        .filter(|e| e.starts_with(".aimem-prerestore-"))
        .collect();
    assert_eq!(kept.len(), 1, "{:?}", env.root_entries());
    let local = env.root().join(&kept[0]).join("discussions.snapshot");
    assert!(local.is_file());
    assert!(
        run.stderr.contains(local.to_str().unwrap()),
        "the path must be named:\n{}",
        run.stderr
    );
    // The server-side pre-restore snapshot is kept as well.
    assert!(
        env.double
            .snapshot_names("discussions")
            .iter()
            .any(|n| n.starts_with("discussions-")),
        "{:?}",
        env.double.snapshot_names("discussions")
    );
}

#[test]
fn overwriting_without_a_terminal_and_without_force_is_refused() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&[]);
    env.double.clear_requests();
    restore(&env, &[backup.to_str().unwrap()])
        .assert_code(1)
        .assert_stderr_contains("--force");
    assert_eq!(writes(&env.double), Vec::<String>::new());
}

#[test]
fn a_dry_run_changes_nothing_on_the_server_or_disk() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&[]);
    env.double.upsert_points("github", &[1234]);
    let before: Vec<_> = AI_MEMORY_COLLECTIONS
        .iter()
        .map(|c| state(&env.double, c))
        .collect();
    let root_before = env.root_entries();
    env.double.clear_requests();
    let run = restore(
        &env,
        &[
            backup.to_str().unwrap(),
            "--dry-run",
            "--force",
            "--restore-config",
        ],
    );
    run.assert_code(0)
        .assert_stderr_contains("Dry run")
        .assert_stderr_contains("github: overwrite its 31 points");
    assert_eq!(writes(&env.double), Vec::<String>::new());
    let after: Vec<_> = AI_MEMORY_COLLECTIONS
        .iter()
        .map(|c| state(&env.double, c))
        .collect();
    assert_eq!(after, before);
    assert_eq!(env.root_entries(), root_before);

    // Into an empty server: nothing is created.
    let target = empty_server();
    restore_to(&env, &target, &[backup.to_str().unwrap(), "--dry-run"])
        .assert_code(0)
        .assert_stderr_contains("create from the backup's schema");
    assert!(target.collection_names().is_empty());
    // Without --force and without a terminal it still checks everything (it changes nothing),
    // and says what the real run would need.
    restore(&env, &[backup.to_str().unwrap(), "--dry-run"])
        .assert_code(0)
        .assert_stderr_contains("needs --force");
}

#[test]
fn target_name_requires_collection() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--collection", "discussions"]);
    restore(&env, &[backup.to_str().unwrap(), "--target-name", "x"])
        .assert_code(1)
        .assert_stderr_contains("--collection");
    assert!(env.double.collection_info("x").is_none());
}

#[test]
fn target_name_restores_into_another_name_leaving_the_original_untouched() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--collection", "discussions"]);
    env.double.upsert_points("discussions", &[40, 41]);
    let original = state(&env.double, "discussions");
    let run = restore(
        &env,
        &[
            backup.to_str().unwrap(),
            "--collection",
            "discussions",
            "--target-name",
            "discussions_staging",
        ],
    );
    run.assert_code(0);
    assert_eq!(state(&env.double, "discussions"), original);
    assert_eq!(
        fingerprint(&env.double, "discussions_staging"),
        fingerprint(&env.double, "discussions")
    );
    assert_eq!(
        env.double.point_ids("discussions_staging").unwrap(),
        (1..=30).collect::<Vec<_>>()
    );
}

#[test]
fn version_skew_is_refused_unless_allowed() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--collection", "github"]);
    let older = Double::start(Config {
        api_key: Some(KEY.to_string()),
        version: "1.16.1".to_string(),
        ..Config::default()
    });
    restore_to(&env, &older, &[backup.to_str().unwrap()])
        .assert_code(2)
        .assert_stderr_contains("Qdrant 1.18.3")
        .assert_stderr_contains("1.16.1");
    assert!(older.collection_names().is_empty());
    restore_to(
        &env,
        &older,
        &[backup.to_str().unwrap(), "--allow-version-skew"],
    )
    .assert_code(0);
    let next = Double::start(Config {
        api_key: Some(KEY.to_string()),
        version: "1.19.0".to_string(),
        ..Config::default()
    });
    restore_to(&env, &next, &[backup.to_str().unwrap()])
        .assert_code(0)
        .assert_stderr_contains("next minor release");
}

#[test]
fn restore_config_writes_verified_files_atomically_with_their_modes() {
    let env = TestEnv::ai_memory();
    let install = env.install();
    let files = [
        (".claude/settings.json", "{\"a\":1}"),
        (".env", "A=1\n"),
        ("docker/.env", "B=2\n"),
        ("docker/.env.secrets", "QDRANT_API_KEY=s3cret\n"),
    ];
    for (path, content) in files {
        let path = install.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    let backup = env.backup(&["--collection", "github"]);
    for (path, _) in files {
        std::fs::write(install.join(path), "changed").unwrap();
    }
    std::fs::remove_file(install.join("docker/.env")).unwrap();
    // A file in the backup that the manifest does not list is ignored.
    std::fs::write(backup.join("config/extra.conf"), "x").unwrap();
    restore(
        &env,
        &[backup.to_str().unwrap(), "--force", "--restore-config"],
    )
    .assert_code(0);
    for (path, content) in files {
        assert_eq!(
            std::fs::read_to_string(install.join(path)).unwrap(),
            content,
            "{path}"
        );
    }
    assert_eq!(mode(&install.join(".claude/settings.json")), 0o644);
    assert_eq!(mode(&install.join(".env")), 0o644);
    assert_eq!(mode(&install.join("docker/.env")), 0o644);
    assert_eq!(mode(&install.join("docker/.env.secrets")), 0o600);
    assert!(!install.join("extra.conf").exists());
    let leftovers: Vec<_> = std::fs::read_dir(install.join("docker"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".aimem-restore-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn without_restore_config_no_config_file_is_written() {
    let env = TestEnv::ai_memory();
    let install = env.install();
    std::fs::write(install.join(".env"), "A=1\n").unwrap();
    let backup = env.backup(&["--collection", "github"]);
    std::fs::write(install.join(".env"), "changed").unwrap();
    restore(&env, &[backup.to_str().unwrap(), "--force"]).assert_code(0);
    assert_eq!(
        std::fs::read_to_string(install.join(".env")).unwrap(),
        "changed"
    );
}

#[test]
fn ctrl_c_during_a_restore_rolls_back_and_exits_130() {
    let env = TestEnv::ai_memory();
    let (backup, before) = backed_up_then_changed(&env, "conventions", &[300, 301]);
    // The server answers the upload late; the signal arrives meanwhile.
    env.double.inject(Fault::new(
        Some("POST"),
        "/snapshots/upload",
        FaultKind::Delay(std::time::Duration::from_millis(1500)),
    ));
    let child = env
        .command(&["restore", backup.to_str().unwrap(), "--force"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while uploads(&env.double) == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(uploads(&env.double), 1, "the upload never started");
    let killed = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let run = super::support::to_run(child.wait_with_output().unwrap());
    run.assert_code(130);
    says(&run, "rolled back");
    assert_eq!(state(&env.double, "conventions"), before);
    no_prerestore_left(&env);
}

/// Starts `aimem restore`, waits until `ready` says the moment has come, sends `signal`.
fn restore_signalled(env: &TestEnv, args: &[&str], signal: &str, ready: impl Fn() -> bool) -> Run {
    let mut all = vec!["restore"];
    all.extend_from_slice(args);
    let child = env
        .command(&all)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !ready() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(ready(), "the moment to signal never came");
    let killed = std::process::Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    super::support::to_run(child.wait_with_output().unwrap())
}

#[test]
fn ctrl_c_while_qdrant_recovers_waits_for_it_then_rolls_back() {
    let env = TestEnv::ai_memory();
    let (backup, before) = stored_then_changed(&env, "conventions", &[300, 301]);
    env.double.inject(Fault::new(
        Some("POST"),
        "/snapshots/upload",
        FaultKind::SlowRecovery {
            takes: Duration::from_millis(2000),
            answer: LateAnswer::Wait,
        },
    ));
    let double = &env.double;
    let run = restore_signalled(
        &env,
        &[backup.to_str().unwrap(), "--force"],
        "-TERM",
        || double.recoveries_running() > 0,
    );
    run.assert_code(143);
    says(
        &run,
        "waiting for Qdrant to finish recovering `conventions`, then rolling back (Ctrl-C again stops waiting",
    );
    says(&run, "rolled back");
    assert_eq!(state(&env.double, "conventions"), before);
    assert!(all_snapshots(&env.double, &["conventions"]).is_empty());
    no_prerestore_left(&env);
}

#[test]
fn ctrl_c_while_the_pre_restore_snapshot_is_built_waits_and_deletes_it() {
    let env = TestEnv::ai_memory();
    let (backup, before) = stored_then_changed(&env, "discussions", &[90]);
    env.double.clear_requests();
    env.double.inject(Fault::new(
        Some("POST"),
        "/collections/discussions/snapshots",
        FaultKind::Delay(Duration::from_millis(1500)),
    ));
    let double = &env.double;
    let run = restore_signalled(&env, &[backup.to_str().unwrap(), "--force"], "-INT", || {
        double
            .requests()
            .iter()
            .any(|r| r.method == "POST" && r.path == "/collections/discussions/snapshots")
    });
    run.assert_code(130);
    says(
        &run,
        "waiting for Qdrant to finish the pre-restore snapshot of `discussions` so it can be deleted",
    );
    assert_eq!(uploads(&env.double), 0);
    assert_eq!(state(&env.double, "discussions"), before);
    assert!(
        all_snapshots(&env.double, &["discussions"]).is_empty(),
        "{:?}",
        all_snapshots(&env.double, &["discussions"])
    );
    no_prerestore_left(&env);
}

#[test]
fn a_failed_config_restore_puts_back_the_files_it_replaced_and_keeps_links() {
    let env = TestEnv::ai_memory();
    let install = env.install();
    std::fs::create_dir_all(install.join("docker")).unwrap();
    std::fs::write(install.join("real.env"), "A=1\n").unwrap();
    std::os::unix::fs::symlink("real.env", install.join(".env")).unwrap();
    std::fs::write(install.join("docker/.env.secrets"), "S=1\n").unwrap();
    let backup = env.backup(&["--collection", "github"]);
    std::fs::write(install.join("real.env"), "A=changed\n").unwrap();
    // The last file cannot be written: the rollback must put .env back.
    std::fs::remove_file(install.join("docker/.env.secrets")).unwrap();
    std::fs::create_dir(install.join("docker/.env.secrets")).unwrap();
    let run = restore(
        &env,
        &[backup.to_str().unwrap(), "--force", "--restore-config"],
    );
    run.assert_code(4);
    says(
        &run,
        &format!("config file {} put back", install.join(".env").display()),
    );
    let link = install.join(".env").symlink_metadata().unwrap();
    assert!(link.file_type().is_symlink(), ".env must still be a link");
    assert_eq!(
        std::fs::read_to_string(install.join("real.env")).unwrap(),
        "A=changed\n"
    );
}

#[test]
fn a_config_restore_writes_through_a_link() {
    let env = TestEnv::ai_memory();
    let install = env.install();
    std::fs::write(install.join("real.env"), "A=1\n").unwrap();
    std::os::unix::fs::symlink("real.env", install.join(".env")).unwrap();
    let backup = env.backup(&["--collection", "github"]);
    std::fs::write(install.join("real.env"), "A=changed\n").unwrap();
    restore(
        &env,
        &[backup.to_str().unwrap(), "--force", "--restore-config"],
    )
    .assert_code(0);
    assert!(
        install
            .join(".env")
            .symlink_metadata()
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        std::fs::read_to_string(install.join("real.env")).unwrap(),
        "A=1\n"
    );
}

#[test]
fn links_in_the_backup_are_refused() {
    let env = TestEnv::ai_memory();
    let install = env.install();
    std::fs::write(install.join(".env"), "A=1\n").unwrap();
    let backup = env.backup(&["--no-stream", "--collection", "github"]);
    // The snapshot replaced by a link to a copy elsewhere: identical bytes, still refused.
    let elsewhere = env.tmp.path().join("elsewhere.snapshot");
    let snapshot = backup.join("qdrant/github.snapshot");
    std::fs::rename(&snapshot, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &snapshot).unwrap();
    let target = empty_server();
    for extra in [None, Some("--skip-checksum-verify")] {
        let mut args = vec![backup.to_str().unwrap(), "--force"];
        args.extend(extra);
        let run = restore_to(&env, &target, &args);
        run.assert_code(2);
        says(&run, "is a symbolic link");
        assert_eq!(uploads(&target), 0);
    }
    std::fs::remove_file(&snapshot).unwrap();
    std::fs::rename(&elsewhere, &snapshot).unwrap();
    // A linked config file in the backup is not written.
    let config = backup.join("config/.env");
    let outside = env.tmp.path().join("outside.env");
    std::fs::rename(&config, &outside).unwrap();
    std::os::unix::fs::symlink(&outside, &config).unwrap();
    std::fs::write(install.join(".env"), "A=changed\n").unwrap();
    // The checksum check already refuses a backup holding a link...
    let run = restore_to(
        &env,
        &target,
        &[backup.to_str().unwrap(), "--force", "--restore-config"],
    );
    run.assert_code(2);
    says(&run, "is a symbolic link");
    // ...and without it, the linked file is still never written.
    let run = restore_to(
        &env,
        &target,
        &[
            backup.to_str().unwrap(),
            "--force",
            "--restore-config",
            "--skip-checksum-verify",
        ],
    );
    run.assert_code(0);
    says(&run, "is a symbolic link; aimem does not follow links");
    assert_eq!(
        std::fs::read_to_string(install.join(".env")).unwrap(),
        "A=changed\n"
    );
}

#[test]
fn pre_restore_snapshots_go_beside_the_backup_not_into_the_current_folder() {
    let env = TestEnv::ai_memory();
    let made = env.backup(&["--no-stream", "--collection", "discussions"]);
    let elsewhere = env.tmp.path().join("mnt/backups");
    let backup = elsewhere.join("b1");
    super::support::copy_dir(&made, &backup);
    let cwd = env.tmp.path().join("cwd");
    std::fs::create_dir_all(&cwd).unwrap();
    fail_restore_and_rollback(&env);
    let run = env.run_with(&["restore", backup.to_str().unwrap(), "--force"], |c| {
        c.current_dir(&cwd).env_remove("AI_MEMORY_BACKUP_DIR");
    });
    run.assert_code(5);
    assert!(
        !cwd.join("backups").exists(),
        "nothing in the current folder"
    );
    let kept: Vec<String> = std::fs::read_dir(&elsewhere)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".aimem-prerestore-"))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    let local = elsewhere.join(&kept[0]).join("discussions.snapshot");
    assert!(local.is_file());
    assert!(
        run.stderr.contains(local.to_str().unwrap()),
        "{}",
        run.stderr
    );
}

#[test]
#[cfg_attr(
    not(debug_assertions),
    ignore = "uses AIMEM_TEST_FREE_SPACE, which exists only in debug builds"
)]
fn no_room_for_the_pre_restore_snapshot_refuses_before_any_change() {
    let env = TestEnv::ai_memory();
    let (backup, before) = backed_up_then_changed(&env, "discussions", &[55]);
    env.double.clear_requests();
    let run = env.run_with(&["restore", backup.to_str().unwrap(), "--force"], |c| {
        c.env("AIMEM_TEST_FREE_SPACE", "1000");
    });
    // The disk-space status of the guide's table.
    run.assert_code(3);
    says(&run, "nothing was changed");
    says(&run, "not enough free space");
    assert_eq!(writes(&env.double), Vec::<String>::new());
    assert_eq!(state(&env.double, "discussions"), before);
    no_prerestore_left(&env);
}

#[test]
fn a_custom_sharded_collection_is_not_created_from_its_fingerprint() {
    let env = TestEnv::new();
    env.double
        .seed_from_fixture("tenants", "collections/info-custom-sharding.json", 0);
    let backup = env.backup(&["--collection", "tenants"]);
    let target = empty_server();
    let run = restore_to(&env, &target, &[backup.to_str().unwrap(), "--force"]);
    run.assert_code(2);
    says(&run, "custom sharding");
    says(&run, "shard keys");
    assert!(target.collection_names().is_empty(), "nothing was created");
}

#[test]
fn ctrl_c_cuts_an_upload_for_good_even_while_the_rollback_runs() {
    let env = TestEnv::ai_memory();
    // discussions (restored after code-patterns and conventions) gets a 32 MiB snapshot: far
    // more than the socket buffers hold, so its upload blocks while the server does not read.
    env.double
        .set_snapshot_filler("discussions", 32 * 1024 * 1024);
    let backup = env.backup(&["--no-stream"]);
    env.double.upsert_points("discussions", &[300, 301]);
    let before = state(&env.double, "discussions");
    env.double.inject(Fault::new(
        Some("POST"),
        "/collections/discussions/snapshots/upload",
        FaultKind::Delay(Duration::from_secs(3)),
    ));
    let double = &env.double;
    let upload_seen = std::cell::OnceCell::new();
    let started = std::time::Instant::now();
    let run = restore_signalled(&env, &[backup.to_str().unwrap(), "--force"], "-INT", || {
        let uploading = double
            .requests()
            .iter()
            .any(|r| r.method == "POST" && r.path == "/collections/discussions/snapshots/upload");
        if !uploading {
            return false;
        }
        // Let the body fill the socket buffers, then make the rollback of conventions (restored
        // already) outlast the server's pause: a body still going out would be recovered then.
        let seen = *upload_seen.get_or_init(std::time::Instant::now);
        if seen.elapsed() < Duration::from_millis(300) {
            return false;
        }
        double.inject(Fault::new(
            Some("POST"),
            "/collections/conventions/snapshots/upload",
            FaultKind::Delay(Duration::from_secs(6)),
        ));
        true
    });
    run.assert_code(130);
    says(&run, "rolled back");
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "Ctrl-C waited for the stalled upload"
    );
    // Well after the server's pause: the cut body was never recovered.
    assert_eq!(state(&env.double, "discussions"), before);
    no_prerestore_left(&env);
}

#[test]
fn ctrl_c_during_a_stalled_pre_restore_download_leaves_nothing_behind() {
    let env = TestEnv::ai_memory();
    env.double
        .set_snapshot_filler("discussions", 4 * 1024 * 1024);
    let backup = env.backup(&["--no-stream", "--collection", "discussions"]);
    let before = state(&env.double, "discussions");
    env.double.clear_requests();
    env.double.inject(Fault::new(
        Some("GET"),
        "/collections/discussions/snapshots/",
        FaultKind::StallBody {
            after_bytes: 100_000,
            stall: Duration::from_secs(20),
        },
    ));
    let double = &env.double;
    let seen = std::cell::OnceCell::new();
    let started = std::time::Instant::now();
    let run = restore_signalled(&env, &[backup.to_str().unwrap(), "--force"], "-INT", || {
        let downloading = double.requests().iter().any(|r| {
            r.method == "GET" && r.path.starts_with("/collections/discussions/snapshots/")
        });
        downloading
            && seen.get_or_init(std::time::Instant::now).elapsed() > Duration::from_millis(300)
    });
    run.assert_code(130);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "Ctrl-C waited for the stalled download"
    );
    assert_eq!(state(&env.double, "discussions"), before);
    no_prerestore_left(&env);
}

#[test]
fn a_point_written_just_before_the_pre_restore_snapshot_does_not_fail_the_rollback() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--no-stream", "--collection", "github"]);
    // While the pre-restore snapshot is built a point arrives; then the upload fails after
    // clearing the collection, and the rollback must accept what the snapshot holds.
    env.double.inject(Fault::new(
        Some("POST"),
        "/collections/github/snapshots",
        FaultKind::Delay(Duration::from_millis(1500)),
    ));
    env.double.inject(Fault::new(
        Some("POST"),
        "/snapshots/upload",
        FaultKind::UploadFailAfterClear,
    ));
    env.double.clear_requests();
    let child = env
        .command(&["restore", backup.to_str().unwrap(), "--force"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Once the pre-restore snapshot is asked for (after the count before it), a point arrives.
    wait_for_request(&env.double, "POST", |p| p.ends_with("/github/snapshots"));
    env.double.upsert_points("github", &[4242]);
    let run = super::support::to_run(child.wait_with_output().unwrap());
    run.assert_code(4);
    says(&run, "rolled back");
    assert_eq!(env.double.point_ids("github").unwrap().len(), 31);
}

/// Runs `aimem restore ARGS` on a pseudo-terminal, typing `answer` at the confirmation prompt.
fn restore_on_a_terminal(env: &TestEnv, args: &[&str], answer: &str) -> Run {
    let args: Vec<&str> = std::iter::once("restore")
        .chain(args.iter().copied())
        .collect();
    super::support::run_on_a_terminal(env, &args, "Continue?", answer)
}

#[test]
fn on_a_terminal_the_restore_asks_first_and_no_changes_nothing() {
    let env = TestEnv::ai_memory();
    let (backup, before) = backed_up_then_changed(&env, "github", &[500]);
    let path = backup.to_str().unwrap();
    let declined = restore_on_a_terminal(&env, &[path], "n\n");
    declined.assert_code(1);
    assert!(declined.stdout.contains("Continue?"), "{}", declined.stdout);
    assert!(
        declined.stdout.contains("nothing was changed"),
        "{}",
        declined.stdout
    );
    assert_eq!(state(&env.double, "github"), before);
    no_prerestore_left(&env);
    let accepted = restore_on_a_terminal(&env, &[path], "y\n");
    accepted.assert_code(0);
    assert_eq!(
        env.double.point_ids("github").unwrap().len(),
        30,
        "the backup's points"
    );
}
