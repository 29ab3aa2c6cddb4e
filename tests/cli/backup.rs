//! `aimem backup` against the Qdrant double.

use std::time::{Duration, Instant};

use qdrant_double::{AI_MEMORY_COLLECTIONS, Fault, FaultKind};
use serde_json::Value;

use super::support::{
    KEY, TestEnv, fixture_result, manifest, mode, sha256sum_check, wait_for_request,
};

/// The canonical fingerprint aimem must record for a collection info (`result` of GET).
fn expected_schema(info: &Value) -> Value {
    aimem::fingerprint::Fingerprint::from_collection_info(info)
        .expect("fingerprint")
        .as_value()
        .clone()
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

#[test]
fn full_backup_of_the_five_collections_passes_sha256sum() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--no-stream"]);
    assert_eq!(
        backup,
        env.only_backup(),
        "stdout carries the backup's path"
    );
    let name = backup.file_name().unwrap().to_string_lossy().to_string();
    assert!(
        name.len() == 17 && name.as_bytes()[10] == b'_',
        "dated folder name: {name}"
    );

    let check = sha256sum_check(&backup);
    assert_eq!(
        check.code, 0,
        "sha256sum -c failed:\n{}{}",
        check.stdout, check.stderr
    );
    let listed = std::fs::read_to_string(backup.join("CHECKSUMS.sha256")).unwrap();
    assert!(listed.lines().any(|l| l.ends_with("  manifest.json")));

    let manifest = manifest(&backup);
    for name in AI_MEMORY_COLLECTIONS {
        let entry = &manifest["collections"][name];
        assert_eq!(entry["name"], name);
        assert_eq!(entry["records"], 30, "{name}: exact count");
        assert_eq!(entry["snapshot_file"], format!("{name}.snapshot"));
        let file = backup.join("qdrant").join(format!("{name}.snapshot"));
        assert_eq!(
            entry["size_bytes"],
            std::fs::metadata(&file).unwrap().len(),
            "{name}"
        );
        assert!(listed.contains(&format!(
            "{}  qdrant/{name}.snapshot",
            entry["sha256"].as_str().unwrap()
        )));
        // The fingerprint equals the one computed from the real fixture, not just the double.
        let fixture = fixture_result(&format!("collections/info-{name}.json"));
        assert_eq!(
            entry["schema"],
            expected_schema(&fixture),
            "{name}: fingerprint"
        );
        assert!(
            entry["schema"]["payload_schema"]
                .as_object()
                .unwrap()
                .values()
                .all(|i| i.get("points").is_none())
        );
        let digest = aimem::fingerprint::Fingerprint::from_collection_info(&fixture)
            .unwrap()
            .digest();
        assert_eq!(entry["schema_digest"], digest.as_str());
    }
    assert_eq!(manifest["qdrant_host"], "127.0.0.1");
    assert_eq!(manifest["qdrant_port"], env.double.port());
    assert_eq!(manifest["qdrant_version"], "1.18.3");
    assert_eq!(manifest["aimem_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(manifest["includes_logs"], false);
    assert_eq!(manifest["ai_memory_version"], "unknown");
    // Server snapshots are deleted once downloaded and verified.
    assert_eq!(env.server_snapshots(), 0);
    // Downloads ask for the plain bytes Qdrant's checksum covers.
    let downloads: Vec<_> = env
        .double
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path.contains("/snapshots/"))
        .collect();
    assert_eq!(downloads.len(), 5);
    assert!(
        downloads
            .iter()
            .all(|r| r.headers.get("accept-encoding").map(String::as_str) == Some("identity"))
    );
    // Snapshots are created with wait=true, never wait=false.
    assert!(
        env.double
            .requests()
            .iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/snapshots"))
            .all(|r| r.query.get("wait").map(String::as_str) == Some("true"))
    );
}

#[test]
fn collections_missing_on_the_server_are_skipped_with_a_note() {
    let env = TestEnv::new();
    env.double
        .seed_from_fixture("discussions", "collections/info-discussions.json", 12);
    env.double
        .seed_from_fixture("github", "collections/info-github.json", 7);
    let run = env.run(&["backup"]);
    run.assert_code(0)
        .assert_stderr_contains("conventions: not on the server, skipped");
    let manifest = manifest(&env.only_backup());
    let names: Vec<&String> = manifest["collections"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(names, ["discussions", "github"]);
    assert_eq!(manifest["collections"]["github"]["records"], 7);
}

#[test]
fn a_named_collection_the_server_lacks_is_an_error() {
    let env = TestEnv::ai_memory();
    let run = env.run(&[
        "backup",
        "--collection",
        "discussions",
        "--collection",
        "nope",
    ]);
    run.assert_code(2).assert_stderr_contains("nope");
    assert!(
        run.stderr.contains("discussions, conventions") || run.stderr.contains("code-patterns"),
        "lists what the server has"
    );
    assert_nothing_left(&env);
}

#[test]
fn no_collection_to_back_up_lists_what_the_server_has() {
    let env = TestEnv::new();
    env.double
        .seed_from_fixture("products", "collections/info-uint8-manhattan.json", 3);
    let run = env.run(&["backup"]);
    run.assert_code(2)
        .assert_stderr_contains("products")
        .assert_stderr_contains("--all");
    assert_nothing_left(&env);
    // --all takes any collection, --collection exactly the named ones.
    let backup = env.backup(&["--all"]);
    assert_eq!(manifest(&backup)["collections"]["products"]["records"], 3);
}

#[test]
fn collection_restricts_the_backup_to_the_named_ones() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--collection", "github", "--collection", "jira-data"]);
    let manifest = manifest(&backup);
    let names: Vec<&String> = manifest["collections"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(names, ["github", "jira-data"]);
    let snapshots: Vec<String> = std::fs::read_dir(backup.join("qdrant"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into())
        .collect();
    assert_eq!(snapshots.len(), 2, "no partial files left: {snapshots:?}");
}

#[test]
fn a_wrong_or_missing_api_key_exits_1_and_never_prints_the_key() {
    let env = TestEnv::ai_memory();
    let wrong = "wrong-key-that-must-not-leak";
    let run = env.run_with(&["backup"], |c| {
        c.env("QDRANT_API_KEY", wrong);
    });
    run.assert_code(1)
        .assert_stderr_contains("QDRANT_API_KEY")
        .assert_stderr_contains("docker/.env");
    run.assert_stderr_contains("Invalid API key");
    assert!(
        !run.all_output().contains(wrong),
        "the key leaked:\n{}",
        run.all_output()
    );
    assert_nothing_left(&env);

    let run = env.run_with(&["backup"], |c| {
        c.env_remove("QDRANT_API_KEY");
    });
    run.assert_code(1)
        .assert_stderr_contains("QDRANT_API_KEY is not set");
    assert_nothing_left(&env);

    // A good run never shows the key either, nor does --help.
    let ok = env.run(&["backup"]);
    ok.assert_code(0);
    assert!(!ok.all_output().contains(KEY));
    let manifest_text = std::fs::read_to_string(env.only_backup().join("manifest.json")).unwrap();
    assert!(!manifest_text.contains(KEY));
    let help = env.run(&["backup", "--help"]);
    help.assert_code(0);
    assert!(!help.all_output().contains(KEY));
}

#[test]
fn a_read_only_key_is_told_to_use_the_manage_key() {
    let double = qdrant_double::Double::start(qdrant_double::Config {
        api_key: Some(KEY.into()),
        read_only_api_key: Some("read-only-key".into()),
        ..Default::default()
    });
    double.seed_ai_memory();
    let env = TestEnv::new();
    let run = env.run_with(&["backup", "--no-stream"], |c| {
        c.env("QDRANT_URL", double.url())
            .env("QDRANT_API_KEY", "read-only-key");
    });
    // Reading works with that key; creating the snapshot is refused: a key problem, exit 1.
    run.assert_code(1).assert_stderr_contains("manage access");
    assert_eq!(env.root_entries(), Vec::<String>::new());
}

#[test]
fn connection_refused_says_how_to_start_qdrant() {
    let env = TestEnv::ai_memory();
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let run = env.run_with(&["backup"], |c| {
        c.env("QDRANT_URL", format!("http://127.0.0.1:{port}"));
    });
    run.assert_code(1)
        .assert_stderr_contains("cannot reach Qdrant")
        .assert_stderr_contains("docker compose up -d");
    assert_eq!(env.root_entries(), Vec::<String>::new());
    // Host and port variables are used when no URL is given.
    let run = env.run_with(&["backup"], |c| {
        c.env_remove("QDRANT_URL")
            .env("QDRANT_HOST", "127.0.0.1")
            .env("QDRANT_PORT", port.to_string());
    });
    run.assert_code(1)
        .assert_stderr_contains(&format!("127.0.0.1:{port}"));
}

#[test]
fn failing_snapshot_creation_leaves_nothing_behind() {
    let env = TestEnv::ai_memory();
    // The third collection fails: two snapshots already exist on the server by then.
    env.double.inject(Fault::always(
        Some("POST"),
        "/collections/code-patterns/snapshots",
        FaultKind::Status {
            code: 500,
            message: "Service internal error: No space left on device".into(),
        },
    ));
    let run = env.run(&["backup", "--no-stream"]);
    run.assert_code(2)
        .assert_stderr_contains("code-patterns")
        .assert_stderr_contains("No space left on device");
    assert_nothing_left(&env);
}

#[test]
fn a_download_dropped_mid_stream_is_recovered_by_retry() {
    let env = TestEnv::ai_memory();
    env.double.inject(Fault::new(
        Some("GET"),
        "/collections/github/snapshots/",
        FaultKind::TruncateBody { after_bytes: 1000 },
    ));
    let run = env.run(&["backup", "--no-stream", "--retry", "1"]);
    run.assert_code(0).assert_stderr_contains("retry 1 of 1");
    let backup = env.only_backup();
    assert_eq!(sha256sum_check(&backup).code, 0);
    let leftovers: Vec<String> = std::fs::read_dir(backup.join("qdrant"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into())
        .filter(|n: &String| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "partial files left: {leftovers:?}");
    assert_eq!(env.server_snapshots(), 0);
}

#[test]
fn a_dropped_download_without_retry_fails_cleanly() {
    let env = TestEnv::ai_memory();
    env.double.inject(Fault::new(
        Some("GET"),
        "/collections/github/snapshots/",
        FaultKind::TruncateBody { after_bytes: 1000 },
    ));
    let run = env.run(&["backup", "--no-stream"]);
    run.assert_code(2).assert_stderr_contains("github");
    assert_nothing_left(&env);
    // A dropped connection (no response at all) is handled the same way.
    env.double.inject(Fault::new(
        Some("GET"),
        "/collections/github/snapshots/",
        FaultKind::DropConnection,
    ));
    env.run(&["backup", "--no-stream"]).assert_code(2);
    assert_nothing_left(&env);
}

#[test]
fn a_checksum_mismatch_fails_the_backup() {
    let env = TestEnv::ai_memory();
    env.double.inject(Fault::always(
        Some("POST"),
        "/collections/conventions/snapshots",
        FaultKind::WrongChecksum,
    ));
    let run = env.run(&["backup", "--no-stream", "--retry", "1"]);
    run.assert_code(2)
        .assert_stderr_contains("conventions")
        .assert_stderr_contains("does not match what Qdrant reported");
    assert_nothing_left(&env);
}

#[test]
fn a_stalled_download_times_out_but_a_moving_one_does_not() {
    let env = TestEnv::ai_memory();
    // Stalls longer than the timeout: fails within about the timeout, not the stall.
    env.double.inject(Fault::new(
        Some("GET"),
        "/collections/discussions/snapshots/",
        FaultKind::StallBody {
            after_bytes: 100,
            stall: Duration::from_secs(20),
        },
    ));
    let started = Instant::now();
    let run = env.run_with(
        &["backup", "--no-stream", "--collection", "discussions"],
        |c| {
            c.env("BACKUP_SNAPSHOT_DOWNLOAD_TIMEOUT", "1");
        },
    );
    run.assert_code(2).assert_stderr_contains("timed out");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the stall timeout did not fire"
    );
    assert_nothing_left(&env);
    // A pause shorter than the stall timeout is not a stall: the download completes.
    env.double.inject(Fault::new(
        Some("GET"),
        "/collections/discussions/snapshots/",
        FaultKind::StallBody {
            after_bytes: 100,
            stall: Duration::from_millis(1500),
        },
    ));
    let run = env.run_with(
        &["backup", "--no-stream", "--collection", "discussions"],
        |c| {
            c.env("BACKUP_SNAPSHOT_DOWNLOAD_TIMEOUT", "3");
        },
    );
    run.assert_code(0);
}

#[test]
fn an_interrupted_backup_leaves_no_backup_looking_folder() {
    let env = TestEnv::ai_memory();
    env.double.inject(Fault::new(
        Some("GET"),
        "/collections/conventions/snapshots/",
        FaultKind::StallBody {
            after_bytes: 100,
            stall: Duration::from_secs(30),
        },
    ));
    let child = env
        .command(&["backup", "--no-stream"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the stalled download is under way (the second collection's snapshot exists).
    wait_for_request(&env.double, "GET", |p| {
        p.contains("/collections/conventions/snapshots/")
    });
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        env.root_entries()
            .iter()
            .any(|e| e.starts_with(".aimem-staging-")),
        "work happens in a hidden staging folder"
    );
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let started = Instant::now();
    let output = child.wait_with_output().unwrap();
    let run = super::support::to_run(output);
    run.assert_code(130);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "Ctrl-C must not wait for the stall to end"
    );
    assert_nothing_left(&env);
}

#[test]
#[cfg_attr(
    not(debug_assertions),
    ignore = "uses AIMEM_TEST_FREE_SPACE, which exists only in debug builds"
)]
fn not_enough_disk_space_exits_3_before_any_snapshot() {
    let env = TestEnv::ai_memory();
    let run = env.run_with(&["backup"], |c| {
        c.env("AIMEM_TEST_FREE_SPACE", "1000000");
    });
    run.assert_code(3)
        .assert_stderr_contains("not enough free space")
        .assert_stderr_contains("--output");
    assert_nothing_left(&env);
    assert!(
        !env.double
            .requests()
            .iter()
            .any(|r| r.method == "POST" && r.path.ends_with("/snapshots")),
        "no snapshot was created"
    );
}

#[test]
#[cfg_attr(
    not(debug_assertions),
    ignore = "uses AIMEM_TEST_FREE_SPACE, which exists only in debug builds"
)]
fn the_real_snapshot_size_is_checked_before_downloading() {
    let env = TestEnv::ai_memory();
    // The estimate fits (a 30-point collection), the real snapshot (64 MiB of filler) does not.
    env.double
        .set_snapshot_filler("conventions", 64 * 1024 * 1024);
    let run = env.run_with(&["backup", "--no-stream"], |c| {
        c.env("AIMEM_TEST_FREE_SPACE", "100000000");
    });
    run.assert_code(3)
        .assert_stderr_contains("snapshot of `conventions`");
    assert_nothing_left(&env);
}

#[test]
fn config_files_are_copied_byte_for_byte_with_private_modes() {
    let env = TestEnv::ai_memory();
    let install = env.install();
    std::fs::create_dir_all(install.join(".claude")).unwrap();
    std::fs::create_dir_all(install.join("docker")).unwrap();
    let files = [
        (
            ".claude/settings.json",
            "settings.json",
            b"{\"hooks\": {}}\n".to_vec(),
        ),
        (".env", ".env", b"LEGACY=1\r\nno newline at end".to_vec()),
        (
            "docker/.env",
            "docker/.env",
            b"QDRANT_API_KEY=abc\nHYBRID_SEARCH_ENABLED=false\nBM25_SPARSE_ENABLED=\"true\"\n"
                .to_vec(),
        ),
        (
            "docker/.env.secrets",
            "docker/.env.secrets",
            vec![0, 159, 146, 150, b'\n'],
        ),
    ];
    for (source, _, bytes) in &files {
        std::fs::write(install.join(source), bytes).unwrap();
    }
    std::fs::write(install.join("version.txt"), "2.4.1\n").unwrap();
    let run = env.run_with(&["backup"], |c| {
        c.env("COLBERT_RERANKING_ENABLED", "true");
    });
    run.assert_code(0);
    let backup = env.only_backup();
    for (_, copy, bytes) in &files {
        let path = backup.join("config").join(copy);
        assert_eq!(
            &std::fs::read(&path).unwrap(),
            bytes,
            "{copy} copied byte for byte"
        );
        assert_eq!(mode(&path), 0o600, "{copy} is private");
    }
    assert_eq!(
        mode(&backup),
        0o700,
        "the backup folder is not world-readable"
    );
    assert_eq!(mode(&backup.join("manifest.json")) & 0o077, 0);
    let written = manifest(&backup);
    assert_eq!(
        written["config_files"],
        serde_json::json!([
            "settings.json",
            ".env",
            "docker/.env",
            "docker/.env.secrets"
        ])
    );
    assert_eq!(written["ai_memory_version"], "2.4.1");
    assert_eq!(
        written["runtime_flags"]["COLBERT_RERANKING_ENABLED"], "true",
        "from the environment"
    );
    assert_eq!(
        written["runtime_flags"]["HYBRID_SEARCH_ENABLED"], "false",
        "from docker/.env"
    );
    assert_eq!(written["runtime_flags"]["BM25_SPARSE_ENABLED"], "true");
    assert_eq!(sha256sum_check(&backup).code, 0);
    // --version overrides version.txt.
    std::fs::remove_dir_all(&backup).unwrap();
    let backup = env.backup(&["--version", "9.9.9"]);
    assert_eq!(manifest(&backup)["ai_memory_version"], "9.9.9");
}

#[test]
fn an_unreadable_config_file_exits_4_and_leaves_nothing() {
    let env = TestEnv::ai_memory();
    std::fs::create_dir_all(env.install().join("docker")).unwrap();
    std::fs::write(env.install().join("docker/.env"), "A=1\n").unwrap();
    // A regular file whose read fails with EIO, even for root: the reading process's own
    // memory at offset 0.
    std::os::unix::fs::symlink("/proc/self/mem", env.install().join("docker/.env.secrets"))
        .unwrap();
    let run = env.run(&["backup"]);
    run.assert_code(4)
        .assert_stderr_contains("docker/.env.secrets");
    assert_nothing_left(&env);
}

#[test]
fn logs_are_included_on_request() {
    let env = TestEnv::ai_memory();
    std::fs::create_dir_all(env.install().join("logs/old")).unwrap();
    std::fs::write(env.install().join("logs/hooks.log"), "line\n").unwrap();
    std::fs::write(env.install().join("logs/old/a.log"), "older\n").unwrap();
    let without = env.backup(&[]);
    assert!(!without.join("logs").exists());
    std::fs::remove_dir_all(&without).unwrap();
    let backup = env.backup(&["--include-logs"]);
    assert_eq!(
        std::fs::read_to_string(backup.join("logs/hooks.log")).unwrap(),
        "line\n"
    );
    assert_eq!(
        std::fs::read_to_string(backup.join("logs/old/a.log")).unwrap(),
        "older\n"
    );
    assert_eq!(manifest(&backup)["includes_logs"], true);
    let listed = std::fs::read_to_string(backup.join("CHECKSUMS.sha256")).unwrap();
    assert!(listed.contains("  logs/old/a.log\n"));
    assert_eq!(sha256sum_check(&backup).code, 0);
}

#[test]
fn two_backups_in_the_same_second_get_distinct_folders() {
    let env = TestEnv::ai_memory();
    let first = env.backup(&["--collection", "discussions"]);
    let second = env.backup(&["--collection", "discussions"]);
    assert_ne!(first, second);
    assert!(first.exists() && second.exists());
}

#[test]
fn usage_errors_exit_1() {
    let env = TestEnv::ai_memory();
    env.run(&["backup", "--retry", "many"]).assert_code(1);
    env.run(&["backup", "--all", "--collection", "x"])
        .assert_code(1);
    env.run(&["no-such-command"]).assert_code(1);
    env.run_with(&["backup"], |c| {
        c.env("QDRANT_URL", "localhost:6333");
    })
    .assert_code(1)
    .assert_stderr_contains("no scheme");
    env.run(&["--help"]).assert_code(0);
    env.run(&["--version"]).assert_code(0);
    assert_eq!(env.root_entries(), Vec::<String>::new());
}

#[test]
fn a_collection_sharded_across_peers_is_refused() {
    let env = TestEnv::ai_memory();
    // Peer 0 of the real three-node cluster holds shards 0 and 1; shard 2 lives elsewhere.
    env.double.set_cluster_view(
        "discussions",
        fixture_result("cluster/3-node-collection-cluster-peer0.json"),
    );
    let run = env.run(&["backup"]);
    run.assert_code(2)
        .assert_stderr_contains("`discussions` is distributed")
        .assert_stderr_contains("shards 2");
    assert_nothing_left(&env);
}

#[test]
fn a_repeated_collection_is_backed_up_once() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&[
        "--no-stream",
        "--collection",
        "github",
        "--collection",
        "jira-data",
        "--collection",
        "github",
    ]);
    let names: Vec<String> = manifest(&backup)["collections"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(names, ["github", "jira-data"]);
    assert_eq!(sha256sum_check(&backup).code, 0);
    let listed = std::fs::read_to_string(backup.join("CHECKSUMS.sha256")).unwrap();
    assert_eq!(listed.matches("qdrant/github.snapshot").count(), 1);
}

#[test]
fn a_key_copied_from_a_crlf_env_file_still_works() {
    let env = TestEnv::ai_memory();
    let run = env.run_with(&["backup", "--collection", "github"], |c| {
        c.env("QDRANT_API_KEY", format!("{KEY}\r"));
    });
    run.assert_code(0);
}

#[test]
fn a_redirect_is_not_followed_so_the_key_stays_home() {
    use std::io::{Read, Write};
    let env = TestEnv::ai_memory();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let target = env.double.url();
    let server = std::thread::spawn(move || {
        // Answer every request (at most a few) with a redirect to the real server.
        listener.set_nonblocking(false).unwrap();
        for stream in listener.incoming().take(4) {
            let Ok(mut stream) = stream else { break };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let reply = format!(
                "HTTP/1.1 302 Found\r\nLocation: {target}/collections\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let _ = stream.write_all(reply.as_bytes());
        }
    });
    let run = env.run_with(&["backup"], |c| {
        c.env(
            "QDRANT_URL",
            format!("http://admin:hunter2@127.0.0.1:{port}"),
        );
    });
    run.assert_code(1)
        .assert_stderr_contains("does not follow redirects");
    assert!(
        !run.all_output().contains("hunter2"),
        "userinfo leaked:\n{}",
        run.all_output()
    );
    assert!(
        env.double.requests().is_empty(),
        "the key was carried to the redirect target"
    );
    assert_eq!(env.root_entries(), Vec::<String>::new());
    drop(server);
}

#[test]
fn a_snapshot_taken_while_points_are_written_is_taken_again() {
    let env = TestEnv::ai_memory();
    // While the first snapshot of `github` is built, a point arrives: the count before and
    // after differ, so that snapshot's content is unknown and it is taken again.
    env.double.inject(Fault::new(
        Some("POST"),
        "/collections/github/snapshots",
        FaultKind::Delay(Duration::from_millis(1500)),
    ));
    let mut child = env
        .command(&["backup", "--no-stream", "--collection", "github"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Once the snapshot is asked for (the count before it is taken), a point arrives.
    wait_for_request(&env.double, "POST", |p| p.ends_with("/github/snapshots"));
    env.double.upsert_points("github", &[1001]);
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("taking it again"), "{stderr}");
    let backup = env.only_backup();
    let entry = &manifest(&backup)["collections"]["github"];
    assert_eq!(
        entry["records"], 31,
        "the count of the snapshot that was kept"
    );
    assert!(entry.get("records_max").is_none());
    assert_eq!(
        env.server_snapshots(),
        0,
        "the discarded snapshot is deleted too"
    );
    // And it restores: the recorded count is the one the snapshot holds.
    let target = qdrant_double::Double::start(qdrant_double::Config {
        api_key: Some(KEY.into()),
        ..Default::default()
    });
    let run = env.run_with(&["restore", backup.to_str().unwrap(), "--force"], |c| {
        c.env("QDRANT_URL", target.url());
    });
    run.assert_code(0);
    assert_eq!(target.point_ids("github").unwrap().len(), 31);
}

#[test]
fn a_snapshot_creation_that_times_out_is_reported_never_deleted_on_a_guess() {
    let env = TestEnv::ai_memory();
    // Qdrant answers after 4 s; aimem gives up after 2 s. Meanwhile someone takes a snapshot
    // of the same collection by hand: named in the request's window, it could be the one aimem
    // asked for, so nothing is deleted on that guess.
    env.double.inject(Fault::new(
        Some("POST"),
        "/collections/discussions/snapshots",
        FaultKind::Delay(Duration::from_secs(4)),
    ));
    let child = env
        .command(&["backup", "--no-stream", "--collection", "discussions"])
        .env("BACKUP_SNAPSHOT_CREATE_TIMEOUT", "2")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_request(&env.double, "POST", |p| p.ends_with("/snapshots"));
    std::thread::sleep(Duration::from_millis(1100));
    let url = format!(
        "{}/collections/discussions/snapshots?wait=true",
        env.double.url()
    );
    let mut answer = ureq::post(&url)
        .header("api-key", super::support::KEY)
        .send_empty()
        .expect("snapshot");
    let body: serde_json::Value =
        serde_json::from_str(&answer.body_mut().read_to_string().expect("body")).expect("json");
    let mine = body["result"]["name"].as_str().expect("name").to_string();
    let run = super::support::to_run(child.wait_with_output().unwrap());
    run.assert_code(2)
        .assert_stderr_contains("timed out")
        .assert_stderr_contains("deletes only what it can prove");
    assert!(env.double.snapshot_names("discussions").contains(&mine));
    // Once Qdrant has finished the one aimem asked for, the next backup reports both, deletes
    // neither, and keeps the record.
    // (Waited for rather than slept on: a loaded machine finishes it later.)
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut left = env.double.snapshot_names("discussions");
    while left.len() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        left = env.double.snapshot_names("discussions");
    }
    assert_eq!(left.len(), 2, "{left:?}");
    let next = env.run(&["backup", "--no-stream", "--collection", "github"]);
    next.assert_code(0);
    for name in &left {
        next.assert_stderr_contains(name);
    }
    assert_eq!(env.double.snapshot_names("discussions"), left);
}

#[test]
fn ctrl_c_while_a_snapshot_is_built_waits_for_it_and_deletes_it() {
    let env = TestEnv::ai_memory();
    env.double.inject(Fault::new(
        Some("POST"),
        "/collections/discussions/snapshots",
        FaultKind::Delay(Duration::from_secs(2)),
    ));
    let child = env
        .command(&["backup", "--no-stream", "--collection", "discussions"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_request(&env.double, "POST", |p| p.ends_with("/snapshots"));
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let run = super::support::to_run(child.wait_with_output().unwrap());
    run.assert_code(130)
        .assert_stderr_contains("waiting for Qdrant to finish the snapshot");
    assert_nothing_left(&env);
}

/// Runs `openssl` with `args` in `dir`; the tests use it to make a private CA and a server.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let status = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl");
    assert!(status.success(), "openssl {args:?}");
}

#[test]
fn https_trusts_a_private_ca_given_by_ssl_cert_file() {
    let env = TestEnv::new();
    let dir = env.tmp.path().join("tls");
    std::fs::create_dir_all(&dir).unwrap();
    #[rustfmt::skip]
    let steps: [&[&str]; 3] = [
        &["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
          "-days", "2", "-subj", "/CN=aimem-test-ca",
          "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign"],
        &["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "leaf.key", "-out", "leaf.csr",
          "-subj", "/CN=localhost"],
        &["x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
          "-CAcreateserial", "-out", "leaf.pem", "-days", "1", "-extfile", "ext.cnf"],
    ];
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    for step in steps {
        openssl(&dir, step);
    }
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    // A TLS server that answers any request with a status page (not Qdrant, but TLS is all
    // this test is about).
    let mut server = std::process::Command::new("openssl")
        .args([
            "s_server",
            "-accept",
            &port.to_string(),
            "-cert",
            "leaf.pem",
            "-key",
            "leaf.key",
            "-www",
        ])
        .current_dir(&dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the TLS server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let url = format!("https://localhost:{port}");
    let untrusted = env.run_with(&["backup"], |c| {
        c.env("QDRANT_URL", &url);
    });
    let trusted = env.run_with(&["backup"], |c| {
        c.env("QDRANT_URL", &url)
            .env("SSL_CERT_FILE", dir.join("ca.pem"));
    });
    let _ = server.kill();
    let _ = server.wait();
    untrusted
        .assert_code(1)
        .assert_stderr_contains("cannot make a trusted https connection");
    untrusted.assert_stderr_contains("SSL_CERT_FILE");
    // With the CA trusted the handshake succeeds and aimem reads the (non-Qdrant) answer.
    trusted
        .assert_code(1)
        .assert_stderr_contains("does not understand");
}

#[test]
fn more_collections_than_one_manifest_holds_are_refused_before_any_snapshot() {
    let env = TestEnv::new();
    for i in 0..=aimem::manifest::MAX_BACKUP_COLLECTIONS {
        env.double
            .seed_from_fixture(&format!("c{i:04}"), "collections/info-github.json", 1);
    }
    let run = env.run(&["backup", "--all"]);
    run.assert_code(2)
        .assert_stderr_contains("1001 collections are more than one backup holds")
        .assert_stderr_contains("--collection NAME");
    assert_nothing_left(&env);
    assert!(
        !env.double
            .requests()
            .iter()
            .any(|r| r.method == "POST" && r.path.ends_with("/snapshots")),
        "no snapshot was created"
    );
}
