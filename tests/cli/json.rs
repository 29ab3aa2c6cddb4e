//! `--json` of every subcommand, on success and on failure, and the exit codes scripts rely on.

use std::path::Path;

use qdrant_double::{Fault, FaultKind};
use serde_json::{Value, json};

use super::support::*;

/// The one JSON document on stdout (and nothing else there), with its `version`.
#[track_caller]
fn one_document(run: &Run) -> Value {
    let mut documents = serde_json::Deserializer::from_str(&run.stdout).into_iter::<Value>();
    let first = match documents.next() {
        Some(Ok(doc)) => doc,
        other => panic!(
            "stdout holds no JSON document ({other:?}); stdout:\n{}\nstderr:\n{}",
            run.stdout, run.stderr
        ),
    };
    assert!(
        documents.next().is_none(),
        "stdout holds more than one document:\n{}",
        run.stdout
    );
    assert_eq!(first["version"], json!(1), "version field:\n{}", run.stdout);
    first
}

/// A failing run's document: its `error` names the code, a message, a help and the exit status.
#[track_caller]
fn error_of(run: &Run, exit: i32) -> Value {
    run.assert_code(exit);
    let doc = one_document(run);
    let error = &doc["error"];
    assert!(error.is_object(), "no error object:\n{}", run.stdout);
    assert_eq!(error["exit"], json!(exit), "{}", run.stdout);
    assert!(
        error["code"]
            .as_str()
            .is_some_and(|c| c.starts_with("aimem::")),
        "{}",
        run.stdout
    );
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{}",
        run.stdout
    );
    assert!(error.get("help").is_some(), "{}", run.stdout);
    // People still get the error on stderr.
    assert!(!run.stderr.trim().is_empty(), "stderr is empty");
    doc
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn backup_json_describes_each_collection_and_the_folder() {
    let env = TestEnv::ai_memory();
    let run = env.run(&[
        "backup",
        "--no-stream",
        "--json",
        "--collection",
        "github",
        "--collection",
        "conventions",
    ]);
    run.assert_code(0);
    let doc = one_document(&run);
    let folder = Path::new(doc["folder"].as_str().unwrap());
    assert!(folder.join("manifest.json").is_file(), "{doc}");
    assert_eq!(folder, env.only_backup());
    let collections = doc["collections"].as_array().unwrap();
    let names: Vec<&str> = collections
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["github", "conventions"]);
    let mut total = 0;
    for c in collections {
        let file = folder
            .join("qdrant")
            .join(format!("{}.snapshot", c["name"].as_str().unwrap()));
        let size = std::fs::metadata(&file).unwrap().len();
        assert_eq!(c["records"], json!(30), "{c}");
        assert_eq!(c["size"], json!(size), "{c}");
        assert_eq!(c["sha256"], json!(sha256_hex(&file)), "{c}");
        assert!(c["snapshot"].as_str().is_some_and(|n| !n.is_empty()), "{c}");
        assert_eq!(c["server_snapshot_deleted"], json!(true), "{c}");
        assert!(c["seconds"].as_f64().is_some(), "{c}");
        total += size;
    }
    assert!(doc["total_size"].as_u64().unwrap() >= total, "{doc}");
    assert!(doc["config_files"].is_array(), "{doc}");
    assert!(doc["seconds"].as_f64().is_some(), "{doc}");
    assert_eq!(env.server_snapshots(), 0);
}

#[test]
fn a_failing_backup_prints_an_error_document() {
    let env = TestEnv::ai_memory();
    let run = env.run(&["backup", "--json", "--collection", "nope"]);
    let doc = error_of(&run, 2);
    assert_eq!(
        doc["error"]["code"],
        json!("aimem::backup::no_such_collection")
    );
    assert!(
        doc["error"]["help"].as_str().unwrap().contains("github"),
        "{doc}"
    );
    let run = env.run_with(&["backup", "--json"], |c| {
        c.env("QDRANT_URL", "http://127.0.0.1:1");
    });
    error_of(&run, 1);
}

#[test]
fn restore_json_gives_the_plan_and_the_outcome() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--collection", "github"]);
    env.double.upsert_points("github", &[500]);
    let run = env.run(&["restore", s(&backup), "--force", "--json"]);
    run.assert_code(0);
    let doc = one_document(&run);
    assert_eq!(doc["dry_run"], json!(false));
    assert_eq!(doc["backup"], json!(s(&backup)));
    let collections = doc["collections"].as_array().unwrap();
    assert_eq!(collections.len(), 1, "{doc}");
    let github = &collections[0];
    assert_eq!(github["name"], json!("github"));
    assert_eq!(github["target"], json!("github"));
    assert_eq!(github["action"], json!("overwrite"));
    assert_eq!(github["points_before"], json!(31));
    assert_eq!(github["records"], json!(30));
    assert_eq!(github["outcome"], json!("restored"));
    assert!(github["seconds"].as_f64().is_some(), "{doc}");
    assert_eq!(doc["rollback"], Value::Null);
    assert!(doc["seconds"].as_f64().is_some(), "{doc}");
    assert_eq!(env.double.point_ids("github").unwrap().len(), 30);
}

#[test]
fn a_rolled_back_restore_prints_the_rollback_in_its_document() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--no-stream", "--collection", "github"]);
    env.double.inject(Fault::new(
        Some("POST"),
        "/snapshots/upload",
        FaultKind::UploadFailAfterClear,
    ));
    let run = env.run(&["restore", s(&backup), "--force", "--json"]);
    let doc = error_of(&run, 4);
    assert_eq!(doc["error"]["code"], json!("aimem::restore::rolled_back"));
    assert_eq!(doc["rollback"]["ok"], json!(true), "{doc}");
    assert!(
        !doc["rollback"]["done"].as_array().unwrap().is_empty(),
        "{doc}"
    );
    assert_eq!(doc["collections"][0]["outcome"], json!("rolled_back"));
    assert_eq!(env.double.point_ids("github").unwrap().len(), 30);
}

#[test]
fn a_refused_restore_names_each_reason() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--collection", "conventions"]);
    let mut info = fixture_result("collections/info-conventions.json");
    info["config"]["params"]["vectors"]["size"] = json!(1024);
    env.double
        .seed("conventions", info, (1..=30).collect::<Vec<u64>>());
    let run = env.run(&["restore", s(&backup), "--force", "--json"]);
    let doc = error_of(&run, 2);
    assert_eq!(doc["error"]["code"], json!("aimem::restore::refused"));
    let related = doc["error"]["related"].as_array().unwrap();
    assert_eq!(
        related[0]["code"],
        json!("aimem::restore::schema_mismatch"),
        "{doc}"
    );
    assert_eq!(doc["collections"][0]["action"], json!("refuse"));
    assert_eq!(doc["collections"][0]["outcome"], json!("unchanged"));
}

#[test]
fn a_dry_run_needs_no_force_and_no_terminal() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--collection", "github"]);
    env.double.upsert_points("github", &[500]);
    // stdin is /dev/null and stderr a pipe: no terminal.
    let run = env.run(&["restore", s(&backup), "--dry-run"]);
    run.assert_code(0);
    let run = env.run(&["restore", s(&backup), "--dry-run", "--json"]);
    run.assert_code(0);
    let doc = one_document(&run);
    assert_eq!(doc["dry_run"], json!(true));
    assert_eq!(doc["collections"][0]["action"], json!("overwrite"));
    assert_eq!(doc["collections"][0]["outcome"], json!("unchanged"));
    assert_eq!(env.double.point_ids("github").unwrap().len(), 31);
    // The real run still refuses to overwrite without a terminal to ask on.
    env.run(&["restore", s(&backup)]).assert_code(1);
}

#[test]
fn verify_json_on_success_and_failure() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--collection", "github"]);
    let run = env.run(&["verify", "--json", s(&backup)]);
    run.assert_code(0);
    let doc = one_document(&run);
    assert_eq!(doc["ok"], json!(true));
    assert!(doc.get("error").is_none(), "{doc}");
    std::fs::write(backup.join("qdrant/github.snapshot"), b"not a snapshot").unwrap();
    let run = env.run(&["verify", "--json", s(&backup)]);
    let doc = error_of(&run, 2);
    // The report is still there, with the error beside it.
    assert_eq!(doc["ok"], json!(false));
    assert!(!doc["problems"].as_array().unwrap().is_empty(), "{doc}");
}

#[test]
fn list_json_and_a_root_that_does_not_exist() {
    let env = TestEnv::ai_memory();
    env.backup(&["--collection", "github"]);
    let run = env.run(&["list", "--json"]);
    run.assert_code(0);
    assert_eq!(one_document(&run)["backups"].as_array().unwrap().len(), 1);

    let missing = env.tmp.path().join("typo");
    let run = env.run(&["list", s(&missing)]);
    run.assert_code(1).assert_stderr_contains("typo");
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    let run = env.run(&["list", "--json", s(&missing)]);
    let doc = error_of(&run, 1);
    assert!(
        doc["error"]["message"].as_str().unwrap().contains("typo"),
        "{doc}"
    );
    // An empty root that exists is fine.
    let empty = env.tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let run = env.run(&["list", "--json", s(&empty)]);
    run.assert_code(0);
    assert_eq!(one_document(&run)["backups"], json!([]));
}

#[test]
fn prune_json_on_success_and_failure() {
    let env = TestEnv::ai_memory();
    env.backup(&["--collection", "github"]);
    let run = env.run(&["prune", "--json", "--keep-last", "1", "--dry-run"]);
    run.assert_code(0);
    let doc = one_document(&run);
    assert_eq!(doc["kept"].as_array().unwrap().len(), 1);
    error_of(&env.run(&["prune", "--json"]), 1);
    let missing = env.tmp.path().join("typo");
    error_of(
        &env.run(&["prune", "--json", "--keep-last", "1", s(&missing)]),
        1,
    );
}

#[test]
fn diff_schema_json_on_success_and_failure() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--collection", "conventions"]);
    let run = env.run(&["diff-schema", "--json", s(&backup)]);
    run.assert_code(0);
    assert_eq!(one_document(&run)["identical"], json!(true));
    let mut info = fixture_result("collections/info-conventions.json");
    info["config"]["params"]["vectors"]["size"] = json!(1024);
    env.double
        .seed("conventions", info, (1..=30).collect::<Vec<u64>>());
    let run = env.run(&["diff-schema", "--json", s(&backup)]);
    let doc = error_of(&run, 2);
    assert_eq!(doc["identical"], json!(false));
    let run = env.run_with(&["diff-schema", "--json", s(&backup)], |c| {
        c.env("QDRANT_URL", "http://127.0.0.1:1");
    });
    error_of(&run, 3);
}

#[test]
fn a_missing_backup_folder_is_exit_1_for_every_subcommand() {
    let env = TestEnv::ai_memory();
    let missing = env.tmp.path().join("no-such-backup");
    for command in ["verify", "restore", "diff-schema"] {
        let run = env.run(&[command, s(&missing)]);
        assert_eq!(run.code, 1, "{command}: {}", run.stderr);
        let run = env.run(&[command, "--json", s(&missing)]);
        let doc = error_of(&run, 1);
        assert!(
            doc["error"]["message"]
                .as_str()
                .unwrap()
                .contains("no-such-backup"),
            "{command}: {doc}"
        );
        // `latest` in a root without backups: the same.
        let run = env.run(&[command, "latest"]);
        assert_eq!(run.code, 1, "{command} latest: {}", run.stderr);
    }
}

#[test]
fn an_argument_error_with_json_is_a_json_document_too() {
    let env = TestEnv::ai_memory();
    // Missing DIR, and an unknown option: clap refuses them before any subcommand runs.
    let run = env.run(&["verify", "--json"]);
    let doc = error_of(&run, 1);
    assert_eq!(doc["error"]["code"], json!("aimem::invalid_arguments"));
    let run = env.run(&["backup", "--json", "--no-such-option"]);
    error_of(&run, 1);
    // Without --json stdout stays empty.
    let run = env.run(&["verify"]);
    run.assert_code(1);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
}

#[test]
fn ctrl_c_at_the_confirmation_prompt_exits_130_and_changes_nothing() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--collection", "github"]);
    env.double.upsert_points("github", &[500]);
    let run = run_on_a_terminal(&env, &["restore", s(&backup)], "Continue?", "\x03");
    run.assert_code(130);
    assert_eq!(env.double.point_ids("github").unwrap().len(), 31);
}

#[test]
fn a_signal_that_ends_a_json_run_at_once_still_leaves_one_document() {
    let env = TestEnv::ai_memory();
    env.double
        .inject(Fault::always(Some("GET"), "/", FaultKind::Blackhole));
    let mut child = env
        .command(&["backup", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // aimem is waiting for a server that never answers: nothing is made yet, so one signal
    // ends it at once.
    wait_for_request(&env.double, "GET", |p| p == "/");
    let sent = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("one SIGINT did not end aimem");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let run = to_run(child.wait_with_output().unwrap());
    let doc = error_of(&run, 130);
    assert_eq!(doc["error"]["code"], json!("aimem::interrupted"));
}

#[test]
fn characters_a_terminal_acts_on_stay_valid_json_escapes() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--collection", "github"]);
    let odd = "2.4.1\u{202e}\u{85}\u{1b}]0;pwned\u{7}";
    edit_manifest(&backup, |m| m["ai_memory_version"] = json!(odd));
    let run = env.run(&["list", "--json"]);
    run.assert_code(0);
    // Nothing a terminal would act on is printed raw...
    assert!(
        !run.stdout.chars().any(|c| c.is_control() && c != '\n'),
        "{}",
        run.stdout.escape_debug()
    );
    assert!(!run.stdout.contains('\u{202e}'), "{}", run.stdout);
    // ...and the document still says exactly what the manifest holds.
    let doc = one_document(&run);
    assert_eq!(doc["backups"][0]["ai_memory_version"], json!(odd));
}

#[test]
fn the_documents_never_carry_the_urls_credentials() {
    let env = TestEnv::ai_memory();
    let url = format!("http://user:PASSWORD@127.0.0.1:{}", env.double.port());
    let with_url = |args: &[&str]| {
        let url = url.clone();
        env.run_with(args, move |c| {
            c.env("QDRANT_URL", url);
        })
    };
    let run = with_url(&["backup", "--json", "--collection", "github"]);
    run.assert_code(0);
    let backup = one_document(&run)["folder"].as_str().unwrap().to_string();
    let runs = [
        run,
        with_url(&["restore", "--json", "--force", &backup]),
        with_url(&["restore", "--json", "--dry-run", &backup]),
        with_url(&["diff-schema", "--json", &backup]),
    ];
    for run in &runs {
        run.assert_code(0);
        assert!(!run.all_output().contains("PASSWORD"), "{}", run.stdout);
    }
    let server = one_document(&runs[1])["server"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        server.contains(&format!("127.0.0.1:{}", env.double.port())),
        "{server}"
    );
}

/// A signal during a restore's uploads rolls the restore back and exits 130: the document's
/// code is the documented `aimem::interrupted`, the rollback said in its message.
#[test]
fn ctrl_c_during_a_restore_is_aimem_interrupted_in_the_document() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--collection", "conventions"]);
    env.double.inject(Fault::new(
        Some("POST"),
        "/snapshots/upload",
        FaultKind::Delay(std::time::Duration::from_millis(1500)),
    ));
    let child = env
        .command(&["restore", backup.to_str().unwrap(), "--force", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_request(&env.double, "POST", |p| p.ends_with("/snapshots/upload"));
    let sent = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let run = to_run(child.wait_with_output().unwrap());
    let doc = error_of(&run, 130);
    assert_eq!(doc["error"]["code"], json!("aimem::interrupted"), "{doc:#}");
    assert!(
        doc["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("rolled back")),
        "{doc:#}"
    );
}
