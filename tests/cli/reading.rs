//! Reading a hostile backup folder (issue 9, findings 3, 5 and 8): nothing outside the folder
//! is opened or quoted, nothing that is not a regular file is read, every input has a size
//! bound, a bad manifest is a clean error, and implausible dates never drive retention.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::support::*;

/// Runs `aimem` and fails the test when it has not finished after 20 s (killing it): a read
/// of a FIFO or an endless file would hang forever.
#[track_caller]
fn run_bounded(env: &TestEnv, args: &[&str]) -> Run {
    let mut command = env.command(args);
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().expect("spawn aimem");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if child.try_wait().expect("wait").is_some() {
            return to_run(child.wait_with_output().expect("output"));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = to_run(child.wait_with_output().expect("output"));
            panic!(
                "aimem {args:?} did not finish within 20 s (killed); stdout:\n{}\nstderr:\n{}",
                out.stdout, out.stderr
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

const MARKER: &str = "SECRET-OUTSIDE-MARKER-4711";

/// A file outside every backup, full of the marker: a tar reader that quotes the bytes of a
/// bad header would print it.
fn secret_file(env: &TestEnv) -> PathBuf {
    let path = env.tmp.path().join("outside-secret");
    std::fs::write(&path, MARKER.repeat(200)).unwrap();
    path
}

fn mkfifo(path: &Path) {
    let _ = std::fs::remove_file(path);
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo");
    assert!(status.success());
}

#[track_caller]
fn assert_no_marker(run: &Run) {
    assert!(
        !run.all_output().contains(MARKER),
        "the outside file's content was printed:\n{}",
        run.all_output()
    );
}

fn kinds_of(report: &Value, file: &str) -> Vec<String> {
    report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["file"] == file)
        .map(|p| p["kind"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_snapshot_linked_outside_the_backup_is_never_read_or_quoted() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--no-stream", "--collection", "conventions"]);
    let snapshot = backup.join("qdrant/conventions.snapshot");
    std::fs::remove_file(&snapshot).unwrap();
    symlink(secret_file(&env), &snapshot).unwrap();
    for args in [vec!["verify"], vec!["verify", "--json"]] {
        let mut args = args.clone();
        args.push(backup.to_str().unwrap());
        let run = run_bounded(&env, &args);
        run.assert_code(2);
        assert_no_marker(&run);
    }
    let run = run_bounded(&env, &["restore", "--force", backup.to_str().unwrap()]);
    assert_ne!(run.code, 0);
    assert_no_marker(&run);
    let run = run_bounded(
        &env,
        &[
            "restore",
            "--force",
            "--skip-checksum-verify",
            backup.to_str().unwrap(),
        ],
    );
    assert_ne!(run.code, 0, "{}", run.all_output());
    assert_no_marker(&run);

    // A link to a FIFO outside: opening it would block (nobody writes to it).
    let fifo = env.tmp.path().join("outside-fifo");
    mkfifo(&fifo);
    std::fs::remove_file(&snapshot).unwrap();
    symlink(&fifo, &snapshot).unwrap();
    run_bounded(&env, &["verify", backup.to_str().unwrap()]).assert_code(2);
    let run = run_bounded(
        &env,
        &[
            "restore",
            "--force",
            "--skip-checksum-verify",
            backup.to_str().unwrap(),
        ],
    );
    assert_ne!(run.code, 0, "{}", run.all_output());
}

#[test]
fn a_snapshot_file_reaching_outside_the_folder_is_refused() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--collection", "conventions"]);
    // qdrant/../../outside is the backup root's `outside`.
    std::fs::write(env.root().join("outside"), MARKER.repeat(200)).unwrap();
    edit_manifest(&backup, |m| {
        m["collections"]["conventions"]["snapshot_file"] = json!("../../outside");
    });
    let run = run_bounded(&env, &["verify", "--json", backup.to_str().unwrap()]);
    run.assert_code(2);
    assert_no_marker(&run);
    let report = json_stdout(&run);
    // Refused as a path (or, where names are checked up front, as a manifest problem).
    assert!(
        !kinds_of(&report, "qdrant/../../outside").is_empty()
            || !kinds_of(&report, "manifest.json").is_empty(),
        "{report}"
    );
    let run = run_bounded(&env, &["verify", backup.to_str().unwrap()]);
    run.assert_code(2);
    assert_no_marker(&run);
    let run = run_bounded(&env, &["restore", "--force", backup.to_str().unwrap()]);
    assert_ne!(run.code, 0);
    assert_no_marker(&run);
}

#[test]
fn fifos_in_place_of_backup_files_do_not_hang_any_command() {
    let env = TestEnv::ai_memory();
    let good = env.backup(&["--no-stream", "--collection", "conventions"]);
    for file in [
        "manifest.json",
        "CHECKSUMS.sha256",
        "qdrant/conventions.snapshot",
    ] {
        let backup = env.root().join(format!("2026-01-01_000000-{}", file.len()));
        copy_dir(&good, &backup);
        mkfifo(&backup.join(file));
        let dir = backup.to_str().unwrap();
        let run = run_bounded(&env, &["verify", dir]);
        run.assert_code(2);
        run_bounded(&env, &["list"]);
        run_bounded(&env, &["list", "--verify"]);
        let run = run_bounded(&env, &["restore", "--force", dir]);
        assert_ne!(run.code, 0, "{file}: {}", run.all_output());
        // Without checksum verification an unreadable CHECKSUMS.sha256 is not needed.
        let run = run_bounded(&env, &["restore", "--force", "--skip-checksum-verify", dir]);
        if file != "CHECKSUMS.sha256" {
            assert_ne!(run.code, 0, "{file}: {}", run.all_output());
        }
        std::fs::remove_dir_all(&backup).unwrap();
    }
}

#[test]
fn a_manifest_linked_to_an_endless_device_is_refused() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--collection", "conventions"]);
    for file in ["manifest.json", "CHECKSUMS.sha256"] {
        let path = backup.join(file);
        let saved = env.tmp.path().join("saved");
        std::fs::rename(&path, &saved).unwrap();
        symlink("/dev/zero", &path).unwrap();
        let run = run_bounded(&env, &["verify", backup.to_str().unwrap()]);
        run.assert_code(2);
        run_bounded(&env, &["list"]);
        std::fs::remove_file(&path).unwrap();
        std::fs::rename(&saved, &path).unwrap();
    }
}

#[test]
fn a_syntax_error_past_column_65535_is_a_clean_error() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--collection", "conventions"]);
    let text = format!(
        r#"{{"backup_date": "{}", "collections": {{}} oops }}"#,
        "x".repeat(70_000)
    );
    std::fs::write(backup.join("manifest.json"), text).unwrap();
    let dir = backup.to_str().unwrap();
    let run = run_bounded(&env, &["verify", dir]);
    run.assert_code(2);
    assert!(run.all_output().contains("column 70"), "{}", run.stderr);
    let run = run_bounded(&env, &["restore", "--force", dir]);
    assert_eq!(run.code, 2, "{}", run.all_output());
    // Shown where it is, as an excerpt of the line (not 70,000 characters of it).
    run.assert_stderr_contains("manifest.json:1:70");
    assert!(run.stderr.len() < 10_000, "{}", run.stderr);
    run_bounded(&env, &["list"]).assert_code(0);
    run_bounded(&env, &["diff-schema", dir]);
}

/// A tar header block (ustar) of the given type and size, with a valid checksum.
fn tar_header(name: &str, kind: u8, size: u64) -> Vec<u8> {
    let mut block = vec![0u8; 512];
    block[..name.len()].copy_from_slice(name.as_bytes());
    block[100..108].copy_from_slice(b"0000644\0");
    block[108..116].copy_from_slice(b"0000000\0");
    block[116..124].copy_from_slice(b"0000000\0");
    block[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    block[136..148].copy_from_slice(b"00000000000\0");
    block[156] = kind;
    block[257..263].copy_from_slice(b"ustar\0");
    block[263..265].copy_from_slice(b"00");
    block[148..156].copy_from_slice(b"        ");
    let sum: u32 = block.iter().map(|b| u32::from(*b)).sum();
    block[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    block
}

#[test]
fn a_huge_pax_header_in_a_snapshot_is_refused() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--no-stream", "--collection", "conventions"]);
    let snapshot = backup.join("qdrant/conventions.snapshot");
    let real = std::fs::read(&snapshot).unwrap();
    // A PAX header whose data is a hole of 64 MiB (sparse on disk), then the real snapshot:
    // a reader that loads extension headers whole holds all of it in memory. (The issue's
    // 2 GiB case is the same file with a bigger hole; the report measures it.)
    let hole: u64 = 64 * 1024 * 1024;
    let mut file = std::fs::File::create(&snapshot).unwrap();
    use std::io::{Seek, SeekFrom, Write};
    file.write_all(&tar_header("PaxHeaders/x", b'x', hole))
        .unwrap();
    file.seek(SeekFrom::Current(hole as i64)).unwrap();
    file.write_all(&real).unwrap();
    drop(file);
    rewrite_checksums(&backup);
    let size = std::fs::metadata(&snapshot).unwrap().len();
    edit_manifest(&backup, |m| {
        m["collections"]["conventions"]["size_bytes"] = json!(size);
        m["collections"]["conventions"]["sha256"] = json!(sha256_hex(&snapshot));
    });
    let run = run_bounded(&env, &["verify", "--json", backup.to_str().unwrap()]);
    run.assert_code(2);
    let report = json_stdout(&run);
    assert_eq!(
        kinds_of(&report, "qdrant/conventions.snapshot"),
        ["snapshot_damaged"],
        "{report}"
    );
}

/// A backup folder named for `at` whose manifest says `at` (copies of one real backup).
fn backup_dated(env: &TestEnv, real: &Path, at: time::OffsetDateTime) -> String {
    let name = format!(
        "{:04}-{:02}-{:02}_{:02}{:02}{:02}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    );
    let dir = env.root().join(&name);
    copy_dir(real, &dir);
    let date = at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    edit_manifest(&dir, |m| m["backup_date"] = json!(date));
    name
}

#[test]
fn a_backup_dated_in_the_future_never_makes_prune_delete_real_ones() {
    let env = TestEnv::ai_memory();
    let real = env.backup(&["--collection", "conventions"]);
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap();
    let recent: Vec<String> = [1, 2, 3]
        .iter()
        .map(|days| backup_dated(&env, &real, now - time::Duration::days(*days)))
        .collect();
    let old = backup_dated(&env, &real, now - time::Duration::days(30));
    let future = backup_dated(
        &env,
        &real,
        time::macros::datetime!(2099-01-01 00:00:00 UTC),
    );
    std::fs::remove_dir_all(&real).unwrap();

    // `latest` is the newest real backup, not the one from 2099.
    let run = run_bounded(&env, &["verify", "latest"]);
    run.assert_code(0);
    assert!(run.stdout.contains(&recent[0]), "{}", run.stdout);

    let run = run_bounded(&env, &["prune", "--keep-within", "7d"]);
    run.assert_code(0);
    let left = env.root_entries();
    for name in recent.iter().chain([&future]) {
        assert!(left.contains(name), "{name} was deleted: {left:?}");
    }
    assert!(!left.contains(&old), "{old} is 30 days old: {left:?}");
    assert!(
        run.stderr.contains(&future) && run.stderr.contains("future"),
        "no warning about the future date:\n{}",
        run.stderr
    );

    // Only the future one and one real one are left: keep-last 1 keeps the real one.
    let run = run_bounded(&env, &["prune", "--keep-last", "1"]);
    run.assert_code(0);
    let left = env.root_entries();
    assert!(
        left.contains(&recent[0]) && left.contains(&future),
        "{left:?}"
    );
}

/// FIFOs planted in the install dir (`version.txt`, `docker/.env`, a config file) never hang a
/// backup: they are not regular files, so they are not read.
#[test]
fn fifos_in_the_install_dir_do_not_hang_a_backup() {
    let env = TestEnv::ai_memory();
    let install = env.install();
    std::fs::create_dir_all(install.join("docker")).unwrap();
    mkfifo(&install.join("version.txt"));
    mkfifo(&install.join("docker/.env"));
    let run = run_bounded(&env, &["backup", "--collection", "github"]);
    // The backup ends (the config copy of a FIFO fails as a config backup failure, exit 4),
    // instead of waiting forever for a writer.
    assert!(run.code == 0 || run.code == 4, "{run:?}");
}

/// `latest` is the backup root's newest complete backup, whatever the current folder holds: a
/// folder planted there under that name is not used; `./latest` reaches it.
#[test]
fn a_folder_named_latest_in_the_current_folder_never_stands_in_for_the_newest_backup() {
    let env = super::support::TestEnv::ai_memory();
    let newest = env.backup(&["--collection", "conventions"]);
    let cwd = env.tmp.path().join("cwd");
    std::fs::create_dir_all(&cwd).expect("cwd");
    // A planted "backup": a copy of the real one with a damaged snapshot.
    let planted = cwd.join("latest");
    super::support::copy_dir(&newest, &planted);
    let snapshot = planted.join("qdrant").join("conventions.snapshot");
    std::fs::write(&snapshot, b"planted").expect("plant");
    let verify = env.run_with(&["verify", "latest", "--json"], |c| {
        c.current_dir(&cwd);
    });
    verify.assert_code(0);
    let json = super::support::json_stdout(&verify);
    assert_eq!(
        json["backup"].as_str().map(std::path::Path::new),
        Some(newest.as_path()),
        "{json}"
    );
    let dry = env.run_with(&["restore", "latest", "--dry-run"], |c| {
        c.current_dir(&cwd);
    });
    dry.assert_code(0)
        .assert_stderr_contains(newest.file_name().and_then(|n| n.to_str()).expect("name"));
    // The planted folder is reached only by a path.
    env.run_with(&["verify", "./latest"], |c| {
        c.current_dir(&cwd);
    })
    .assert_code(2);
}

/// A manifest over the 4 MiB bound (issue 17): refused unread by every command that reads it,
/// with a message naming the file and the bound, instead of parsed (a crafted 16 MiB one took
/// 2 GB). Its bulk is an unknown field that the checksums cover.
#[test]
fn a_manifest_larger_than_any_real_one_is_refused_unread() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--collection", "conventions"]);
    edit_manifest(&backup, |m| {
        m["padding"] = json!("x".repeat(5 * 1024 * 1024))
    });
    rewrite_checksums(&backup);
    let shown = backup.to_str().unwrap();
    let run = run_bounded(&env, &["verify", "--json", shown]);
    run.assert_code(2);
    let report = json_stdout(&run);
    let problem = report["problems"][0]["problem"]
        .as_str()
        .unwrap_or_default();
    assert!(
        problem.contains("manifest.json") && problem.contains("larger than the 4 MiB"),
        "{report}"
    );
    run_bounded(&env, &["restore", "--dry-run", shown])
        .assert_code(2)
        .assert_stderr_contains("larger than the 4 MiB a manifest may be");
    let run = run_bounded(&env, &["list", "--json"]);
    run.assert_code(0);
    let listing = json_stdout(&run);
    assert_eq!(listing["backups"][0]["state"], "damaged", "{listing}");
    assert!(
        listing["backups"][0]["problem"]
            .as_str()
            .is_some_and(|p| p.contains("larger than the 4 MiB")),
        "{listing}"
    );
}

/// A collection's metadata (Qdrant 1.16 and later) is the user's own JSON and sits in the
/// snapshot's `config.json`: 8 MiB of it, made of small objects that would cost some 700 MiB as
/// a parsed tree, is skipped as it streams by, and the snapshot verifies (issue 17 first
/// refused any `config.json` over 1 MiB, which would have refused a real backup).
#[test]
fn a_collection_metadata_of_any_size_is_streamed_past() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--no-stream", "--collection", "conventions"]);
    let snapshot = backup.join("qdrant/conventions.snapshot");
    let real = std::fs::read(&snapshot).unwrap();
    let mut rebuilt = tar::Builder::new(Vec::new());
    for entry in tar::Archive::new(&real[..]).entries().unwrap() {
        let mut entry = entry.unwrap();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
        let mut header = entry.header().clone();
        if entry.path().unwrap().to_str() == Some("config.json") {
            let mut config: Value = serde_json::from_slice(&data).unwrap();
            config["metadata"] = json!({"notes": vec![json!({"a": 0}); 1024 * 1024]});
            data = serde_json::to_vec(&config).unwrap();
            assert!(data.len() > 8 * 1024 * 1024);
            header.set_size(data.len() as u64);
            header.set_cksum();
        }
        rebuilt.append(&header, &data[..]).unwrap();
    }
    std::fs::write(&snapshot, rebuilt.into_inner().unwrap()).unwrap();
    let size = std::fs::metadata(&snapshot).unwrap().len();
    edit_manifest(&backup, |m| {
        m["collections"]["conventions"]["size_bytes"] = json!(size);
        m["collections"]["conventions"]["sha256"] = json!(sha256_hex(&snapshot));
    });
    rewrite_checksums(&backup);
    let run = run_bounded(&env, &["verify", "--json", backup.to_str().unwrap()]);
    run.assert_code(0);
    let report = json_stdout(&run);
    assert_eq!(report["problems"], json!([]), "{report}");
}
