//! `backup --retry N` resumes a broken snapshot download from the bytes already on disk
//! (`Range` + `If-Match`), and starts over when the server does not honour that exactly.

use std::path::Path;

use qdrant_double::{Fault, FaultKind, RecordedRequest};

use super::support::*;

/// The collection whose download breaks, and the size of the bytes its snapshot carries.
const COLLECTION: &str = "github";
const FILLER: u64 = 8 * 1024 * 1024;
const DOWNLOAD: &str = "/collections/github/snapshots/";

fn env_with_a_big_snapshot() -> TestEnv {
    let env = TestEnv::ai_memory();
    env.double.set_snapshot_filler(COLLECTION, FILLER);
    env
}

/// The first download of the snapshot is cut after half of its body.
fn cut_the_first_download_at_half(env: &TestEnv) {
    env.double.inject(Fault::new(
        Some("GET"),
        DOWNLOAD,
        FaultKind::TruncateBodyAtPercent { percent: 50 },
    ));
}

/// The downloads of the snapshot (GET of a file in its snapshot folder), in order.
fn downloads(env: &TestEnv) -> Vec<RecordedRequest> {
    env.double
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path.starts_with(DOWNLOAD))
        .collect()
}

/// Backs up with `--retry 2`, checks the backup verifies and nothing private is left, and
/// returns the size of the snapshot file and the downloads made.
fn backup_and_check(env: &TestEnv) -> (u64, Vec<RecordedRequest>) {
    // Resuming is the stored snapshot's: a stream starts again from its first byte.
    let run = env.run(&["backup", "--no-stream", "--retry", "2"]);
    run.assert_code(0).assert_stderr_contains("retry 1 of 2");
    // One retry only: a resume the server did not honour restarts within that attempt, it
    // never splices bytes that then fail the checks and cost another attempt.
    let output = run.all_output();
    assert!(!output.contains("retry 2 of 2"), "{output}");
    assert!(!output.contains("does not match"), "{output}");
    let backup = env.only_backup();
    assert_eq!(sha256sum_check(&backup).code, 0, "the backup verifies");
    env.run(&["verify", backup.to_str().unwrap()])
        .assert_code(0);
    assert_no_partial_files(&backup.join("qdrant"));
    assert_eq!(env.server_snapshots(), 0);
    let size = std::fs::metadata(backup.join(format!("qdrant/{COLLECTION}.snapshot")))
        .unwrap()
        .len();
    assert!(size > FILLER, "the snapshot carries its filler");
    (size, downloads(env))
}

fn assert_no_partial_files(folder: &Path) {
    let leftovers: Vec<String> = std::fs::read_dir(folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into())
        .filter(|n: &String| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "partial files left: {leftovers:?}");
}

/// The retry asked to resume: `Range: bytes=<half>-` with the ETag of the first answer.
fn assert_asked_to_resume(download: &RecordedRequest, size: u64) {
    let range = download.headers.get("range").expect("a Range header");
    let offset: u64 = range
        .strip_prefix("bytes=")
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("an open range from an offset, got {range:?}"));
    assert_eq!(offset, size / 2, "resumes right after the bytes kept");
    let tag = download
        .headers
        .get("if-match")
        .expect("an If-Match header");
    assert!(tag.starts_with('"') && tag.len() > 2, "the ETag: {tag:?}");
}

#[test]
fn a_download_cut_at_half_resumes_and_fetches_little_again() {
    let env = env_with_a_big_snapshot();
    cut_the_first_download_at_half(&env);
    let (size, downloads) = backup_and_check(&env);
    assert_eq!(
        downloads.len(),
        2,
        "one cut download, one resumed: {downloads:?}"
    );
    assert_asked_to_resume(&downloads[1], size);
    // The bytes the server sent for this file: half before the cut, then what the retry
    // fetched again, at most 55 % of the file (the target).
    let served = env.double.body_bytes_served("GET", DOWNLOAD);
    let fetched_again = served - size / 2;
    assert!(
        fetched_again * 100 <= size * 55,
        "fetched {fetched_again} of {size} bytes again after the cut ({served} in all)"
    );
}

#[test]
fn a_server_that_ignores_the_range_gets_a_full_restart() {
    let env = env_with_a_big_snapshot();
    cut_the_first_download_at_half(&env);
    env.double
        .inject(Fault::new(Some("GET"), DOWNLOAD, FaultKind::IgnoreRange));
    let (size, downloads) = backup_and_check(&env);
    // The 200 with the whole file is the restart itself: no third request is needed.
    assert_eq!(downloads.len(), 2, "{downloads:?}");
    assert_asked_to_resume(&downloads[1], size);
}

/// Cuts the first download at half, then meets the resume with `fault`: the backup must be
/// right, after three requests (cut, refused resume, a full restart without a range).
fn resume_refused_then_restarted(fault: FaultKind, why: &str) {
    let env = env_with_a_big_snapshot();
    cut_the_first_download_at_half(&env);
    env.double.inject(Fault::new(Some("GET"), DOWNLOAD, fault));
    let (size, downloads) = backup_and_check(&env);
    assert_eq!(downloads.len(), 3, "cut, {why}, restarted: {downloads:?}");
    assert_asked_to_resume(&downloads[1], size);
    assert!(
        !downloads[2].headers.contains_key("range"),
        "the restart asks for the whole file: {:?}",
        downloads[2]
    );
}

#[test]
fn a_changed_etag_gets_a_full_restart() {
    resume_refused_then_restarted(FaultKind::ChangedEtag, "refused (412)");
}

#[test]
fn a_range_from_the_wrong_offset_gets_a_full_restart() {
    resume_refused_then_restarted(FaultKind::ShiftedRange { back: 1000 }, "wrong range");
}

#[test]
fn a_stalled_download_resumes_after_the_stall_timeout() {
    let env = env_with_a_big_snapshot();
    env.double.inject(Fault::new(
        Some("GET"),
        DOWNLOAD,
        FaultKind::StallBody {
            after_bytes: FILLER / 2,
            stall: std::time::Duration::from_secs(30),
        },
    ));
    let run = env.run_with(&["backup", "--no-stream", "--retry", "1"], |c| {
        c.env("BACKUP_SNAPSHOT_DOWNLOAD_TIMEOUT", "1");
    });
    run.assert_code(0)
        .assert_stderr_contains("retry 1 of 1")
        .assert_stderr_contains("timed out");
    let backup = env.only_backup();
    assert_eq!(sha256sum_check(&backup).code, 0, "the backup verifies");
    assert_no_partial_files(&backup.join("qdrant"));
    let downloads = downloads(&env);
    assert_eq!(downloads.len(), 2, "{downloads:?}");
    let range = downloads[1].headers.get("range").expect("a Range header");
    assert_eq!(range, &format!("bytes={}-", FILLER / 2));
    assert!(downloads[1].headers.contains_key("if-match"));
}
