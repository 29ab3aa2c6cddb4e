//! `aimem verify`: a good backup passes; each kind of damage is caught and named.

use std::path::Path;

use serde_json::{Value, json};

use super::support::*;

/// `verify --json DIR`, which must exit `code`; returns the document.
#[track_caller]
fn verify_json(env: &TestEnv, dir: &Path, extra: &[&str], code: i32) -> Value {
    let mut args = vec!["verify", "--json", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    let run = env.run(&args);
    run.assert_code(code);
    json_stdout(&run)
}

/// The problems of a report as (file, kind) pairs.
fn problems(report: &Value) -> Vec<(String, String)> {
    report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["file"].as_str().unwrap().to_string(),
                p["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn a_good_backup_verifies() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&[]);
    let report = verify_json(&env, &backup, &[], 0);
    assert_eq!(report["ok"], json!(true));
    assert_eq!(report["legacy"], json!(false));
    assert_eq!(report["deep"], json!(true));
    assert_eq!(report["problems"], json!([]));
    // Five snapshots and the manifest at least.
    assert!(report["files_checked"].as_u64().unwrap() >= 6, "{report}");

    let run = env.run(&["verify", "latest"]);
    run.assert_code(0);
    assert!(run.stdout.contains(": OK, "), "{}", run.stdout);
}

#[test]
fn a_flipped_byte_is_named() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--no-stream"]);
    let snapshot = backup.join("qdrant/github.snapshot");
    let mut bytes = std::fs::read(&snapshot).unwrap();
    // Inside the first entry's data (its header is bytes 0..512): only the checksum can tell.
    bytes[520] ^= 0x01;
    std::fs::write(&snapshot, bytes).unwrap();
    let report = verify_json(&env, &backup, &[], 2);
    assert_eq!(
        problems(&report),
        [("qdrant/github.snapshot".to_string(), "mismatch".to_string())]
    );
    let run = env.run(&["verify", backup.to_str().unwrap()]);
    run.assert_code(2);
    assert!(
        run.stdout
            .lines()
            .any(|l| l.contains("qdrant/github.snapshot") && l.contains("SHA-256")),
        "{}",
        run.stdout
    );
    run.assert_stderr_contains("failed verification (1 problem)");
}

#[test]
fn a_truncated_snapshot_is_caught_inside_the_archive() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--no-stream"]);
    // Cut the snapshot and make the checksum and size agree with the cut file: only reading
    // the archive can tell.
    let snapshot = backup.join("qdrant/discussions.snapshot");
    let bytes = std::fs::read(&snapshot).unwrap();
    let cut = bytes.len() - 1024;
    std::fs::write(&snapshot, &bytes[..cut]).unwrap();
    let (sha, _) =
        aimem::manifest::checksums::hash_file(camino::Utf8Path::from_path(&snapshot).unwrap())
            .unwrap();
    edit_manifest(&backup, |m| {
        m["collections"]["discussions"]["size_bytes"] = json!(cut);
        m["collections"]["discussions"]["sha256"] = json!(sha);
    });
    let report = verify_json(&env, &backup, &[], 2);
    assert_eq!(
        problems(&report),
        [(
            "qdrant/discussions.snapshot".to_string(),
            "snapshot_damaged".to_string()
        )]
    );
    assert!(
        report["problems"][0]["problem"]
            .as_str()
            .unwrap()
            .contains("truncated"),
        "{report}"
    );
    // The deep check is what found it.
    verify_json(&env, &backup, &["--no-deep"], 0);
}

#[test]
fn a_snapshot_of_another_collection_does_not_match_the_fingerprint() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--no-stream"]);
    // conventions.snapshot replaced by the discussions snapshot, with checksums and sizes
    // updated: every file check passes, the schema inside does not.
    let from = backup.join("qdrant/discussions.snapshot");
    let to = backup.join("qdrant/conventions.snapshot");
    std::fs::copy(&from, &to).unwrap();
    let size = std::fs::metadata(&to).unwrap().len();
    edit_manifest(&backup, |m| {
        m["collections"]["conventions"]["size_bytes"] = json!(size);
        m["collections"]["conventions"]["sha256"] =
            m["collections"]["discussions"]["sha256"].clone();
    });
    let report = verify_json(&env, &backup, &[], 2);
    assert_eq!(
        problems(&report),
        [(
            "qdrant/conventions.snapshot".to_string(),
            "schema_mismatch".to_string()
        )]
    );
    let text = report["problems"][0]["problem"].as_str().unwrap();
    assert!(text.contains("(manifest) vs"), "{text}");
    verify_json(&env, &backup, &["--no-deep"], 0);
}

#[test]
fn missing_and_extra_files_are_named() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--no-stream"]);
    std::fs::remove_file(backup.join("qdrant/jira-data.snapshot")).unwrap();
    std::fs::write(backup.join("qdrant/stray.bin"), "x").unwrap();
    let report = verify_json(&env, &backup, &[], 2);
    let found = problems(&report);
    assert!(
        found.contains(&("qdrant/jira-data.snapshot".into(), "missing".into())),
        "{found:?}"
    );
    assert!(
        found.contains(&("qdrant/stray.bin".into(), "unlisted".into())),
        "{found:?}"
    );
    assert_eq!(found.len(), 2, "{found:?}");
}

#[test]
fn a_file_the_manifest_names_must_be_listed() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--no-stream"]);
    let path = backup.join("CHECKSUMS.sha256");
    let text = std::fs::read_to_string(&path).unwrap();
    let kept: String = text
        .lines()
        .filter(|l| !l.ends_with("qdrant/github.snapshot"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&path, kept).unwrap();
    let found = problems(&verify_json(&env, &backup, &[], 2));
    assert!(
        found.contains(&("qdrant/github.snapshot".into(), "not_listed".into())),
        "{found:?}"
    );
}

#[test]
fn a_size_that_disagrees_with_the_manifest_is_named() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--no-stream"]);
    edit_manifest(&backup, |m| {
        m["collections"]["github"]["size_bytes"] = json!(1);
    });
    let found = problems(&verify_json(&env, &backup, &["--no-deep"], 2));
    assert_eq!(
        found,
        [(
            "qdrant/github.snapshot".to_string(),
            "size_mismatch".to_string()
        )]
    );
}

#[test]
fn a_malformed_checksum_line_is_named_by_number() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&[]);
    let path = backup.join("CHECKSUMS.sha256");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("not a checksum line\n");
    let line = text.lines().count();
    std::fs::write(&path, text).unwrap();
    let report = verify_json(&env, &backup, &[], 2);
    assert_eq!(
        problems(&report),
        [(
            "CHECKSUMS.sha256".to_string(),
            "checksums_malformed".to_string()
        )]
    );
    let problem = report["problems"][0]["problem"].as_str().unwrap();
    assert!(problem.starts_with(&format!("line {line}:")), "{problem}");
}

#[test]
fn a_broken_manifest_is_shown_with_the_bad_spot() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&[]);
    let path = backup.join("manifest.json");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replacen("\"records\":", "\"records\"::", 1)).unwrap();
    let run = env.run(&["verify", backup.to_str().unwrap()]);
    run.assert_code(2);
    // The checksum of the edited manifest no longer matches either: both are named.
    assert!(
        run.stdout
            .lines()
            // Off a terminal aimem's `✗` is written `FAIL`.
            .any(|l| l.starts_with("FAIL manifest.json: not a valid manifest")),
        "{}",
        run.stdout
    );
    // miette draws the source around the bad spot.
    run.assert_stderr_contains("\"records\"::");
    run.assert_stderr_contains("aimem::manifest::invalid");
    let report = verify_json(&env, &backup, &[], 2);
    let found = problems(&report);
    assert!(found.contains(&("manifest.json".into(), "manifest_invalid".into())));
    assert!(found.contains(&("manifest.json".into(), "mismatch".into())));
}

#[test]
fn a_backup_missing_its_checksums_is_reported_and_still_checked() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--no-stream"]);
    std::fs::remove_file(backup.join("CHECKSUMS.sha256")).unwrap();
    // The manifest-level checks still run: a wrong size is still named.
    let path = backup.join("manifest.json");
    let mut manifest = manifest(&backup);
    manifest["collections"]["github"]["size_bytes"] = json!(1);
    std::fs::write(&path, manifest.to_string()).unwrap();
    let report = verify_json(&env, &backup, &[], 2);
    // aimem always writes the file: this is not a legacy backup but one that lost it.
    assert_eq!(report["legacy"], json!(false));
    let found = problems(&report);
    assert!(found.contains(&("CHECKSUMS.sha256".into(), "checksums_missing".into())));
    assert!(found.contains(&("qdrant/github.snapshot".into(), "size_mismatch".into())));
    let run = env.run(&["verify", backup.to_str().unwrap()]);
    run.assert_code(2);
    assert!(run.stdout.contains("it was removed"), "{}", run.stdout);
}

#[test]
fn a_folder_that_does_not_exist_is_an_argument_error() {
    let env = TestEnv::new();
    env.run(&["verify", "/nonexistent/backup"]).assert_code(1);
    std::fs::create_dir_all(env.root()).unwrap();
    env.run(&["verify", "latest"])
        .assert_code(1)
        .assert_stderr_contains("no complete backup");
}

#[test]
fn a_snapshot_that_is_a_link_into_another_backup_fails_verification() {
    let env = TestEnv::ai_memory();
    let older = env.backup(&["--no-stream"]);
    let newer = env.backup(&["--no-stream"]);
    // The newer backup's snapshot becomes a link to the (identical-looking) older one.
    let snapshot = newer.join("qdrant/github.snapshot");
    std::fs::remove_file(&snapshot).unwrap();
    std::fs::copy(
        older.join("qdrant/github.snapshot"),
        older.join("qdrant/github.copy"),
    )
    .unwrap();
    std::os::unix::fs::symlink(older.join("qdrant/github.copy"), &snapshot).unwrap();
    let run = env.run(&["verify", newer.to_str().unwrap()]);
    run.assert_code(2);
    assert!(
        run.all_output().contains("symbolic link"),
        "{}",
        run.all_output()
    );
}

#[test]
fn a_checksum_file_repaired_to_match_a_changed_snapshot_is_caught() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--no-stream"]);
    // Change a snapshot, then "fix" CHECKSUMS.sha256 the way someone silencing the error would.
    let snapshot = backup.join("qdrant/github.snapshot");
    let mut bytes = std::fs::read(&snapshot).unwrap();
    let last = bytes.len() - 2000;
    bytes[last] ^= 0xff;
    std::fs::write(&snapshot, &bytes).unwrap();
    let output = std::process::Command::new("sha256sum")
        .arg("qdrant/github.snapshot")
        .current_dir(&backup)
        .output()
        .unwrap();
    let new_line = String::from_utf8(output.stdout).unwrap();
    let listed = std::fs::read_to_string(backup.join("CHECKSUMS.sha256")).unwrap();
    let repaired: String = listed
        .lines()
        .map(|l| {
            if l.ends_with("qdrant/github.snapshot") {
                new_line.trim_end().to_string()
            } else {
                l.to_string()
            }
        })
        .map(|l| l + "\n")
        .collect();
    std::fs::write(backup.join("CHECKSUMS.sha256"), repaired).unwrap();
    let run = env.run(&["verify", backup.to_str().unwrap(), "--no-deep"]);
    run.assert_code(2);
    assert!(
        run.all_output().contains("the manifest records SHA-256"),
        "{}",
        run.all_output()
    );
}
