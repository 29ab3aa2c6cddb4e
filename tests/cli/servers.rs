//! Signals, dead and hanging servers, servers that lie, disk-space exits and test seams
//! (issue 9, findings 9, 10 and 14).
//!
//! Each run gets a kill deadline far below the 300 s timeouts these tests are about: a run
//! still going at the deadline is killed and reported with code -1, so "it waited for the
//! long timeout" fails the exit-code assertion instead of hanging the suite.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use qdrant_double::{Fault, FaultKind};

use super::support::*;

/// Far below every 300 s timeout, far above what any of these runs needs.
const KILL_DEADLINE: Duration = Duration::from_secs(60);

/// Runs `command` to its end or to [`KILL_DEADLINE`] (then kills it: code -1). When `signal`
/// is given (`-INT`, `-TERM`), it is sent once a line of stderr contains `marker`.
fn run_bounded(mut command: Command, signal: Option<(&str, &str)>) -> Run {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn aimem");
    let mut stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    let (lines_tx, lines) = mpsc::channel::<String>();
    let stderr_reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            all.push_str(&line);
            all.push('\n');
            let _ = lines_tx.send(line);
        }
        all
    });
    let stdout_reader = std::thread::spawn(move || {
        let mut all = String::new();
        let _ = stdout.read_to_string(&mut all);
        all
    });
    let deadline = Instant::now() + KILL_DEADLINE;
    if let Some((signal, marker)) = signal {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) if line.contains(marker) => break,
                Ok(_) => {}
                Err(_) => panic!("aimem never printed {marker:?}"),
            }
        }
        let sent = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success());
    }
    let code = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status.code().unwrap_or(-1);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break -1;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Run {
        code,
        stdout: stdout_reader.join().unwrap_or_default(),
        stderr: stderr_reader.join().unwrap_or_default(),
    }
}

#[track_caller]
fn assert_nothing_left(env: &TestEnv) {
    assert_eq!(env.root_entries(), Vec::<String>::new(), "the backup root");
    assert_eq!(env.server_snapshots(), 0, "snapshots left on the server");
}

/// A backup of `discussions` whose snapshot is replaced by a large sparse file (listed with
/// a wrong checksum): hashing it keeps `verify` busy for far longer than the kill deadline.
fn backup_with_a_huge_snapshot(env: &TestEnv) -> std::path::PathBuf {
    let backup = env.backup(&["--no-stream", "--collection", "discussions"]);
    let snapshot = backup.join("qdrant/discussions.snapshot");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&snapshot)
        .unwrap();
    let size: u64 = 64 * 1024 * 1024 * 1024;
    file.set_len(size).unwrap();
    // The manifest agrees on the size (so no size check can skip the hashing); only the
    // manifest's own checksum line is refreshed, hashing the huge file would take minutes.
    let manifest_path = backup.join("manifest.json");
    let mut value = manifest(&backup);
    value["collections"]["discussions"]["size_bytes"] = serde_json::json!(size);
    std::fs::write(
        &manifest_path,
        serde_json::to_string_pretty(&value).unwrap(),
    )
    .unwrap();
    let checksums = backup.join("CHECKSUMS.sha256");
    let text = std::fs::read_to_string(&checksums).unwrap();
    let fresh = sha256_hex(&manifest_path);
    let rewritten: String = text
        .lines()
        .map(|line| match line.ends_with("  manifest.json") {
            true => format!("{fresh}  manifest.json\n"),
            false => format!("{line}\n"),
        })
        .collect();
    std::fs::write(&checksums, rewritten).unwrap();
    backup
}

#[test]
fn one_sigint_stops_verify() {
    let env = TestEnv::ai_memory();
    let backup = backup_with_a_huge_snapshot(&env);
    let run = run_bounded(
        env.command(&["verify", backup.to_str().unwrap()]),
        Some(("-INT", "Verifying")),
    );
    run.assert_code(130);
}

#[test]
fn one_sigterm_stops_list_verify() {
    let env = TestEnv::ai_memory();
    backup_with_a_huge_snapshot(&env);
    let run = run_bounded(
        env.command(&["list", "--verify"]),
        Some(("-TERM", "Verifying")),
    );
    run.assert_code(143);
}

#[test]
fn one_sigint_stops_a_backup_while_it_connects() {
    let env = TestEnv::ai_memory();
    env.double
        .inject(Fault::always(Some("GET"), "/", FaultKind::Blackhole));
    let run = run_bounded(env.command(&["backup"]), Some(("-INT", "AI Memory Backup")));
    run.assert_code(130);
    assert_nothing_left(&env);
}

#[test]
fn one_sigterm_stops_a_restore_while_it_connects() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--collection", "conventions"]);
    env.double
        .inject(Fault::always(Some("GET"), "/", FaultKind::Blackhole));
    let run = run_bounded(
        env.command(&["restore", backup.to_str().unwrap(), "--force"]),
        Some(("-TERM", "Connecting to Qdrant")),
    );
    run.assert_code(143);
}

/// A backup with a 2 s request timeout fails after one wait (exit 1) and leaves nothing behind.
fn backup_gives_up_after_one_request_timeout(env: &TestEnv) {
    let mut command = env.command(&["backup"]);
    command.env("QDRANT_REQUEST_TIMEOUT", "2");
    let run = run_bounded(command, None);
    run.assert_code(1)
        .assert_stderr_contains("timed out after 2s");
    assert_nothing_left(env);
}

#[test]
fn a_server_that_never_answers_costs_one_request_timeout() {
    let env = TestEnv::ai_memory();
    env.double
        .inject(Fault::always(None, "/", FaultKind::Blackhole));
    backup_gives_up_after_one_request_timeout(&env);
}

#[test]
fn a_server_that_sends_headers_and_then_nothing_costs_one_request_timeout() {
    let env = TestEnv::ai_memory();
    env.double.inject(Fault::always(
        Some("GET"),
        "/collections",
        FaultKind::StallBody {
            after_bytes: 0,
            stall: Duration::from_secs(600),
        },
    ));
    backup_gives_up_after_one_request_timeout(&env);
}

#[test]
fn a_server_that_dies_while_building_the_snapshot_is_given_up_at_once() {
    let env = TestEnv::ai_memory();
    env.double.inject(Fault::new(
        Some("POST"),
        "/collections/discussions/snapshots",
        FaultKind::Die,
    ));
    let run = run_bounded(
        env.command(&["backup", "--no-stream", "--collection", "discussions"]),
        None,
    );
    assert!(
        run.code == 1 || run.code == 2,
        "a failed backup, not a hang: {run:?}"
    );
    run.assert_stderr_contains("could not look for the snapshot");
    // The snapshot Qdrant may have made cannot be looked for while it is gone: all that is
    // kept is the run's journal, in its staging folder, for the next backup to look again.
    let entries = env.root_entries();
    assert_eq!(entries.len(), 1, "the backup root: {entries:?}");
    assert!(entries[0].starts_with(".aimem-staging-"), "{entries:?}");
    let kept: Vec<String> = std::fs::read_dir(env.root().join(&entries[0]))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(kept, [".aimem-journal"], "the staging folder");
}

#[test]
fn a_snapshot_answer_without_a_name_is_an_error_at_once() {
    let env = TestEnv::ai_memory();
    env.double.inject(Fault::new(
        Some("POST"),
        "/collections/discussions/snapshots",
        FaultKind::RawJson {
            code: 200,
            body: r#"{"result":{},"status":"ok","time":0.1}"#.to_string(),
        },
    ));
    let run = run_bounded(
        env.command(&["backup", "--no-stream", "--collection", "discussions"]),
        None,
    );
    run.assert_code(2)
        .assert_stderr_contains("does not understand");
    assert_nothing_left(&env);
}

/// `aimem` under a file-size limit (200 MB or more, depending on the shell's block unit), so
/// a download that never stops cannot fill the disk when this test fails.
fn with_file_size_limit(env: &TestEnv, args: &[&str]) -> Command {
    let inner = env.command(args);
    let mut shell = Command::new("sh");
    shell
        .arg("-c")
        .arg("ulimit -f 409600 && exec \"$0\" \"$@\"")
        .arg(inner.get_program())
        .args(inner.get_args())
        .env_clear()
        .stdin(Stdio::null());
    for (key, value) in inner.get_envs() {
        if let Some(value) = value {
            shell.env(key, value);
        }
    }
    shell
}

#[test]
fn an_endless_download_stops_at_the_announced_size() {
    let env = TestEnv::ai_memory();
    env.double.inject(Fault::new(
        Some("GET"),
        "/collections/discussions/snapshots/",
        FaultKind::EndlessBody { code: 200 },
    ));
    let command = with_file_size_limit(
        &env,
        &["backup", "--no-stream", "--collection", "discussions"],
    );
    let run = run_bounded(command, None);
    run.assert_code(2)
        .assert_stderr_contains("more than the")
        .assert_stderr_contains("Qdrant announced");
    assert_nothing_left(&env);
}

#[test]
fn an_endless_error_body_is_cut_and_reported() {
    let env = TestEnv::ai_memory();
    env.double.inject(Fault::always(
        Some("GET"),
        "/collections",
        FaultKind::EndlessBody { code: 500 },
    ));
    let run = run_bounded(env.command(&["backup"]), None);
    // The body is read up to a bound and dropped: a connection failure for backup (exit 1).
    run.assert_code(1).assert_stderr_contains("HTTP 500");
    assert_nothing_left(&env);
}

#[test]
fn a_payload_index_added_while_the_snapshot_is_taken_is_noticed_and_the_snapshot_retaken() {
    let env = TestEnv::ai_memory();
    env.double.inject(Fault::new(
        Some("POST"),
        "/collections/discussions/snapshots",
        FaultKind::AddPayloadIndex {
            field: "added_meanwhile".to_string(),
            schema: "keyword".to_string(),
        },
    ));
    let run = run_bounded(
        env.command(&["backup", "--no-stream", "--collection", "discussions"]),
        None,
    );
    run.assert_code(0)
        .assert_stderr_contains("schema changed while it was snapshotted");
    let backup = Path::new(run.stdout.trim());
    let schema = &manifest(backup)["collections"]["discussions"]["schema"];
    assert!(
        schema.to_string().contains("added_meanwhile"),
        "the manifest records the schema the snapshot holds: {schema}"
    );
    env.run(&["verify", backup.to_str().unwrap()])
        .assert_code(0);
    assert_eq!(env.server_snapshots(), 0, "snapshots left on the server");
}

#[test]
fn a_schema_that_changes_during_every_snapshot_fails_the_collection() {
    let env = TestEnv::ai_memory();
    for field in ["first", "second", "third"] {
        env.double.inject(Fault::new(
            Some("POST"),
            "/collections/discussions/snapshots",
            FaultKind::AddPayloadIndex {
                field: field.to_string(),
                schema: "keyword".to_string(),
            },
        ));
    }
    let run = run_bounded(
        env.command(&["backup", "--no-stream", "--collection", "discussions"]),
        None,
    );
    run.assert_code(2)
        .assert_stderr_contains("changed during each of 3 snapshots");
    assert_nothing_left(&env);
}

/// The release binary must not carry the test seam that fakes the free disk space
/// (`cargo test --release` runs this; the debug binary the other tests use keeps it).
#[cfg(not(debug_assertions))]
#[test]
fn the_release_binary_has_no_free_space_seam() {
    let binary = std::fs::read(env!("CARGO_BIN_EXE_aimem")).unwrap();
    let seam = b"AIMEM_TEST_FREE_SPACE";
    assert!(
        !binary.windows(seam.len()).any(|w| w == seam),
        "the release binary still reads AIMEM_TEST_FREE_SPACE"
    );
}

/// `GET /cluster` answering more than any real answer (issue 17: a crafted 63 MiB one took
/// 5.7 GB): the backup stops as for a connection failure (exit 1), naming the bound, and
/// does not go on as a single node.
#[test]
fn a_cluster_answer_longer_than_any_real_one_stops_the_backup() {
    let env = TestEnv::ai_memory();
    let body = format!(
        r#"{{"result": {{"status": "disabled", "raft_info": "{}"}}, "status": "ok"}}"#,
        "x".repeat(17 * 1024 * 1024)
    );
    env.double.inject(Fault::always(
        Some("GET"),
        "/cluster",
        FaultKind::RawJson { code: 200, body },
    ));
    let run = run_bounded(
        env.command(&["backup", "--collection", "discussions"]),
        None,
    );
    run.assert_code(1)
        .assert_stderr_contains("longer than 16 MiB");
    assert_eq!(env.server_snapshots(), 0);
}
