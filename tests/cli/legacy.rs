//! Backups written by the published Python scripts (`backup_qdrant.py` before v2.4.1): no
//! `CHECKSUMS.sha256`, no schema fingerprint. They restore without extra flags, after the
//! checks they allow; a backup that should have its checksums file and lacks it is refused.

use std::path::{Path, PathBuf};

use qdrant_double::{AI_MEMORY_COLLECTIONS, Config, Double};
use serde_json::{Value, json};

use super::support::{KEY, Run, TestEnv, json_stdout, manifest};

/// `text` appears in stderr once miette's line wrapping (and its `|` gutter) is ignored.
#[track_caller]
fn says(run: &Run, text: &str) {
    let squash = |s: &str| -> String {
        s.chars()
            .filter(|c| !c.is_whitespace() && *c != '|')
            .collect()
    };
    assert!(
        squash(&run.stderr).contains(&squash(text)),
        "stderr lacks {text:?}:\n{}",
        run.stderr
    );
}

/// Requests that would change the server (everything but reads).
fn writes(server: &Double) -> Vec<String> {
    server
        .requests()
        .into_iter()
        .filter(|r| !(r.method == "GET" || r.method == "POST" && r.path.ends_with("/points/count")))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

/// Builds a backup exactly as `backup_qdrant.py` (before v2.4.1) writes it: a
/// `YYYY-MM-DD_HHMMSS` folder with `qdrant/<collection>.snapshot`, `config/settings.json` and
/// `config/.env`, and a `manifest.json` with the script's fields only (the guide's shape,
/// without the `schema` fingerprints it added in v2.4.1), and no `CHECKSUMS.sha256`.
///
/// The snapshots are real ones: those of an aimem backup of the double taken first.
/// `snapshot_of` maps each collection to the collection whose snapshot file it gets.
fn python_backup(env: &TestEnv, snapshot_of: impl Fn(&str) -> String) -> PathBuf {
    // One stored snapshot per collection, as the Python scripts took them.
    let aimem = env.backup(&["--no-stream"]);
    let records = manifest(&aimem);
    let dir = env.tmp.path().join("python-backups/2026-02-03_143052");
    std::fs::create_dir_all(dir.join("qdrant")).unwrap();
    std::fs::create_dir_all(dir.join("config")).unwrap();
    let mut collections = serde_json::Map::new();
    for name in AI_MEMORY_COLLECTIONS {
        let file = format!("{name}.snapshot");
        let from = aimem.join(format!("qdrant/{}.snapshot", snapshot_of(name)));
        std::fs::copy(&from, dir.join("qdrant").join(&file)).unwrap();
        let size = std::fs::metadata(dir.join("qdrant").join(&file))
            .unwrap()
            .len();
        collections.insert(
            name.to_string(),
            json!({
                "name": name,
                "records": records["collections"][name]["records"],
                "snapshot_file": file,
                "size_bytes": size,
            }),
        );
    }
    std::fs::write(dir.join("config/settings.json"), "{\"hooks\": {}}\n").unwrap();
    std::fs::write(dir.join("config/.env"), "QDRANT_PORT=26350\n").unwrap();
    let manifest = json!({
        "backup_date": "2026-02-03T14:30:52.123456+00:00",
        "ai_memory_version": "2.4.0",
        "qdrant_host": "localhost",
        "qdrant_port": 26350,
        "collections": collections,
        "config_files": ["settings.json", ".env"],
        "includes_logs": false,
        "runtime_flags": {
            "COLBERT_RERANKING_ENABLED": "true",
            "HYBRID_SEARCH_ENABLED": "false",
            "BM25_SPARSE_ENABLED": "true"
        }
    });
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_string_pretty(&manifest).unwrap(),
    )
    .unwrap();
    assert!(!dir.join("CHECKSUMS.sha256").exists());
    dir
}

fn same_name(name: &str) -> String {
    name.to_string()
}

fn path(dir: &Path) -> &str {
    dir.to_str().unwrap()
}

#[test]
fn a_python_backup_restores_over_existing_collections_with_a_warning() {
    let env = TestEnv::ai_memory();
    let backup = python_backup(&env, same_name);
    for name in AI_MEMORY_COLLECTIONS {
        env.double.upsert_points(name, &[500, 501]);
    }
    let run = env.run(&["restore", path(&backup), "--force"]);
    run.assert_code(0);
    says(&run, "this backup carries no checksums");
    says(
        &run,
        "was checked against the config inside its snapshot instead",
    );
    for name in AI_MEMORY_COLLECTIONS {
        let ids = env.double.point_ids(name).unwrap();
        assert_eq!(ids, (1..=30).collect::<Vec<u64>>(), "{name}");
    }
}

#[test]
fn a_python_backup_dry_run_passes_and_changes_nothing() {
    let env = TestEnv::ai_memory();
    let backup = python_backup(&env, same_name);
    env.double.clear_requests();
    let run = env.run(&["restore", path(&backup), "--dry-run", "--force"]);
    run.assert_code(0);
    says(&run, "this backup carries no checksums");
    assert_eq!(writes(&env.double), Vec::<String>::new());
}

#[test]
fn verify_and_list_flag_a_python_backup_without_calling_it_damaged() {
    let env = TestEnv::ai_memory();
    let backup = python_backup(&env, same_name);

    let run = env.run(&["verify", path(&backup), "--json"]);
    run.assert_code(0);
    let report = json_stdout(&run);
    assert_eq!(report["ok"], json!(true), "{report}");
    assert_eq!(report["legacy"], json!(true));
    assert_eq!(report["problems"], json!([]));
    let notices: Vec<(String, String)> = report["notices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["file"].as_str().unwrap().to_string(),
                n["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        notices.contains(&("CHECKSUMS.sha256".into(), "checksums_missing".into())),
        "{notices:?}"
    );
    assert!(
        notices.contains(&("manifest.json".into(), "no_fingerprint".into())),
        "{notices:?}"
    );

    let run = env.run(&["verify", path(&backup)]);
    run.assert_code(0);
    assert!(
        run.stdout.contains("a legacy backup without checksums"),
        "{}",
        run.stdout
    );
    says(&run, "corruption cannot be detected");

    let root = backup.parent().unwrap();
    let run = env.run(&["list", path(root), "--verify", "--json"]);
    run.assert_code(0);
    let row = &json_stdout(&run)["backups"][0];
    assert_eq!(row["state"], json!("legacy"));
    assert_eq!(
        row["verification"],
        json!({"ok": true, "legacy": true, "problems": 0})
    );
}

#[test]
fn verify_still_finds_what_a_python_backup_allows_to_check() {
    let env = TestEnv::ai_memory();
    let backup = python_backup(&env, same_name);
    std::fs::write(backup.join("qdrant/github.snapshot"), b"not a tar").unwrap();
    std::fs::remove_file(backup.join("config/.env")).unwrap();
    let run = env.run(&["verify", path(&backup), "--json"]);
    run.assert_code(2);
    let report = json_stdout(&run);
    let found: Vec<(String, String)> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["file"].as_str().unwrap().to_string(),
                p["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        found.contains(&("qdrant/github.snapshot".into(), "size_mismatch".into())),
        "{found:?}"
    );
    assert!(
        found.contains(&("qdrant/github.snapshot".into(), "snapshot_damaged".into())),
        "{found:?}"
    );
    assert!(
        found.contains(&("config/.env".into(), "missing".into())),
        "{found:?}"
    );
}

/// Refused before any change: nothing but reads reached the server, and its data is as before.
#[track_caller]
fn refused_untouched(env: &TestEnv, run: &Run, before: &[(Value, Vec<u64>)]) {
    run.assert_code(2);
    assert_eq!(writes(&env.double), Vec::<String>::new());
    let after: Vec<(Value, Vec<u64>)> = AI_MEMORY_COLLECTIONS
        .iter()
        .map(|name| {
            (
                env.double.collection_info(name).unwrap(),
                env.double.point_ids(name).unwrap(),
            )
        })
        .collect();
    assert_eq!(after, before);
}

fn server_state(env: &TestEnv) -> Vec<(Value, Vec<u64>)> {
    for name in AI_MEMORY_COLLECTIONS {
        env.double.upsert_points(name, &[500]);
    }
    env.double.clear_requests();
    AI_MEMORY_COLLECTIONS
        .iter()
        .map(|name| {
            (
                env.double.collection_info(name).unwrap(),
                env.double.point_ids(name).unwrap(),
            )
        })
        .collect()
}

#[test]
fn a_python_backup_whose_snapshot_is_not_a_tar_is_refused_before_any_change() {
    let env = TestEnv::ai_memory();
    let backup = python_backup(&env, same_name);
    // As long as the manifest says, so only the archive check can catch it.
    let file = backup.join("qdrant/github.snapshot");
    let size = std::fs::metadata(&file).unwrap().len();
    std::fs::write(&file, vec![b'x'; size as usize]).unwrap();
    let before = server_state(&env);
    let run = env.run(&["restore", path(&backup), "--force"]);
    refused_untouched(&env, &run, &before);
    says(&run, "qdrant/github.snapshot: is not a valid tar archive");
    says(&run, "the backup is damaged");
}

#[test]
fn a_python_backup_whose_snapshot_size_differs_from_the_manifest_is_refused() {
    let env = TestEnv::ai_memory();
    let backup = python_backup(&env, same_name);
    let file = backup.join("qdrant/jira-data.snapshot");
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() - 1024]).unwrap();
    let before = server_state(&env);
    let run = env.run(&["restore", path(&backup), "--force"]);
    refused_untouched(&env, &run, &before);
    says(
        &run,
        &format!(
            "qdrant/jira-data.snapshot: {} bytes, the manifest says {}",
            bytes.len() - 1024,
            bytes.len()
        ),
    );
}

#[test]
fn a_python_backup_whose_snapshot_holds_another_collection_is_refused() {
    let env = TestEnv::ai_memory();
    // `discussions.snapshot` is in truth the snapshot of `conventions` (no `agent_id` index).
    let backup = python_backup(&env, |name| match name {
        "discussions" => "conventions".to_string(),
        other => other.to_string(),
    });
    let before = server_state(&env);
    let run = env.run(&["restore", path(&backup), "--force"]);
    refused_untouched(&env, &run, &before);
    says(
        &run,
        "the snapshot for `discussions` holds another schema than the live `discussions`",
    );
    says(&run, "payload_schema.agent_id");
}

#[test]
fn a_python_backup_into_an_absent_collection_is_refused_clearly() {
    let env = TestEnv::ai_memory();
    let backup = python_backup(&env, same_name);
    let empty = Double::start(Config {
        api_key: Some(KEY.to_string()),
        ..Config::default()
    });
    let url = empty.url();
    let run = env.run_with(&["restore", path(&backup), "--force"], |c| {
        c.env("QDRANT_URL", url);
    });
    run.assert_code(2);
    says(
        &run,
        "`discussions` does not exist, and the backup predates v2.4.1: without a schema fingerprint aimem cannot create it",
    );
    says(&run, "python scripts/setup-collections.py");
    assert!(empty.collection_names().is_empty());
    assert_eq!(writes(&empty), Vec::<String>::new());
}

#[test]
fn an_aimem_backup_without_its_checksums_file_is_refused_as_tampered() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--no-stream"]);
    std::fs::remove_file(backup.join("CHECKSUMS.sha256")).unwrap();
    env.double.clear_requests();
    let run = env.run(&["restore", path(&backup), "--force"]);
    run.assert_code(2);
    says(
        &run,
        "CHECKSUMS.sha256 is missing, but the backup was written by aimem",
    );
    says(&run, "it was removed after the backup was written");
    says(&run, "tampered with");
    assert!(env.double.requests().is_empty(), "not even a connection");

    let run = env.run(&["verify", path(&backup), "--json"]);
    run.assert_code(2);
    let report = json_stdout(&run);
    assert_eq!(report["legacy"], json!(false));
    let missing = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["kind"] == "checksums_missing")
        .unwrap_or_else(|| panic!("{report}"));
    assert!(
        missing["problem"]
            .as_str()
            .unwrap()
            .contains("it was removed"),
        "{missing}"
    );
}

/// The Python scripts since v2.4.1 record fingerprints and write CHECKSUMS.sha256 too: such a
/// manifest without the file is not a legacy backup.
#[test]
fn a_fingerprinted_python_backup_without_checksums_is_refused_as_tampered() {
    let env = TestEnv::ai_memory();
    let backup = python_backup(&env, same_name);
    let aimem = env.backup(&["--no-stream"]);
    let schemas = manifest(&aimem);
    let mut python = manifest(&backup);
    for name in AI_MEMORY_COLLECTIONS {
        python["collections"][name]["schema"] = schemas["collections"][name]["schema"].clone();
    }
    python["ai_memory_version"] = json!("2.4.1");
    std::fs::write(backup.join("manifest.json"), python.to_string()).unwrap();
    env.double.clear_requests();
    let run = env.run(&["restore", path(&backup), "--force"]);
    run.assert_code(2);
    says(&run, "has a schema fingerprint");
    says(&run, "it was removed after the backup was written");
    assert!(env.double.requests().is_empty(), "not even a connection");
}

/// Config files hold secrets and go into the install folder: without checksums they cannot be
/// verified, so they are not written, and the warning says how to get them by hand.
#[test]
fn a_python_backup_restores_collections_but_not_unverifiable_config_files() {
    let env = TestEnv::ai_memory();
    let backup = python_backup(&env, same_name);
    let run = env.run(&["restore", path(&backup), "--force", "--restore-config"]);
    run.assert_code(0);
    says(
        &run,
        "config settings.json will not be written: the backup has no CHECKSUMS.sha256 to verify it with",
    );
    says(
        &run,
        &format!(
            "copy it by hand from {}",
            path(&backup.join("config/settings.json"))
        ),
    );
    assert!(!env.install().join(".claude/settings.json").exists());
    assert!(!env.install().join(".env").exists());
}
