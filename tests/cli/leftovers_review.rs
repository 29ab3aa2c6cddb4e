//! The leftovers of dead runs, from journals written here line by line (as a run killed at a
//! chosen point would leave them): aimem deletes on the server only what a journal proves is
//! its own, on the server the journal was written against, and keeps and reports the rest (by
//! every later run and by `list`) until it is gone.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::support::{Run, TestEnv, json_stdout};

/// This machine's name, as aimem reads it.
fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// The double as journals name it (scheme, host and port).
fn server_key(env: &TestEnv) -> String {
    env.double.url()
}

/// The first line of a journal: a run on `host` against `server`, known as `identity` when
/// given.
fn started(server: &str, identity: Option<&str>, host: &str) -> String {
    let mut line = json!({
        "event": "started",
        "owner": {"pid": 4242, "host": host, "started": "2026-01-01T00:00:00+00:00"},
        "server": server,
    });
    if let Some(identity) = identity {
        line["identity"] = json!(identity);
    }
    line.to_string()
}

/// The first line of a journal of a run on this machine against the double.
fn started_here(env: &TestEnv) -> String {
    started(&server_key(env), None, &this_host())
}

fn created(collection: &str, snapshot: &str) -> String {
    json!({"event": "created", "collection": collection, "snapshot": snapshot}).to_string()
}

fn uploading(collection: &str, file: &str) -> String {
    json!({"event": "uploading", "collection": collection, "file": file}).to_string()
}

/// Lines, each ended by a newline.
fn lines(lines: &[String]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

/// A dead backup's staging folder in the backup root, holding `journal`.
fn plant_backup_journal(env: &TestEnv, journal: &str) -> PathBuf {
    let staging = env.root().join(".aimem-staging-2026-01-01_000000-dead");
    std::fs::create_dir_all(&staging).expect("staging");
    std::fs::write(staging.join(".aimem-journal"), journal).expect("journal");
    staging
}

/// A dead restore's journal in the user's state folder (aimem's
/// `~/.local/state/aimem/restores`).
fn plant_restore_journal(env: &TestEnv, name: &str, journal: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let state = env.tmp.path().join("home/.local/state/aimem");
    let restores = state.join("restores");
    std::fs::create_dir_all(&restores).expect("state folder");
    for dir in [&state, &restores] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    }
    let path = restores.join(name);
    std::fs::write(&path, journal).expect("journal");
    path
}

/// Puts a snapshot file named `name` into `collection`'s snapshot folder on the double.
fn put_snapshot(env: &TestEnv, collection: &str, name: &str) {
    let dir = env.double.snapshots_dir().join(collection);
    std::fs::create_dir_all(&dir).expect("snapshot folder");
    std::fs::write(dir.join(name), b"not a real snapshot").expect("snapshot");
}

fn on_server(env: &TestEnv, collection: &str, name: &str) -> bool {
    env.double
        .snapshot_names(collection)
        .contains(&name.to_string())
}

fn backup_github(env: &TestEnv) -> Run {
    let run = env.run(&["backup", "--collection", "github"]);
    run.assert_code(0);
    run
}

/// `list --json`'s leftovers.
fn listed_leftovers(env: &TestEnv) -> Vec<serde_json::Value> {
    let list = env.run(&["list", "--json"]);
    list.assert_code(0);
    json_stdout(&list)["leftovers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[track_caller]
fn assert_kept(path: &Path, run: &Run) {
    assert!(
        path.exists(),
        "{} was removed:\n{}",
        path.display(),
        run.stderr
    );
}

// Finding 4: a record failing aimem's own checks is kept and reported, not counted as cleaned.

#[test]
fn a_snapshot_a_backup_journal_names_under_a_name_aimem_never_gets_is_kept_and_reported() {
    let env = TestEnv::ai_memory();
    let foreign = "conventions-nightly-by-cron.snapshot";
    put_snapshot(&env, "conventions", foreign);
    let staging = plant_backup_journal(
        &env,
        &lines(&[started_here(&env), created("conventions", foreign)]),
    );

    let run = backup_github(&env);
    assert!(on_server(&env, "conventions", foreign));
    // The record stays: every later backup and `list` report it until it is gone.
    assert_kept(&staging.join(".aimem-journal"), &run);
    run.assert_stderr_contains(foreign)
        .assert_stderr_contains("deletes only what it can prove is its own");
    backup_github(&env).assert_stderr_contains(foreign);
    let leftovers = listed_leftovers(&env);
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");
    assert!(
        leftovers[0]["snapshots"]
            .as_array()
            .expect("snapshots")
            .iter()
            .any(|s| s.as_str() == Some(&format!("conventions/{foreign}"))),
        "{leftovers:?}"
    );
}

#[test]
fn an_upload_copy_a_restore_journal_names_under_a_name_aimem_never_gives_is_kept_and_reported() {
    let env = TestEnv::ai_memory();
    let foreign = "uploaded-by-someone-else.snapshot";
    put_snapshot(&env, "conventions", foreign);
    let journal = plant_restore_journal(
        &env,
        "restore-dead.journal",
        &lines(&[started_here(&env), uploading("conventions", foreign)]),
    );

    let run = backup_github(&env);
    assert!(on_server(&env, "conventions", foreign));
    assert_kept(&journal, &run);
    run.assert_stderr_contains(foreign)
        .assert_stderr_contains("deletes only what it can prove is its own");
    let leftovers = listed_leftovers(&env);
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");
    assert_eq!(leftovers[0]["kind"], "restore");
}

// Finding 1: an upload copy a dead restore left is deleted only once Qdrant is known not to be
// recovering its collection (maybe from that very copy).

/// The name aimem gives a restore's upload copy of `conventions`.
const UPLOAD: &str = "aimem-restore-conventions-2026-01-01-00-00-00-4242.snapshot";

/// A dead restore's journal recording an upload copy of `conventions` the server keeps.
fn dead_restore_with_an_upload(env: &TestEnv) -> PathBuf {
    put_snapshot(env, "conventions", UPLOAD);
    plant_restore_journal(
        env,
        "restore-dead.journal",
        &lines(&[started_here(env), uploading("conventions", UPLOAD)]),
    )
}

#[test]
fn an_upload_copy_qdrant_may_still_be_recovering_from_is_kept_until_the_recovery_is_over() {
    use qdrant_double::{Fault, FaultKind};
    let env = TestEnv::ai_memory();
    let journal = dead_restore_with_an_upload(&env);
    // Qdrant is recovering `conventions` (the gauge aimem reads, as the real server writes it).
    env.double.inject(Fault::always(
        Some("GET"),
        "/metrics",
        FaultKind::PlainStatus {
            code: 200,
            body: "# HELP snapshot_recovery_running amount of snapshot recovery operations \
                   currently running\n# TYPE snapshot_recovery_running gauge\n\
                   snapshot_recovery_running{id=\"conventions\"} 1\n"
                .into(),
        },
    ));

    let run = backup_github(&env);
    assert!(on_server(&env, "conventions", UPLOAD), "{}", run.stderr);
    assert_kept(&journal, &run);
    run.assert_stderr_contains(UPLOAD)
        .assert_stderr_contains("Qdrant is recovering `conventions`");
    assert_eq!(listed_leftovers(&env).len(), 1);

    // The recovery is over: the next run deletes the copy and drops the record.
    env.double.clear_faults();
    let run = backup_github(&env);
    assert!(!on_server(&env, "conventions", UPLOAD), "{}", run.stderr);
    assert!(!journal.exists(), "{}", run.stderr);
}

#[test]
fn an_upload_copy_is_kept_when_whether_qdrant_recovers_from_it_cannot_be_read() {
    use qdrant_double::{Fault, FaultKind};
    let env = TestEnv::ai_memory();
    let journal = dead_restore_with_an_upload(&env);
    env.double.inject(Fault::always(
        Some("GET"),
        "/metrics",
        FaultKind::PlainStatus {
            code: 404,
            body: "Not Found".into(),
        },
    ));

    let run = backup_github(&env);
    assert!(on_server(&env, "conventions", UPLOAD), "{}", run.stderr);
    assert_kept(&journal, &run);
    run.assert_stderr_contains(UPLOAD)
        .assert_stderr_contains("cannot tell whether Qdrant is still recovering");
}

// Finding 2: which server a journal was written against.

/// A snapshot name Qdrant gives `conventions` (peer id, then the time).
const SNAPSHOT: &str = "conventions-1234-2026-01-01-00-00-00.snapshot";

#[test]
fn a_journal_of_another_server_once_at_the_same_url_is_kept_and_its_snapshot_too() {
    let env = TestEnv::ai_memory();
    put_snapshot(&env, "conventions", SNAPSHOT);
    // Written against this URL while another Qdrant answered there (the double is another
    // process now): both identities are known and differ.
    let other = "qdrant process 00000000-0000-4000-8000-000000000000";
    let staging = plant_backup_journal(
        &env,
        &lines(&[
            started(&server_key(&env), Some(other), &this_host()),
            created("conventions", SNAPSHOT),
        ]),
    );

    let run = backup_github(&env);
    assert!(on_server(&env, "conventions", SNAPSHOT), "{}", run.stderr);
    assert_kept(&staging.join(".aimem-journal"), &run);
    run.assert_stderr_contains(SNAPSHOT)
        .assert_stderr_contains(other);
}

#[test]
fn a_restore_journal_from_another_machine_naming_a_loopback_url_is_not_of_this_server() {
    let env = TestEnv::ai_memory();
    put_snapshot(&env, "conventions", SNAPSHOT);
    // Another machine's restore against its own 127.0.0.1 on the same port, from a journal
    // without the server's identity (an older aimem), in a state folder shared with it.
    let journal = plant_restore_journal(
        &env,
        "restore-elsewhere.journal",
        &lines(&[
            started(&server_key(&env), None, "another-machine"),
            created("conventions", SNAPSHOT),
        ]),
    );

    let run = backup_github(&env);
    assert!(on_server(&env, "conventions", SNAPSHOT), "{}", run.stderr);
    assert_kept(&journal, &run);
    run.assert_stderr_contains("that machine's own server");
}

// Finding 3: only a torn last line is what a kill leaves; a journal damaged otherwise is kept
// and reported, never cleared as complete, and nothing it names is deleted on a guess.

#[test]
fn a_backup_journal_with_a_bad_line_before_its_last_is_kept_and_nothing_it_names_deleted() {
    let env = TestEnv::ai_memory();
    put_snapshot(&env, "conventions", SNAPSHOT);
    let staging = plant_backup_journal(
        &env,
        &lines(&[
            started_here(&env),
            "{\"event\":\"creat".to_string(),
            created("conventions", SNAPSHOT),
        ]),
    );

    let run = backup_github(&env);
    assert_kept(&staging.join(".aimem-journal"), &run);
    assert!(on_server(&env, "conventions", SNAPSHOT), "{}", run.stderr);
    run.assert_stderr_contains("cannot be taken as the whole record")
        .assert_stderr_contains(SNAPSHOT);
    // Reported by every later run and by `list`.
    backup_github(&env).assert_stderr_contains("cannot be taken as the whole record");
    let leftovers = listed_leftovers(&env);
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");
    assert!(
        leftovers[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("cannot be taken as the whole record")),
        "{leftovers:?}"
    );
}

#[test]
fn a_backup_journal_over_its_bound_is_kept_and_nothing_it_names_deleted() {
    let env = TestEnv::ai_memory();
    put_snapshot(&env, "conventions", SNAPSHOT);
    // Well-formed records past 1 MiB, the last of them naming a snapshot.
    let refused = json!({"event": "refused", "collection": "github"}).to_string();
    let mut records = vec![started_here(&env)];
    records.extend(std::iter::repeat_n(
        refused.clone(),
        1024 * 1024 / refused.len() + 1,
    ));
    records.push(created("conventions", SNAPSHOT));
    let staging = plant_backup_journal(&env, &lines(&records));

    let run = backup_github(&env);
    assert_kept(&staging.join(".aimem-journal"), &run);
    assert!(on_server(&env, "conventions", SNAPSHOT), "{}", run.stderr);
    run.assert_stderr_contains("cannot be taken as the whole record");
}

#[test]
fn a_restore_journal_with_a_bad_line_before_its_last_is_kept_and_nothing_it_names_deleted() {
    let env = TestEnv::ai_memory();
    put_snapshot(&env, "conventions", UPLOAD);
    let journal = plant_restore_journal(
        &env,
        "restore-damaged.journal",
        &lines(&[
            started_here(&env),
            "not a record".to_string(),
            uploading("conventions", UPLOAD),
        ]),
    );

    let run = backup_github(&env);
    assert_kept(&journal, &run);
    assert!(on_server(&env, "conventions", UPLOAD), "{}", run.stderr);
    run.assert_stderr_contains("cannot be taken as the whole record");
    let leftovers = listed_leftovers(&env);
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");
}

/// What a kill leaves: the last line cut while it was written. The rest is the whole record.
#[test]
fn a_journal_whose_last_line_is_torn_is_cleared_as_usual() {
    let env = TestEnv::ai_memory();
    put_snapshot(&env, "conventions", SNAPSHOT);
    let mut journal = lines(&[started_here(&env), created("conventions", SNAPSHOT)]);
    journal.push_str("{\"event\":\"creating\",\"collection\":\"conv");
    let staging = plant_backup_journal(&env, &journal);

    let run = backup_github(&env);
    assert!(!on_server(&env, "conventions", SNAPSHOT), "{}", run.stderr);
    assert!(!staging.exists(), "{}", run.stderr);
}

#[test]
fn prune_keeps_the_staging_folder_of_a_damaged_journal_however_old() {
    let env = TestEnv::ai_memory();
    put_snapshot(&env, "conventions", SNAPSHOT);
    let staging = plant_backup_journal(
        &env,
        &lines(&[
            started_here(&env),
            "{}".to_string(),
            created("conventions", SNAPSHOT),
        ]),
    );
    for path in [staging.join(".aimem-journal"), staging.clone()] {
        let status = std::process::Command::new("touch")
            .args(["-d", "3 days ago"])
            .arg(&path)
            .status()
            .expect("touch");
        assert!(status.success());
    }

    let run = env.run(&["prune", "--keep-last", "5"]);
    run.assert_code(0);
    assert_kept(&staging.join(".aimem-journal"), &run);
    run.assert_stderr_contains("cannot be taken as the whole record");
}

// Finding 5: a dead restore's messages name its own journal (the journals folder is shared by
// every restore), and do not call a restore that ended on its own "killed".

#[test]
fn a_dead_restores_messages_name_its_journal_and_its_cleanup_leaves_the_others() {
    let env = TestEnv::ai_memory();
    let foreign = "uploaded-by-someone-else.snapshot";
    put_snapshot(&env, "conventions", foreign);
    let first = plant_restore_journal(
        &env,
        "restore-first.journal",
        &lines(&[started_here(&env), uploading("conventions", foreign)]),
    );
    // A restore that left nothing: its journal goes, the other stays.
    let second = plant_restore_journal(
        &env,
        "restore-second.journal",
        &lines(&[started_here(&env)]),
    );

    let run = backup_github(&env);
    assert_kept(&first, &run);
    assert!(!second.exists(), "{}", run.stderr);
    run.assert_stderr_contains("restore journal restore-first.journal: its journal names");
    assert!(!run.stderr.contains("restores:"), "{}", run.stderr);
    assert!(!run.stderr.contains("killed restore"), "{}", run.stderr);
    run.assert_stderr_contains("did not finish deleting what it made");
}
