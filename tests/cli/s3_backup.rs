//! Backups in a bucket, end to end: `aimem backup --output s3://…`, then `list`, `verify`,
//! `restore` and `prune` of that root, against a real S3 server (s3s-fs) and the Qdrant
//! double. A backup in a bucket is there whole or not at all.

use std::process::Command;

use qdrant_double::{Config, Double};

use super::s3_server::S3Server;
use super::support::{KEY, TestEnv, json_stdout};

const BUCKET: &str = "backups";
const ROOT: &str = "s3://backups/aimem";

fn with_s3<'a>(server: &'a S3Server) -> impl FnOnce(&mut Command) + 'a {
    move |command: &mut Command| {
        for (name, value) in server.env() {
            command.env(name, value);
        }
    }
}

/// The names of the backups `list --json` shows for the bucket root, with their states.
fn listed(env: &TestEnv, server: &S3Server) -> Vec<(String, String)> {
    let run = env.run_with(&["list", ROOT, "--json"], with_s3(server));
    run.assert_code(0);
    let doc = json_stdout(&run);
    doc["backups"]
        .as_array()
        .expect("backups")
        .iter()
        .map(|b| {
            (
                b["name"].as_str().unwrap_or_default().to_string(),
                b["state"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[test]
fn a_backup_goes_to_a_bucket_and_comes_back_into_an_empty_server() {
    let env = TestEnv::ai_memory();
    let s3 = S3Server::start(BUCKET);
    let run = env.run_with(&["backup", "--output", ROOT], with_s3(&s3));
    run.assert_code(0);
    assert!(env.root_entries().is_empty(), "nothing written locally");

    let backups = listed(&env, &s3);
    assert_eq!(backups.len(), 1, "{backups:?}");
    assert_eq!(backups[0].1, "ok");
    let name = backups[0].0.clone();
    let objects = s3.objects(BUCKET);
    assert!(
        objects.contains(&format!("aimem/{name}/manifest.json")),
        "{objects:?}"
    );
    assert!(objects.contains(&format!("aimem/{name}/CHECKSUMS.sha256")));
    assert!(
        !objects.iter().any(|o| o.ends_with(".aimem-run.json")),
        "{objects:?}"
    );

    let backup = format!("{ROOT}/{name}");
    env.run_with(&["verify", &backup], with_s3(&s3))
        .assert_code(0);

    let empty = Double::start(Config {
        api_key: Some(KEY.to_string()),
        ..Config::default()
    });
    let url = empty.url();
    let restored = env.run_with(&["restore", &backup, "--force"], |c| {
        with_s3(&s3)(c);
        c.env("QDRANT_URL", &url);
    });
    restored.assert_code(0);
    let mut on_server = empty.collection_names();
    on_server.sort();
    let mut original = env.double.collection_names();
    original.sort();
    assert_eq!(on_server, original);

    // `latest` in a bucket root, as AI_MEMORY_BACKUP_DIR names it.
    env.run_with(&["verify", "latest"], |c| {
        with_s3(&s3)(c);
        c.env("AI_MEMORY_BACKUP_DIR", ROOT);
    })
    .assert_code(0);
}

#[test]
fn a_logical_backup_goes_to_a_bucket_too() {
    let env = TestEnv::ai_memory();
    let s3 = S3Server::start(BUCKET);
    env.run_with(
        &["backup", "--output", ROOT, "--format", "logical"],
        with_s3(&s3),
    )
    .assert_code(0);
    let backups = listed(&env, &s3);
    assert_eq!(backups.len(), 1);
    let backup = format!("{ROOT}/{}", backups[0].0);
    env.run_with(&["verify", &backup], with_s3(&s3))
        .assert_code(0);
    assert!(s3.objects(BUCKET).iter().any(|o| o.ends_with(".parquet")));
}

#[test]
fn prune_leaves_one_backup_and_no_object_of_the_others() {
    let env = TestEnv::ai_memory();
    let s3 = S3Server::start(BUCKET);
    for _ in 0..3 {
        env.run_with(
            &["backup", "--output", ROOT, "--collection", "github"],
            with_s3(&s3),
        )
        .assert_code(0);
        // Names are per second.
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    assert_eq!(listed(&env, &s3).len(), 3);
    env.run_with(&["prune", ROOT, "--keep-last", "1"], with_s3(&s3))
        .assert_code(0);
    let left = listed(&env, &s3);
    assert_eq!(left.len(), 1, "{left:?}");
    let objects = s3.objects(BUCKET);
    assert!(
        objects
            .iter()
            .all(|o| o.starts_with(&format!("aimem/{}/", left[0].0))),
        "{objects:?}"
    );
}

#[test]
fn bad_credentials_and_a_dead_endpoint_stop_the_backup_before_anything_is_made() {
    let env = TestEnv::ai_memory();
    let s3 = S3Server::start(BUCKET);
    let started = std::time::Instant::now();
    let refused = env.run_with(&["backup", "--output", ROOT], |c| {
        with_s3(&s3)(c);
        c.env("AWS_SECRET_ACCESS_KEY", "wrong-secret-wrong-secret");
    });
    refused.assert_code(2);
    refused.assert_stderr_contains("AWS_SECRET_ACCESS_KEY");
    assert!(!refused.all_output().contains("wrong-secret-wrong-secret"));
    assert_eq!(env.server_snapshots(), 0);

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead = env.run_with(&["backup", "--output", ROOT], |c| {
        with_s3(&s3)(c);
        c.env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"));
    });
    dead.assert_code(2);
    dead.assert_stderr_contains("cannot be reached");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    assert!(s3.objects(BUCKET).is_empty());
}

#[test]
fn a_backup_killed_mid_transfer_leaves_no_backup_and_the_next_one_clears_what_it_left() {
    use qdrant_double::{Fault, FaultKind};
    use std::time::Duration;

    let env = TestEnv::ai_memory();
    let s3 = S3Server::start(BUCKET);
    env.double.inject(Fault::new(
        Some("GET"),
        "/collections/conventions/snapshots/",
        FaultKind::StallBody {
            after_bytes: 100,
            stall: Duration::from_secs(60),
        },
    ));
    let mut command = env.command(&[
        "backup",
        "--output",
        ROOT,
        "--no-stream",
        "--collection",
        "conventions",
    ]);
    with_s3(&s3)(&mut command);
    let mut child = command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn aimem");
    super::support::wait_for_request(&env.double, "GET", |p| {
        p.starts_with("/collections/conventions/snapshots/")
    });
    std::process::Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status()
        .expect("kill");
    child.wait().expect("wait");
    env.double.clear_faults();

    // Something of the run is in the bucket, but no backup.
    assert!(!s3.objects(BUCKET).is_empty());
    let after_kill = listed(&env, &s3);
    assert!(
        after_kill.iter().all(|(_, state)| state == "incomplete"),
        "{after_kill:?}"
    );

    // The next backup (same machine, the killed process gone) removes it, and the snapshot
    // the killed run left on the server.
    env.run_with(
        &["backup", "--output", ROOT, "--collection", "github"],
        with_s3(&s3),
    )
    .assert_code(0);
    let backups = listed(&env, &s3);
    assert_eq!(backups.len(), 1, "{backups:?}");
    assert_eq!(backups[0].1, "ok");
    let objects = s3.objects(BUCKET);
    assert!(
        objects
            .iter()
            .all(|o| o.starts_with(&format!("aimem/{}/", backups[0].0))),
        "{objects:?}"
    );
    assert_eq!(s3.pending_parts(), 0);
    assert!(env.double.snapshot_names("conventions").is_empty());
}

/// Runs aimem with `args` (a `{}` stands for the bucket root) with the files it writes capped
/// at 8 KiB (`ulimit -f`, in 1,024-byte blocks): writing more kills it.
fn run_capped(env: &TestEnv, s3: &S3Server, args: &[&str]) -> super::support::Run {
    run_capped_with(env, s3, args, |_| {})
}

/// [`run_capped`] after `tweak` adjusts the command (another server to restore into...).
fn run_capped_with(
    env: &TestEnv,
    s3: &S3Server,
    args: &[&str],
    tweak: impl FnOnce(&mut Command),
) -> super::support::Run {
    // aimem's own command, for its environment and program.
    let aimem = env.command(&[]);
    let mut shell = std::process::Command::new("bash");
    for (key, value) in aimem.get_envs() {
        match value {
            Some(value) => shell.env(key, value),
            None => shell.env_remove(key),
        };
    }
    shell
        .arg("-c")
        .arg(r#"ulimit -f 8; exec "$0" "$@""#)
        .arg(aimem.get_program())
        .args(args.iter().map(|a| a.replace("{}", ROOT)));
    with_s3(s3)(&mut shell);
    tweak(&mut shell);
    super::support::to_run(shell.output().expect("run bash"))
}

/// The largest object in the bucket whose key ends with `suffix`, in bytes.
fn largest(s3: &S3Server, suffix: &str) -> u64 {
    s3.objects(BUCKET)
        .iter()
        .filter(|o| o.ends_with(suffix))
        .map(|o| std::fs::metadata(s3.object_path(BUCKET, o)).unwrap().len())
        .max()
        .unwrap_or(0)
}

#[test]
fn a_backup_to_a_bucket_needs_no_local_disk_for_its_snapshots() {
    let env = TestEnv::ai_memory();
    let s3 = S3Server::start(BUCKET);
    // Only the small journal is written locally.
    let run = run_capped(
        &env,
        &s3,
        &["backup", "--output", "{}", "--collection", "github"],
    );
    run.assert_code(0);
    let backups = listed(&env, &s3);
    assert_eq!(backups.len(), 1);
    let snapshot_size = largest(&s3, ".snapshot");
    assert!(
        snapshot_size > 8 * 1024,
        "the snapshot ({snapshot_size} bytes) is above the cap"
    );
}

/// A snapshot backup and a logical backup of `github` into the bucket.
fn back_up_github_both_ways(env: &TestEnv, s3: &S3Server) {
    for format in ["snapshot", "logical"] {
        env.run_with(
            &[
                "backup",
                "--output",
                ROOT,
                "--collection",
                "github",
                "--format",
                format,
            ],
            with_s3(s3),
        )
        .assert_code(0);
        // Names are per second.
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
}

#[test]
fn verify_reads_a_backup_in_a_bucket_in_place_without_a_local_copy() {
    let env = TestEnv::ai_memory();
    let s3 = S3Server::start(BUCKET);
    back_up_github_both_ways(&env, &s3);
    assert!(largest(&s3, ".snapshot") > 8 * 1024);
    assert!(largest(&s3, ".parquet") > 8 * 1024);
    let backups = listed(&env, &s3);
    assert_eq!(backups.len(), 2, "{backups:?}");
    for (name, _) in &backups {
        // Deep: every file hashed, the snapshot's archive walked, every Parquet row decoded,
        // with nowhere to put a copy of any of them.
        let backup = format!("{{}}/{name}");
        let run = run_capped(&env, &s3, &["verify", &backup, "--json"]);
        run.assert_code(0);
        let doc = json_stdout(&run);
        assert_eq!(doc["ok"], true, "{doc}");
        assert_eq!(doc["contents_checked"], true, "{doc}");
        assert_eq!(doc["deep"], true, "{doc}");
    }
    // `list --verify` reads them the same way.
    run_capped(&env, &s3, &["list", "{}", "--verify"]).assert_code(0);
}

#[test]
fn restore_reads_a_backup_in_a_bucket_in_place_without_a_local_copy() {
    let env = TestEnv::ai_memory();
    let s3 = S3Server::start(BUCKET);
    back_up_github_both_ways(&env, &s3);
    for (name, _) in listed(&env, &s3) {
        let empty = Double::start(Config {
            api_key: Some(KEY.to_string()),
            ..Config::default()
        });
        // Every file read, checked and uploaded with nowhere to put a copy of any of them.
        let backup = format!("{{}}/{name}");
        let run = run_capped_with(&env, &s3, &["restore", &backup, "--force"], |c| {
            c.env("QDRANT_URL", empty.url());
        });
        run.assert_code(0);
        assert_eq!(empty.collection_names(), ["github"], "{name}");
        assert_eq!(
            empty.point_ids("github").map(|ids| ids.len()),
            Some(30),
            "{name}"
        );
    }
}

#[test]
fn verify_in_place_finds_a_changed_missing_or_foreign_object() {
    let env = TestEnv::ai_memory();
    let s3 = S3Server::start(BUCKET);
    env.run_with(
        &["backup", "--output", ROOT, "--collection", "github"],
        with_s3(&s3),
    )
    .assert_code(0);
    let name = listed(&env, &s3)[0].0.clone();
    let objects = s3.objects(BUCKET);
    let snapshot = objects
        .iter()
        .find(|o| o.ends_with(".snapshot"))
        .expect("a snapshot object")
        .clone();
    // One byte changed inside the archive, its size the same.
    let path = s3.object_path(BUCKET, &snapshot);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&path, &bytes).unwrap();
    // A file the backup does not list, put beside its own.
    std::fs::write(
        s3.object_path(BUCKET, &format!("aimem/{name}/qdrant/stray.snapshot")),
        b"not listed",
    )
    .unwrap();
    // And one whose name is no safe path: reported, never read.
    std::fs::write(
        s3.object_path(BUCKET, &format!("aimem/{name}/odd\\name")),
        b"foreign",
    )
    .unwrap();
    let backup = format!("{ROOT}/{name}");
    let run = env.run_with(&["verify", &backup, "--json"], with_s3(&s3));
    run.assert_code(2);
    let doc = json_stdout(&run);
    let problems = doc["problems"].as_array().expect("problems");
    let kinds: Vec<(&str, &str)> = problems
        .iter()
        .map(|p| {
            (
                p["file"].as_str().unwrap_or_default(),
                p["kind"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    let relative = snapshot.trim_start_matches(&format!("aimem/{name}/"));
    assert!(kinds.contains(&(relative, "mismatch")), "{kinds:?}");
    assert!(
        kinds.contains(&("qdrant/stray.snapshot", "unlisted")),
        "{kinds:?}"
    );
    assert!(kinds.contains(&("odd\\name", "unlisted")), "{kinds:?}");

    // The snapshot gone altogether.
    std::fs::remove_file(&path).unwrap();
    let run = env.run_with(&["verify", &backup, "--json"], with_s3(&s3));
    run.assert_code(2);
    let doc = json_stdout(&run);
    assert!(
        doc["problems"]
            .as_array()
            .expect("problems")
            .iter()
            .any(|p| p["file"] == relative && p["kind"] == "missing"),
        "{doc}"
    );
}

#[test]
fn no_secret_key_or_signed_url_shows_in_any_output() {
    let env = TestEnv::ai_memory();
    let s3 = S3Server::start(BUCKET);
    let run = env.run_with(&["-v", "backup", "--output", ROOT, "--json"], |c| {
        with_s3(&s3)(c);
        c.env("AWS_SESSION_TOKEN", "session-token-that-is-secret");
    });
    // (s3s-fs does not take session tokens: the run may fail; its output must not leak.)
    let all = run.all_output();
    for secret in [
        super::s3_server::SECRET_KEY,
        "session-token-that-is-secret",
        "X-Amz-Signature",
        "X-Amz-Credential",
        "X-Amz-Security-Token",
    ] {
        assert!(!all.contains(secret), "{secret} in the output:\n{all}");
    }
    let verbose = env.run_with(&["-v", "list", ROOT], with_s3(&s3));
    let all = verbose.all_output();
    assert!(!all.contains(super::s3_server::SECRET_KEY), "{all}");
    assert!(!all.contains("X-Amz-Signature"), "{all}");
}
