//! `aimem backup --jobs N`: several collections at a time, with the same result as one at a time.

use std::path::Path;
use std::time::Duration;

use qdrant_double::{AI_MEMORY_COLLECTIONS, Fault, FaultKind};
use serde_json::Value;

use super::support::{TestEnv, json_stdout, manifest, sha256sum_check};

/// Long enough that a second job's requests reach the double while the first creation is
/// still being "built"; no assertion depends on how long anything takes.
const BUILD: Duration = Duration::from_millis(1200);

/// Every snapshot creation takes a while, as on a real server.
fn slow_creations(env: &TestEnv) {
    env.double.inject(Fault::always(
        Some("POST"),
        "/snapshots",
        FaultKind::Delay(BUILD),
    ));
}

/// (method, collection) of each snapshot creation and deletion the double received, in order.
fn snapshot_creates_and_deletes(env: &TestEnv) -> Vec<(String, String)> {
    env.double
        .requests()
        .into_iter()
        .filter_map(|r| {
            let rest = r.path.strip_prefix("/collections/")?;
            let (collection, tail) = rest.split_once('/')?;
            let is_create = r.method == "POST" && tail == "snapshots";
            let is_delete = r.method == "DELETE" && tail.starts_with("snapshots/");
            (is_create || is_delete).then(|| (r.method.clone(), collection.to_string()))
        })
        .collect()
}

fn event(method: &str, collection: &str) -> (String, String) {
    (method.to_string(), collection.to_string())
}

/// No backup folder, no staging folder, no snapshot left on the server.
#[track_caller]
fn assert_nothing_left(env: &TestEnv) {
    assert_eq!(
        env.root_entries(),
        Vec::<String>::new(),
        "the backup root must be empty"
    );
    assert_eq!(
        env.server_snapshots(),
        0,
        "server snapshots must be deleted"
    );
}

/// The manifest without what differs between any two runs (its date).
fn manifest_without_date(backup: &Path) -> Value {
    let mut value = manifest(backup);
    value
        .as_object_mut()
        .expect("manifest object")
        .remove("backup_date");
    value
}

/// `CHECKSUMS.sha256` lines without the manifest's (it holds the date).
fn checksum_lines(backup: &Path) -> Vec<String> {
    std::fs::read_to_string(backup.join("CHECKSUMS.sha256"))
        .expect("checksums")
        .lines()
        .filter(|line| !line.ends_with("  manifest.json"))
        .map(str::to_string)
        .collect()
}

#[test]
fn jobs_3_writes_the_same_manifest_checksums_and_json_as_jobs_1() {
    let env = TestEnv::ai_memory();
    std::fs::create_dir_all(env.install().join("docker")).expect("docker dir");
    std::fs::write(env.install().join("docker/.env"), "QDRANT_API_KEY=x\n").expect(".env");
    // The first collection's snapshot takes longest: with --jobs 3 it finishes after others
    // that were started later, so completion order differs from the planned order.
    env.double.inject(Fault::always(
        Some("POST"),
        "/collections/discussions/snapshots",
        FaultKind::Delay(BUILD),
    ));
    let backup = |jobs: &str, folder: &str| {
        let output = env.root().join(folder);
        let run = env.run(&[
            "backup",
            "--no-stream",
            "--jobs",
            jobs,
            "--json",
            "--output",
            output.to_str().expect("utf-8"),
        ]);
        run.assert_code(0);
        let report = json_stdout(&run);
        let dir = report["folder"].as_str().expect("folder").to_string();
        (Path::new(&dir).to_path_buf(), report)
    };
    let (one, one_report) = backup("1", "one");
    let (three, three_report) = backup("3", "three");

    let order = snapshot_creates_and_deletes(&env);
    let last_delete = order
        .iter()
        .rposition(|e| e.0 == "DELETE")
        .expect("deletes");
    assert_eq!(
        order[last_delete],
        event("DELETE", "discussions"),
        "with --jobs 3 the slow first collection should finish last: {order:?}"
    );

    assert_eq!(manifest_without_date(&one), manifest_without_date(&three));
    let lines = checksum_lines(&one);
    assert_eq!(lines.len(), AI_MEMORY_COLLECTIONS.len() + 1, "{lines:?}");
    assert_eq!(lines, checksum_lines(&three));
    assert_eq!(sha256sum_check(&three).code, 0);
    let names = |report: &Value| -> Vec<Value> {
        report["collections"]
            .as_array()
            .expect("collections")
            .iter()
            .map(|c| c["name"].clone())
            .collect()
    };
    assert_eq!(names(&one_report), names(&three_report));
    let expected: Vec<Value> = AI_MEMORY_COLLECTIONS
        .iter()
        .map(|c| Value::from(*c))
        .collect();
    assert_eq!(names(&three_report), expected);
}

#[test]
fn a_failed_creation_with_jobs_3_starts_no_more_and_leaves_nothing_behind() {
    let env = TestEnv::ai_memory();
    // The first two are still being built when the third one's creation fails.
    for collection in ["discussions", "conventions"] {
        env.double.inject(Fault::always(
            Some("POST"),
            &format!("/collections/{collection}/snapshots"),
            FaultKind::Delay(BUILD),
        ));
    }
    env.double.inject(Fault::always(
        Some("POST"),
        "/collections/code-patterns/snapshots",
        FaultKind::Status {
            code: 500,
            message: "Service internal error: No space left on device".into(),
        },
    ));
    let run = env.run(&["backup", "--no-stream", "--jobs", "3"]);
    run.assert_code(2)
        .assert_stderr_contains("code-patterns")
        .assert_stderr_contains("No space left on device");
    assert_nothing_left(&env);
    let created: Vec<String> = snapshot_creates_and_deletes(&env)
        .into_iter()
        .filter(|(method, _)| method == "POST")
        .map(|(_, collection)| collection)
        .collect();
    assert_eq!(
        created.len(),
        3,
        "no collection is started after the failure: {created:?}"
    );
    for collection in ["discussions", "conventions", "code-patterns"] {
        assert!(created.iter().any(|c| c == collection), "{created:?}");
    }
}

#[test]
fn a_dropped_download_with_jobs_3_leaves_nothing_behind() {
    let env = TestEnv::ai_memory();
    slow_creations(&env);
    env.double.inject(Fault::new(
        Some("GET"),
        "/collections/conventions/snapshots/",
        FaultKind::TruncateBody { after_bytes: 1000 },
    ));
    let run = env.run(&["backup", "--no-stream", "--jobs", "3"]);
    run.assert_code(2).assert_stderr_contains("conventions");
    assert_nothing_left(&env);
}

#[test]
fn jobs_2_asks_for_the_next_snapshot_while_the_first_is_built() {
    let env = TestEnv::ai_memory();
    slow_creations(&env);
    let backup = env.backup(&["--no-stream", "--jobs", "2"]);
    assert_eq!(sha256sum_check(&backup).code, 0);
    let order = snapshot_creates_and_deletes(&env);
    let at = |e: (String, String)| {
        order
            .iter()
            .position(|x| *x == e)
            .unwrap_or_else(|| panic!("{e:?} missing from {order:?}"))
    };
    assert!(
        at(event("POST", "conventions")) < at(event("DELETE", "discussions")),
        "the second creation must not wait for the first collection to finish: {order:?}"
    );
    // Never more than two collections in flight at once.
    let mut in_flight = 0usize;
    for (method, _) in &order {
        in_flight = if method == "POST" {
            in_flight + 1
        } else {
            in_flight - 1
        };
        assert!(in_flight <= 2, "more than 2 jobs in flight: {order:?}");
    }
    assert_eq!(env.server_snapshots(), 0);
}

#[test]
fn jobs_1_backs_up_one_collection_after_another() {
    let env = TestEnv::ai_memory();
    slow_creations(&env);
    env.backup(&["--no-stream", "--jobs", "1"]);
    let expected: Vec<(String, String)> = AI_MEMORY_COLLECTIONS
        .iter()
        .flat_map(|c| [event("POST", c), event("DELETE", c)])
        .collect();
    assert_eq!(snapshot_creates_and_deletes(&env), expected);
}

#[test]
fn backup_jobs_from_the_environment_and_its_range() {
    let env = TestEnv::ai_memory();
    slow_creations(&env);
    let run = env.run_with(&["backup", "--no-stream"], |c| {
        c.env("BACKUP_JOBS", "1");
    });
    run.assert_code(0);
    let expected: Vec<(String, String)> = AI_MEMORY_COLLECTIONS
        .iter()
        .flat_map(|c| [event("POST", c), event("DELETE", c)])
        .collect();
    assert_eq!(snapshot_creates_and_deletes(&env), expected);
    for out_of_range in ["0", "17"] {
        let run = env.run(&["backup", "--no-stream", "--jobs", out_of_range]);
        assert_ne!(run.code, 0, "--jobs {out_of_range} must be refused");
        run.assert_stderr_contains("1..=16");
    }
}
