//! `aimem restore` without needless round trips: payload indexes queued, not awaited one by
//! one, and `--jobs N` collections at once (a failure still rolls all of them back).

use std::time::Duration;

use aimem::fingerprint::Fingerprint;
use qdrant_double::{AI_MEMORY_COLLECTIONS, Config, Double, Fault, FaultKind, LateAnswer};
use serde_json::Value;

use super::support::{KEY, Run, TestEnv, to_run};

/// An empty server whose index builds take a while, as a real Qdrant's do.
fn slow_index_server() -> Double {
    Double::start(Config {
        api_key: Some(KEY.to_string()),
        index_create_delay: Some(Duration::from_millis(50)),
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

fn fingerprint(server: &Double, name: &str) -> Fingerprint {
    let info = server
        .collection_info(name)
        .unwrap_or_else(|| panic!("`{name}` is not on the server"));
    Fingerprint::from_collection_info(&info).expect("fingerprint")
}

#[test]
fn payload_indexes_are_queued_without_waiting_then_checked_once_all_are_sent() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&[]);
    let target = slow_index_server();
    restore_to(&env, &target, &[backup.to_str().unwrap()]).assert_code(0);
    let requests = target.requests();
    for name in AI_MEMORY_COLLECTIONS {
        assert_eq!(
            fingerprint(&target, name),
            fingerprint(&env.double, name),
            "{name}"
        );
        assert_eq!(target.point_ids(name), env.double.point_ids(name), "{name}");
        let index_path = format!("/collections/{name}/index");
        let info_path = format!("/collections/{name}");
        let indexes: Vec<usize> = requests
            .iter()
            .enumerate()
            .filter(|(_, r)| r.method == "PUT" && r.path == index_path)
            .map(|(i, _)| i)
            .collect();
        let wanted = fingerprint(&env.double, name).payload_indexes().len();
        assert!(wanted > 0, "{name} has payload indexes to restore");
        assert_eq!(indexes.len(), wanted, "{name}: one request per index");
        for &i in &indexes {
            assert_eq!(
                requests[i].query.get("wait").map(String::as_str),
                Some("false"),
                "{name}: an index request waits for its build"
            );
        }
        // Every index of the collection is asked for before the first look at whether they
        // are there.
        let first_look = requests
            .iter()
            .position(|r| r.method == "GET" && r.path == info_path)
            .unwrap_or_else(|| panic!("{name}: its info was never read"));
        assert!(
            indexes.iter().all(|&i| i < first_look),
            "{name}: index requests interleaved with the checks"
        );
    }
}

#[test]
fn an_index_that_never_appears_fails_the_restore_and_rolls_it_back() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&[]);
    let target = slow_index_server();
    let victim = AI_MEMORY_COLLECTIONS[0];
    target.inject(Fault::new(
        Some("PUT"),
        &format!("/collections/{victim}/index"),
        FaultKind::IndexNeverApplied,
    ));
    let run = restore_to(
        &env,
        &target,
        &[backup.to_str().unwrap(), "--request-timeout", "2"],
    );
    run.assert_code(4)
        .assert_stderr_contains("rolled back")
        .assert_stderr_contains("did not appear");
    assert!(
        target.collection_names().is_empty(),
        "fresh collections are deleted again: {:?}",
        target.collection_names()
    );
    assert!(
        !target
            .requests()
            .iter()
            .any(|r| r.path == format!("/collections/{victim}/snapshots/upload")),
        "nothing was uploaded into a collection missing an index"
    );
}

fn empty_server() -> Double {
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

/// The collection a request is about (`/collections/{c}/…`), if any.
fn collection_of(path: &str) -> Option<String> {
    let mut parts = path.split('/').skip(1);
    match (parts.next(), parts.next()) {
        (Some("collections"), Some(c)) if !c.is_empty() => Some(c.to_string()),
        _ => None,
    }
}

/// The collections of the server's write requests (creations, indexes, uploads, deletions),
/// in the order they arrived.
fn written_collections(server: &Double) -> Vec<String> {
    server
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET" && !r.path.ends_with("/points/count"))
        .filter_map(|r| collection_of(&r.path))
        .collect()
}

fn uploads(server: &Double) -> usize {
    server
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/snapshots/upload"))
        .count()
}

#[test]
fn jobs_3_sends_the_next_upload_while_one_is_recovering_and_restores_everything() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--no-stream"]);
    let target = empty_server();
    // The first upload recovers for a long time: a sequential restore sends nothing else
    // meanwhile.
    target.inject(Fault::new(
        Some("POST"),
        "/snapshots/upload",
        FaultKind::SlowRecovery {
            takes: Duration::from_secs(20),
            answer: LateAnswer::Wait,
        },
    ));
    let mut command = env.command(&["restore", backup.to_str().unwrap(), "--jobs", "3"]);
    command.env("QDRANT_URL", target.url());
    command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = command.spawn().expect("spawn aimem");
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while uploads(&target) < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let sent_meanwhile = uploads(&target);
    let recovering = target.recoveries_running();
    let run = to_run(child.wait_with_output().expect("wait"));
    run.assert_code(0);
    assert!(
        sent_meanwhile >= 2 && recovering >= 1,
        "a second upload was sent while the first recovered ({sent_meanwhile} uploads, {recovering} recovering)"
    );
    for name in AI_MEMORY_COLLECTIONS {
        assert_eq!(
            fingerprint(&target, name),
            fingerprint(&env.double, name),
            "{name}"
        );
        assert_eq!(target.point_ids(name), env.double.point_ids(name), "{name}");
        assert!(
            target.snapshot_names(name).is_empty(),
            "{name}: upload kept"
        );
    }
}

#[test]
fn jobs_1_restores_one_collection_after_another() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&[]);
    let target = slow_index_server();
    restore_to(&env, &target, &[backup.to_str().unwrap(), "--jobs", "1"]).assert_code(0);
    let order = written_collections(&target);
    let mut seen: Vec<String> = Vec::new();
    for c in order {
        if seen.last() != Some(&c) {
            assert!(
                !seen.contains(&c),
                "`{c}` written again after another collection: {seen:?}"
            );
            seen.push(c);
        }
    }
    let mut all: Vec<String> = AI_MEMORY_COLLECTIONS
        .iter()
        .map(|c| c.to_string())
        .collect();
    all.sort();
    seen.sort();
    assert_eq!(seen, all);
}

#[test]
fn a_failed_upload_with_jobs_3_rolls_every_collection_back() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--no-stream"]);
    let target = empty_server();
    let (existing, fresh) = AI_MEMORY_COLLECTIONS.split_at(3);
    for name in existing {
        target.seed_from_fixture(name, &format!("collections/info-{name}.json"), 7);
    }
    let before: Vec<_> = existing.iter().map(|n| state(&target, n)).collect();
    let victim = fresh[fresh.len() - 1];
    target.inject(Fault::always(
        Some("POST"),
        &format!("/collections/{victim}/snapshots/upload"),
        FaultKind::Status {
            code: 500,
            message: "Service internal error: disk full".into(),
        },
    ));
    let run = restore_to(
        &env,
        &target,
        &[backup.to_str().unwrap(), "--force", "--jobs", "3"],
    );
    run.assert_code(4).assert_stderr_contains("rolled back");
    for (name, was) in existing.iter().zip(&before) {
        assert_eq!(
            &state(&target, name),
            was,
            "`{name}` is back exactly as it was"
        );
    }
    for name in fresh {
        assert!(
            target.collection_info(name).is_none(),
            "`{name}` (created by the restore) is deleted again"
        );
    }
    for name in existing {
        assert!(
            target.snapshot_names(name).is_empty(),
            "{name}: snapshots left"
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
fn a_corrupted_last_snapshot_fails_with_jobs_3_before_anything_changes() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--no-stream"]);
    let target = empty_server();
    let existing = AI_MEMORY_COLLECTIONS[0];
    target.seed_from_fixture(existing, &format!("collections/info-{existing}.json"), 7);
    let before = state(&target, existing);
    // The last collection the restore would get to.
    let manifest = super::support::manifest(&backup);
    let last = manifest["collections"]
        .as_object()
        .and_then(|c| c.keys().next_back().cloned())
        .expect("collections in the manifest");
    let file = backup.join("qdrant").join(format!("{last}.snapshot"));
    let mut bytes = std::fs::read(&file).expect("snapshot");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&file, bytes).expect("corrupt");
    target.clear_requests();
    let run = restore_to(
        &env,
        &target,
        &[backup.to_str().unwrap(), "--force", "--jobs", "3"],
    );
    run.assert_code(2).assert_stderr_contains("checksum");
    assert!(
        written_collections(&target).is_empty(),
        "nothing was written: {:?}",
        target.requests()
    );
    assert_eq!(target.collection_names(), vec![existing.to_string()]);
    assert_eq!(state(&target, existing), before);
}

/// One upload always fails while `--jobs 4` restores five existing collections: what stderr
/// says was put back, the `--json` rollback report and the recovery help are one account.
#[test]
fn the_rollback_report_is_one_account_on_stderr_and_in_json() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--no-stream"]);
    // Every collection gets a point more, so each restore overwrites an existing collection.
    for name in AI_MEMORY_COLLECTIONS {
        env.double.upsert_points(name, &[9999]);
    }
    env.double.inject(Fault::always(
        Some("POST"),
        "/collections/github/snapshots/upload",
        FaultKind::Status {
            code: 500,
            message: "Service internal error: disk broke".into(),
        },
    ));
    let run = env.run(&[
        "restore",
        backup.to_str().unwrap(),
        "--force",
        "--jobs",
        "4",
        "--json",
    ]);
    // github's rollback upload fails as its restore upload did: the rollback is partial.
    run.assert_code(5);
    let doc: Value = serde_json::from_str(&run.stdout).expect("json");
    let rollback = &doc["rollback"];
    let done: Vec<String> = rollback["done"]
        .as_array()
        .expect("done")
        .iter()
        .map(|d| d.as_str().expect("text").to_string())
        .collect();
    // Each collection stderr calls put back is in the JSON account too, and the other way.
    let said_back: Vec<&str> = AI_MEMORY_COLLECTIONS
        .iter()
        .copied()
        .filter(|name| {
            run.stderr
                .contains(&format!("`{name}` recovered from its pre-restore snapshot"))
        })
        .collect();
    let in_json: Vec<&str> = AI_MEMORY_COLLECTIONS
        .iter()
        .copied()
        .filter(|name| done.iter().any(|d| d.contains(&format!("`{name}`"))))
        .collect();
    assert_eq!(said_back, in_json, "stderr: {}\njson: {doc:#}", run.stderr);
    assert!(!in_json.is_empty(), "{doc:#}");
    for collection in doc["collections"].as_array().expect("collections") {
        let name = collection["name"].as_str().unwrap_or_default();
        if in_json.contains(&name) {
            assert_ne!(collection["outcome"], "unknown", "{doc:#}");
        }
    }
    // Nothing put back is listed for a manual re-upload.
    let kept: Vec<&str> = rollback["prerestore_kept"]
        .as_array()
        .map(|k| k.iter().filter_map(|k| k["collection"].as_str()).collect())
        .unwrap_or_default();
    for name in &in_json {
        assert!(!kept.contains(name), "{doc:#}");
    }
    // The server agrees: each collection reported back is as it was (31 points).
    for name in &in_json {
        assert_eq!(
            env.double.point_ids(name).map(|p| p.len()),
            Some(31),
            "{name}"
        );
    }
    // And the recovery help offers a re-upload only for what was not put back.
    for name in &in_json {
        assert!(
            !run.stderr.contains(&format!("{name}.snapshot 'http")),
            "{}",
            run.stderr
        );
    }
}
