//! Encrypted backups (`backup --encrypt`), end to end: every file but the manifest and the
//! checksum list is an age file that the `age` tool itself opens; no point, payload or API key
//! is readable without the key; `list` and a checksum-only `verify` work without it; `verify`
//! and `restore` need it, and without it (or with a wrong one) stop before anything changes.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use qdrant_double::{Config, Double};

use super::s3_server::S3Server;
use super::support::{KEY, TestEnv, json_stdout, manifest, rewrite_checksums, sha256sum_check};

const PASSPHRASE: &str = "correct horse battery staple";
const API_KEY_IN_SECRETS: &str = "QDRANT_API_KEY=ai-memory-secret-4f9c2a7e";

/// An AI Memory install whose `.env.secrets` holds an API key, and the five collections.
fn env_with_secrets() -> TestEnv {
    let env = TestEnv::ai_memory();
    let docker = env.install().join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    std::fs::write(
        docker.join(".env.secrets"),
        format!("{API_KEY_IN_SECRETS}\n"),
    )
    .unwrap();
    std::fs::write(docker.join(".env"), "QDRANT_PORT=26350\n").unwrap();
    env
}

fn with_passphrase(command: &mut Command) {
    command.env("AIMEM_PASSPHRASE", PASSPHRASE);
}

/// A backup of the `discussions` collection, encrypted with [`PASSPHRASE`], in the root.
fn passphrase_backup_of_discussions(env: &TestEnv) -> PathBuf {
    env.run_with(
        &["backup", "--encrypt", "--collection", "discussions"],
        with_passphrase,
    )
    .assert_code(0);
    env.only_backup()
}

/// Every file under `dir`, relative, with its bytes.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(base, &path, out);
            } else {
                let relative = path
                    .strip_prefix(base)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.push((relative, std::fs::read(&path).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every file but the manifest and the checksum list is an age file, and nothing readable
/// is in any of them: no tar or Parquet structure, no API key, no payload text.
fn assert_sealed(backup: &Path) {
    let all = files(backup);
    assert!(all.iter().any(|(f, _)| f == "CONTENTS.sha256"), "{all:?}");
    for (file, bytes) in &all {
        if file == "manifest.json" || file == "CHECKSUMS.sha256" {
            continue;
        }
        assert!(
            bytes.starts_with(b"age-encryption.org/v1\n"),
            "{file} is not an age file"
        );
        for plain in [
            b"ustar".as_slice(),
            API_KEY_IN_SECRETS.as_bytes(),
            b"ai-memory-secret",
            PLAIN_MARKERS[0],
            PLAIN_MARKERS[1],
        ] {
            assert!(
                !contains(bytes, plain),
                "{file} holds {:?}",
                String::from_utf8_lossy(plain)
            );
        }
    }
    for plain in [
        API_KEY_IN_SECRETS.as_bytes(),
        PLAIN_MARKERS[0],
        PLAIN_MARKERS[1],
    ] {
        let manifest = std::fs::read(backup.join("manifest.json")).unwrap();
        assert!(!contains(&manifest, plain));
    }
}

/// Texts a backup without encryption shows: the Parquet magic of a logical backup's points
/// files and the double's points inside a snapshot archive. Checked to be there first, so
/// their absence from an encrypted backup means something.
const PLAIN_MARKERS: [&[u8]; 2] = [b"PAR1", b"double-points"];

fn assert_markers_in_plain_backups(env: &TestEnv) {
    for (format, marker) in [
        ("logical", PLAIN_MARKERS[0]),
        ("snapshot", PLAIN_MARKERS[1]),
    ] {
        let plain = env.backup(&["--format", format, "--collection", "discussions"]);
        assert!(
            files(&plain)
                .iter()
                .any(|(_, bytes)| contains(bytes, marker)),
            "{format}"
        );
        std::fs::remove_dir_all(&plain).unwrap();
    }
}

/// `age -d` on `file` with the passphrase typed on a terminal, as a user would.
fn age_decrypt_with_passphrase(file: &Path) -> Vec<u8> {
    use std::io::{Read, Write};
    let out = tempfile::NamedTempFile::new().unwrap();
    let line = format!("age -d -o '{}' '{}'", out.path().display(), file.display());
    let mut child = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("util-linux `script` runs age on a terminal");
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !String::from_utf8_lossy(&seen).contains("passphrase") {
        assert!(std::time::Instant::now() < deadline, "age never asked");
        let n = stdout.read(&mut buf).unwrap();
        assert!(n > 0, "age ended: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(format!("{PASSPHRASE}\n").as_bytes())
        .unwrap();
    stdin.flush().unwrap();
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "age -d failed: {}",
        String::from_utf8_lossy(&seen)
    );
    std::fs::read(out.path()).unwrap()
}

fn age_keygen(dir: &Path) -> (PathBuf, String) {
    let identity = dir.join("key.txt");
    let made = Command::new("age-keygen")
        .arg("-o")
        .arg(&identity)
        .output()
        .expect("age-keygen (Debian package age)");
    assert!(made.status.success());
    let public = Command::new("age-keygen")
        .arg("-y")
        .arg(&identity)
        .output()
        .unwrap();
    let recipient = String::from_utf8(public.stdout).unwrap().trim().to_string();
    assert!(recipient.starts_with("age1"));
    (identity, recipient)
}

fn empty_server() -> Double {
    Double::start(Config {
        api_key: Some(KEY.to_string()),
        ..Config::default()
    })
}

#[test]
fn a_passphrase_backup_holds_nothing_readable_and_age_opens_each_file() {
    let env = env_with_secrets();
    assert_markers_in_plain_backups(&env);
    for format in ["snapshot", "logical"] {
        let run = env.run_with(
            &["backup", "--encrypt", "--format", format],
            with_passphrase,
        );
        run.assert_code(0);
        let backup = env.only_backup();
        assert_sealed(&backup);
        assert_eq!(
            manifest(&backup)["encryption"],
            serde_json::json!({"scheme": "age", "key": "passphrase"})
        );
        // The files as stored check with the tools every system has.
        sha256sum_check(&backup).assert_code(0);
        // The age tool opens them with the passphrase: the API key comes back byte for byte.
        let secrets = age_decrypt_with_passphrase(&backup.join("config/docker/.env.secrets"));
        assert_eq!(secrets, format!("{API_KEY_IN_SECRETS}\n").as_bytes());
        let contents = age_decrypt_with_passphrase(&backup.join("CONTENTS.sha256"));
        assert!(
            String::from_utf8(contents)
                .unwrap()
                .contains("  config/docker/.env.secrets\n")
        );
        std::fs::remove_dir_all(&backup).unwrap();
    }
}

#[test]
fn without_the_key_list_and_checksums_work_and_reading_stops_before_anything_changes() {
    let env = env_with_secrets();
    env.run_with(&["backup", "--encrypt"], with_passphrase)
        .assert_code(0);
    let backup = env.only_backup();
    let shown = backup.to_str().unwrap();

    let listed = env.run(&["list", "--verify", "--json"]);
    listed.assert_code(0);
    let doc = json_stdout(&listed);
    assert_eq!(doc["backups"][0]["state"], "ok");
    assert_eq!(doc["backups"][0]["verification"]["ok"], true, "{doc}");
    assert_eq!(doc["backups"][0]["encrypted"], "passphrase");

    let checked = env.run(&["verify", "--no-deep", shown, "--json"]);
    checked.assert_code(0);
    let doc = json_stdout(&checked);
    assert_eq!(doc["ok"], true);
    assert_eq!(doc["encrypted"], true);
    assert_eq!(doc["contents_checked"], false);
    let text = env.run(&["verify", "--no-deep", shown]);
    assert!(
        text.stdout.contains("as stored (encrypted"),
        "{}",
        text.stdout
    );

    // Reading what is inside needs the key: said before anything is read.
    let refused = env.run(&["verify", shown]);
    refused.assert_code(1);
    refused.assert_stderr_contains("encrypted with a passphrase, and none was given");
    refused.assert_stderr_contains("AIMEM_PASSPHRASE_FILE");

    // A restore without the key, or with a wrong one, changes nothing on the server.
    let target = empty_server();
    let url = target.url();
    let before = target.requests().len();
    let refused = env.run_with(&["restore", shown, "--force"], |c| {
        c.env("QDRANT_URL", &url);
    });
    refused.assert_code(1);
    refused.assert_stderr_contains("none was given");
    let wrong = env.run_with(&["restore", shown, "--force"], |c| {
        c.env("QDRANT_URL", &url).env("AIMEM_PASSPHRASE", "wrong");
    });
    wrong.assert_code(1);
    wrong.assert_stderr_contains("the key given does not open");
    assert!(!wrong.all_output().contains("wrong\n"));
    assert_eq!(
        target.requests().len(),
        before,
        "the server was not touched"
    );
    assert!(target.collection_names().is_empty());
}

#[test]
fn with_the_key_verify_reads_inside_and_restore_brings_back_every_collection() {
    let env = env_with_secrets();
    env.run_with(&["backup", "--encrypt"], with_passphrase)
        .assert_code(0);
    let backup = env.only_backup();
    let shown = backup.to_str().unwrap();
    let verified = env.run_with(&["verify", shown, "--json"], with_passphrase);
    verified.assert_code(0);
    let doc = json_stdout(&verified);
    assert_eq!(doc["contents_checked"], true, "{doc}");

    // The passphrase from a file, as cron jobs give it.
    let secret = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret.path(), format!("{PASSPHRASE}\n")).unwrap();
    let target = empty_server();
    let url = target.url();
    let restored = env.run_with(&["restore", shown, "--force"], |c| {
        c.env("QDRANT_URL", &url)
            .env("AIMEM_PASSPHRASE_FILE", secret.path());
    });
    restored.assert_code(0);
    let mut names = target.collection_names();
    names.sort();
    let mut original = env.double.collection_names();
    original.sort();
    assert_eq!(names, original);
    for name in &original {
        let count = |d: &Double| d.collection_info(name).unwrap()["points_count"].clone();
        assert_eq!(count(&target), count(&env.double), "{name}");
    }
    // The config files came back decrypted.
    let restored_secrets =
        std::fs::read_to_string(env.install().join("docker/.env.secrets")).unwrap();
    assert_eq!(restored_secrets, format!("{API_KEY_IN_SECRETS}\n"));
    // No decrypted copy is left behind.
    assert!(!restored.all_output().contains(PASSPHRASE));
}

#[test]
fn a_tampered_file_that_still_matches_its_checksum_does_not_decrypt_and_is_refused() {
    let env = env_with_secrets();
    let backup = passphrase_backup_of_discussions(&env);
    let shown = backup.to_str().unwrap();
    let snapshot = files(&backup)
        .into_iter()
        .find(|(f, _)| f.starts_with("qdrant/"))
        .expect("a snapshot")
        .0;
    let path = backup.join(&snapshot);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() - 40;
    bytes[middle] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    // Checked as stored, the altered file now matches again...
    rewrite_checksums(&backup);
    env.run(&["verify", "--no-deep", shown]).assert_code(0);
    // ...but it no longer decrypts: verify says which file, restore refuses.
    let verified = env.run_with(&["verify", shown, "--json"], with_passphrase);
    verified.assert_code(2);
    let doc = json_stdout(&verified);
    let problems = doc["problems"].as_array().unwrap();
    assert!(
        problems
            .iter()
            .any(|p| p["file"] == snapshot.as_str() && p["kind"] == "undecryptable"),
        "{doc}"
    );
    let target = empty_server();
    let url = target.url();
    let refused = env.run_with(&["restore", shown, "--force"], |c| {
        with_passphrase(c);
        c.env("QDRANT_URL", &url);
    });
    refused.assert_code(2);
    refused.assert_stderr_contains("does not decrypt");
    assert!(target.collection_names().is_empty());
}

#[test]
fn a_changed_manifest_is_refused_once_the_backup_is_opened() {
    let env = env_with_secrets();
    let backup = passphrase_backup_of_discussions(&env);
    let shown = backup.to_str().unwrap();
    // Readable, so changeable without the key: here, the count a restore checks against.
    super::support::edit_manifest(&backup, |m| {
        m["collections"]["discussions"]["records"] = serde_json::json!(7);
    });
    rewrite_checksums(&backup);
    env.run(&["verify", "--no-deep", shown]).assert_code(0);
    let verified = env.run_with(&["verify", shown], with_passphrase);
    verified.assert_code(2);
    verified.assert_stderr_contains("not the manifest the backup was made with");
    let target = empty_server();
    let url = target.url();
    let refused = env.run_with(&["restore", shown, "--force"], |c| {
        with_passphrase(c);
        c.env("QDRANT_URL", &url);
    });
    refused.assert_code(2);
    assert!(
        target.requests().is_empty(),
        "nothing was asked of the server"
    );
}

#[test]
fn a_dropped_download_into_an_encrypted_local_backup_is_taken_again_by_retry() {
    use qdrant_double::{Fault, FaultKind};
    let env = env_with_secrets();
    env.double.inject(Fault::new(
        Some("GET"),
        "/collections/github/snapshots/",
        FaultKind::TruncateBody { after_bytes: 1000 },
    ));
    let run = env.run_with(
        &["backup", "--encrypt", "--no-stream", "--retry", "1"],
        with_passphrase,
    );
    run.assert_code(0).assert_stderr_contains("retry 1 of 1");
    let backup = env.only_backup();
    sha256sum_check(&backup).assert_code(0);
    env.run_with(&["verify", backup.to_str().unwrap()], with_passphrase)
        .assert_code(0);
    // One staging folder, the backup's, holds the run's journal: none is left beside it.
    assert_eq!(env.root_entries().len(), 1, "{:?}", env.root_entries());
}

#[test]
fn pre_restore_snapshots_of_an_encrypted_restore_go_beside_the_backup_not_to_the_temporary_folder()
{
    let env = env_with_secrets();
    let backup = passphrase_backup_of_discussions(&env);
    super::support::fail_restore_and_rollback(&env);
    let scratch = tempfile::tempdir().unwrap();
    let run = env.run_with(&["restore", backup.to_str().unwrap(), "--force"], |c| {
        with_passphrase(c);
        c.env("TMPDIR", scratch.path());
    });
    run.assert_code(5);
    assert!(
        env.root_entries()
            .iter()
            .any(|e| e.starts_with(".aimem-prerestore-")),
        "{:?}",
        env.root_entries()
    );
    // (TMPDIR also holds aimem's lock folder, `aimem-<uid>`.)
    let in_scratch: Vec<_> = std::fs::read_dir(scratch.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains("prerestore") || name.starts_with("aimem-opened-"))
        .collect();
    assert!(in_scratch.is_empty(), "left in TMPDIR: {in_scratch:?}");
}

#[test]
fn recipients_encrypt_into_a_bucket_and_an_identity_restores() {
    let env = env_with_secrets();
    let keys = tempfile::tempdir().unwrap();
    let (identity, recipient) = age_keygen(keys.path());
    let s3 = S3Server::start("vault");
    let with_s3 = |c: &mut Command| {
        for (name, value) in s3.env() {
            c.env(name, value);
        }
    };
    env.run_with(
        &[
            "backup",
            "--encrypt",
            "--recipient",
            &recipient,
            "--output",
            "s3://vault/aimem",
        ],
        with_s3,
    )
    .assert_code(0);
    let stored = s3.root.path().join("vault/aimem");
    let name = std::fs::read_dir(&stored)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .find(|n| !n.starts_with('.'))
        .expect("the backup");
    let in_bucket = stored.join(&name);
    assert_sealed(&in_bucket);
    assert_eq!(manifest(&in_bucket)["encryption"]["key"], "recipients");
    // The age tool opens a file with the identity.
    let opened = Command::new("age")
        .args(["-d", "-i"])
        .arg(&identity)
        .arg(in_bucket.join("config/docker/.env.secrets"))
        .output()
        .unwrap();
    assert!(opened.status.success());
    assert_eq!(opened.stdout, format!("{API_KEY_IN_SECRETS}\n").as_bytes());

    let url_backup = format!("s3://vault/aimem/{name}");
    let refused = env.run_with(&["verify", &url_backup], with_s3);
    refused.assert_code(1);
    refused.assert_stderr_contains("--identity FILE");
    let identity_arg = identity.to_str().unwrap();
    env.run_with(
        &["verify", &url_backup, "--identity", identity_arg],
        with_s3,
    )
    .assert_code(0);
    let target = empty_server();
    let url = target.url();
    env.run_with(
        &[
            "restore",
            &url_backup,
            "--force",
            "--identity",
            identity_arg,
        ],
        |c| {
            with_s3(c);
            c.env("QDRANT_URL", &url);
        },
    )
    .assert_code(0);
    assert_eq!(
        target.collection_names().len(),
        env.double.collection_names().len()
    );
    // An identity that is not a recipient's opens nothing.
    let elsewhere = tempfile::tempdir().unwrap();
    let (stranger, _) = age_keygen(elsewhere.path());
    let wrong = env.run_with(
        &[
            "verify",
            &url_backup,
            "--identity",
            stranger.to_str().unwrap(),
        ],
        with_s3,
    );
    wrong.assert_code(1);
    wrong.assert_stderr_contains("the key given does not open");
}

#[test]
fn encrypt_without_a_key_or_with_a_bad_recipient_starts_nothing() {
    let env = env_with_secrets();
    let run = env.run(&["backup", "--encrypt"]);
    run.assert_code(1);
    run.assert_stderr_contains("--encrypt needs a key");
    let bad = env.run(&["backup", "--encrypt", "--recipient", "age1notakey"]);
    bad.assert_code(1);
    bad.assert_stderr_contains("not an age public key");
    let both = env.run_with(&["backup", "--encrypt"], |c| {
        c.env("AIMEM_PASSPHRASE", "x")
            .env("AIMEM_PASSPHRASE_FILE", "/nonexistent");
    });
    both.assert_code(1);
    both.assert_stderr_contains("both AIMEM_PASSPHRASE and AIMEM_PASSPHRASE_FILE");
    // --recipient alone is no request to encrypt: it says so.
    let alone = env.run(&["backup", "--recipient", "age1x"]);
    alone.assert_code(1);
    assert!(env.root_entries().is_empty());
    assert_eq!(env.server_snapshots(), 0);
}

#[test]
fn a_signal_while_a_restore_waits_leaves_no_decrypted_copy_behind() {
    use qdrant_double::{Fault, FaultKind};
    let env = env_with_secrets();
    let backup = passphrase_backup_of_discussions(&env);
    let scratch = tempfile::tempdir().unwrap();
    let copies = || {
        std::fs::read_dir(scratch.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("aimem-opened-")
            })
            .count()
    };
    // The server takes the restore's first question and answers none: aimem waits with the
    // decrypted copy made.
    let target = empty_server();
    target.inject(Fault::new(Some("GET"), "/", FaultKind::Blackhole));
    let child = env
        .command(&["restore", backup.to_str().unwrap(), "--force"])
        .env("QDRANT_URL", target.url())
        .env("AIMEM_PASSPHRASE", PASSPHRASE)
        .env("TMPDIR", scratch.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    super::support::wait_for_request(&target, "GET", |_| true);
    assert_eq!(copies(), 1, "the backup is read from a decrypted copy");
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let run = super::support::to_run(child.wait_with_output().unwrap());
    assert_eq!(run.code, 130, "{}", run.all_output());
    assert_eq!(copies(), 0, "no plaintext copy is left behind");
}

#[test]
fn a_snapshot_of_several_parts_is_encrypted_into_a_bucket_and_restored_from_it() {
    let env = env_with_secrets();
    // Big enough for a multipart upload of several parts, and incompressible.
    env.double
        .set_snapshot_filler("discussions", 20 * 1024 * 1024);
    let s3 = S3Server::start("vault");
    let with_s3 = |c: &mut Command| {
        for (name, value) in s3.env() {
            c.env(name, value);
        }
        c.env("AIMEM_PASSPHRASE", PASSPHRASE);
    };
    let run = env.run_with(
        &[
            "backup",
            "--encrypt",
            "--collection",
            "discussions",
            "--output",
            "s3://vault/aimem",
            "--json",
        ],
        with_s3,
    );
    run.assert_code(0);
    let url_backup = json_stdout(&run)["folder"].as_str().unwrap().to_string();
    let name = url_backup.rsplit('/').next().unwrap();
    let stored = s3.root.path().join("vault/aimem").join(name);
    let snapshot = files(&stored)
        .into_iter()
        .find(|(f, _)| f.starts_with("qdrant/"))
        .expect("a snapshot");
    assert!(snapshot.1.len() > 18 * 1024 * 1024, "{}", snapshot.1.len());
    assert!(snapshot.1.starts_with(b"age-encryption.org/v1\n"));
    assert_eq!(s3.pending_parts(), 0);
    env.run_with(&["verify", &url_backup], with_s3)
        .assert_code(0);
    let target = empty_server();
    let url = target.url();
    env.run_with(&["restore", &url_backup, "--force"], |c| {
        with_s3(c);
        c.env("QDRANT_URL", &url);
    })
    .assert_code(0);
    assert_eq!(target.collection_names(), vec!["discussions".to_string()]);
}

#[test]
fn on_a_terminal_the_passphrase_is_typed_twice_to_encrypt_and_once_to_open() {
    let env = env_with_secrets();
    let typed = format!("{PASSPHRASE}\n");
    let run = super::support::converse_on_a_terminal(
        &env,
        &["backup", "--encrypt", "--collection", "discussions"],
        &[("Passphrase", &typed), ("Repeat the passphrase", &typed)],
    );
    assert_eq!(run.code, 0, "{}", run.all_output());
    assert!(
        run.stdout.contains("Repeat the passphrase"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains(PASSPHRASE), "never echoed");
    let backup = env.only_backup();
    // The typed passphrase is the one the backup opens with.
    env.run_with(&["verify", backup.to_str().unwrap()], with_passphrase)
        .assert_code(0);
    let opened = super::support::run_on_a_terminal(
        &env,
        &["verify", backup.to_str().unwrap()],
        "Passphrase",
        &format!("{PASSPHRASE}\n"),
    );
    assert_eq!(opened.code, 0, "{}", opened.all_output());
    let wrong = super::support::run_on_a_terminal(
        &env,
        &["verify", backup.to_str().unwrap()],
        "Passphrase",
        "not it\n",
    );
    assert_eq!(wrong.code, 1, "{}", wrong.all_output());
}

#[test]
fn an_encrypted_backup_without_its_contents_list_is_called_damaged_not_unreachable() {
    let env = env_with_secrets();
    let backup = passphrase_backup_of_discussions(&env);
    std::fs::remove_file(backup.join("CONTENTS.sha256")).unwrap();
    let run = env.run_with(&["verify", backup.to_str().unwrap()], with_passphrase);
    run.assert_code(2);
    run.assert_stderr_contains("every encrypted backup has one");
    run.assert_stderr_contains("damaged or was altered");
}

#[test]
#[cfg_attr(
    not(debug_assertions),
    ignore = "uses AIMEM_TEST_FREE_SPACE, which exists only in debug builds"
)]
fn an_encrypted_backup_into_a_folder_checks_the_free_space_each_snapshot_needs() {
    let env = TestEnv::ai_memory();
    // The estimate fits (a 30-point collection), the real snapshot (64 MiB of filler) does not.
    env.double
        .set_snapshot_filler("conventions", 64 * 1024 * 1024);
    let run = env.run_with(&["backup", "--no-stream", "--encrypt"], |c| {
        with_passphrase(c);
        c.env("AIMEM_TEST_FREE_SPACE", "100000000");
    });
    run.assert_code(3)
        .assert_stderr_contains("snapshot of `conventions`");
    assert!(
        env.root_entries().is_empty(),
        "nothing left: {:?}",
        env.root_entries()
    );
}
