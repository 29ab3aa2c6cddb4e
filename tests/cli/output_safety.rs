//! What aimem prints is safe to look at and to paste: no credentials from the URL (issue 9
//! finding 6), recovery commands that are shell-quoted and never wrapped (finding 7), and no
//! control characters from any input reaching the terminal (finding 11).

use std::path::{Path, PathBuf};

use qdrant_double::{Fault, FaultKind};
use serde_json::json;

use super::support::*;

/// The secret in the tests' URLs: it must never be printed.
const PASSWORD: &str = "PASSWORD";

/// The double's URL with `user:PASSWORD@` in it.
fn url_with_credentials(env: &TestEnv) -> String {
    format!("http://user:{PASSWORD}@127.0.0.1:{}", env.double.port())
}

#[track_caller]
fn assert_no_password(what: &str, run: &Run) {
    assert!(
        !run.all_output().contains(PASSWORD),
        "{what} printed the URL's password:\n{}",
        run.all_output()
    );
}

#[test]
fn credentials_in_the_url_are_never_printed() {
    let env = TestEnv::ai_memory();
    let url = url_with_credentials(&env);
    let with_url = |args: &[&str]| {
        let url = url.clone();
        env.run_with(args, move |c| {
            c.env("QDRANT_URL", url);
        })
    };
    let run = with_url(&["backup", "--collection", "github"]);
    run.assert_code(0);
    assert_no_password("backup", &run);
    let backup = PathBuf::from(run.stdout.trim());
    let dir = backup.to_str().unwrap();

    let run = with_url(&["diff-schema", dir]);
    run.assert_code(0);
    assert_no_password("diff-schema", &run);
    let run = with_url(&["diff-schema", "--json", dir]);
    run.assert_code(0);
    assert_no_password("diff-schema --json", &run);
    // The address is still shown, without the credentials.
    let shown = json_stdout(&run)["right"].to_string();
    assert!(
        shown.contains(&format!("127.0.0.1:{}", env.double.port())),
        "{shown}"
    );

    let run = with_url(&["restore", dir, "--force"]);
    run.assert_code(0);
    assert_no_password("restore", &run);

    // A key the server refuses.
    let run = env.run_with(&["restore", dir, "--force"], |c| {
        c.env("QDRANT_URL", &url).env("QDRANT_API_KEY", "wrong-key");
    });
    run.assert_code(3);
    assert_no_password("restore with a refused key", &run);

    // A server that is not there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    for args in [
        vec!["backup"],
        vec!["restore", dir, "--force"],
        vec!["diff-schema", dir],
        vec!["diff-schema", "--json", dir],
    ] {
        let run = env.run_with(&args, |c| {
            c.env(
                "QDRANT_URL",
                format!("http://user:{PASSWORD}@127.0.0.1:{port}"),
            );
        });
        assert_ne!(run.code, 0, "{}", run.stderr);
        assert_no_password(&format!("{args:?} against a closed port"), &run);
    }

    // A URL aimem cannot use is named in the error, without its credentials.
    for bad in [
        format!("http://user:{PASSWORD}@127.0.0.1:port"),
        format!("ftp://user:{PASSWORD}@127.0.0.1:1"),
        format!("http://user:{PASSWORD}@127.0.0.1:1/path"),
        format!("http://127.0.0.1:1?api-key={PASSWORD}"),
    ] {
        for args in [vec!["backup"], vec!["diff-schema", dir]] {
            let run = env.run_with(&args, |c| {
                c.env("QDRANT_URL", &bad);
            });
            assert_ne!(run.code, 0, "{}", run.stderr);
            assert_no_password(&format!("{args:?} with {bad}"), &run);
        }
    }
}

/// A collection name a shell would run code from if it were pasted unquoted (every character
/// in it is allowed in a Qdrant collection name).
const HOSTILE: &str = "q $(touch PWNED) `touch TICK` 'x' $HOME; a&b";

/// A fake `curl` on PATH that records its arguments, one per line, each call ending in `--`.
fn fake_curl(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let curl = bin.join("curl");
    std::fs::write(
        &curl,
        "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\" >> \"$CURL_LOG\"; done\necho -- >> \"$CURL_LOG\"\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&curl, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

/// Percent-encoding of one URL path segment (RFC 3986 unreserved characters kept).
fn encoded(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Every `curl …` command in the output, from `curl` to the end of its line.
fn curl_commands(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter_map(|line| line.find("curl ").map(|at| line[at..].to_string()))
        .collect()
}

/// Runs each printed command with `sh` in a scratch folder, with the fake curl first on PATH;
/// returns the arguments curl got, per call.
fn paste(commands: &[String], scratch: &Path) -> Vec<Vec<String>> {
    let bin = fake_curl(scratch);
    let log = scratch.join("curl.log");
    for command in commands {
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(command)
            .current_dir(scratch)
            .env(
                "PATH",
                format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
            )
            .env("CURL_LOG", &log)
            .env("QDRANT_API_KEY", "k")
            .status()
            .unwrap();
        // A pipe into `grep` that finds nothing exits 1; anything else means the shell choked.
        assert!(
            status.code() == Some(0) || status.code() == Some(1),
            "{command}: {status}"
        );
    }
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    text.split("--\n")
        .filter(|call| !call.is_empty())
        .map(|call| call.lines().map(str::to_string).collect())
        .collect()
}

#[track_caller]
fn assert_nothing_ran(scratch: &Path) {
    for planted in ["PWNED", "TICK"] {
        assert!(
            !scratch.join(planted).exists(),
            "pasting the printed commands ran `touch {planted}`"
        );
    }
}

/// A backup of the hostile collection alone (its one stored snapshot, whose recovery commands
/// these tests paste), with the collection still on the server.
fn hostile_backup(env: &TestEnv) -> PathBuf {
    env.double.seed(
        HOSTILE,
        fixture_result("collections/info-conventions.json"),
        (1..=30).collect(),
    );
    env.backup(&["--no-stream", "--collection", HOSTILE])
}

#[test]
fn recovery_commands_after_a_failed_rollback_paste_safely() {
    let env = TestEnv::new();
    let backup = hostile_backup(&env);
    fail_restore_and_rollback(&env);
    let run = env.run(&["restore", backup.to_str().unwrap(), "--force"]);
    run.assert_code(5);
    let commands = curl_commands(&run.stderr);
    assert_eq!(commands.len(), 1, "{}", run.stderr);
    let scratch = tempfile::tempdir().unwrap();
    let calls = paste(&commands, scratch.path());
    assert_nothing_ran(scratch.path());
    assert_eq!(calls.len(), 1, "{calls:?}");
    let call = &calls[0];
    let expected_url = format!(
        "{}/collections/{}/snapshots/upload?wait=true&priority=snapshot",
        env.double.url(),
        encoded(HOSTILE)
    );
    assert_eq!(call.last(), Some(&expected_url), "{call:?}");
    assert!(call.contains(&"api-key: k".to_string()), "{call:?}");
    // The multipart field names the kept pre-restore snapshot, which exists.
    let form = call
        .iter()
        .find(|a| a.starts_with("snapshot=@"))
        .unwrap_or_else(|| panic!("no -F snapshot=@…: {call:?}"));
    let path = form.trim_start_matches("snapshot=@");
    let path = path
        .strip_prefix('"')
        .and_then(|p| p.strip_suffix('"'))
        .map(|p| p.replace("\\\"", "\"").replace("\\\\", "\\"))
        .unwrap_or_else(|| path.to_string());
    assert!(
        Path::new(&path).is_file(),
        "{path} is not the kept snapshot"
    );
    assert!(path.ends_with(&format!("{HOSTILE}.snapshot")), "{path}");
}

#[test]
fn commands_to_finish_an_unsettled_recovery_paste_safely() {
    let env = TestEnv::new();
    let backup = hostile_backup(&env);
    lose_the_upload_without_metrics(&env);
    let run = env.run(&["restore", backup.to_str().unwrap(), "--force"]);
    run.assert_code(5);
    let commands = curl_commands(&run.stderr);
    // The metrics check, the uploaded copy's deletion, and putting the collection back.
    assert_eq!(commands.len(), 3, "{}", run.stderr);
    let scratch = tempfile::tempdir().unwrap();
    let calls = paste(&commands, scratch.path());
    assert_nothing_ran(scratch.path());
    assert_eq!(calls.len(), 3, "{calls:?}");
    let base = format!("{}/collections/{}", env.double.url(), encoded(HOSTILE));
    assert_eq!(
        calls[0].last(),
        Some(&format!("{}/metrics", env.double.url()))
    );
    let delete = calls[1].last().unwrap();
    assert!(
        delete.starts_with(&format!("{base}/snapshots/")),
        "{delete} does not delete a snapshot of the collection"
    );
    assert!(calls[1].contains(&"DELETE".to_string()), "{:?}", calls[1]);
    assert_eq!(
        calls[2].last(),
        Some(&format!(
            "{base}/snapshots/upload?wait=true&priority=snapshot"
        ))
    );
}

#[test]
fn hints_are_not_broken_across_lines() {
    let env = TestEnv::new();
    let run = env.run(&["prune"]);
    run.assert_code(1);
    for flag in ["--keep-last N", "--keep-within DURATION", "--keep-daily N"] {
        run.assert_stderr_contains(flag);
    }
    // Into a server without the collection: the hint names a script to run.
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--no-stream", "--collection", "github"]);
    edit_manifest(&backup, |m| {
        m["collections"]["github"]
            .as_object_mut()
            .unwrap()
            .remove("schema");
    });
    let empty = qdrant_double::Double::start(qdrant_double::Config {
        api_key: Some(KEY.to_string()),
        ..qdrant_double::Config::default()
    });
    let run = env.run_with(&["restore", backup.to_str().unwrap(), "--force"], |c| {
        c.env("QDRANT_URL", empty.url());
    });
    run.assert_code(2);
    run.assert_stderr_contains("python scripts/setup-collections.py");
}

/// ESC and BEL as a hostile backup or server would send them.
const OSC_TITLE: &str = "\u{1b}]0;pwned\u{7}";
const CLEAR: &str = "\u{1b}[2J";

#[track_caller]
fn assert_no_controls(what: &str, run: &Run) {
    let out = run.all_output();
    let bad: Vec<char> = out
        .chars()
        .filter(|c| {
            (c.is_control() && *c != '\n' && *c != '\t')
                || ('\u{202a}'..='\u{202e}').contains(c)
                || ('\u{2066}'..='\u{2069}').contains(c)
        })
        .collect();
    assert!(
        bad.is_empty(),
        "{what} printed control characters {bad:?}:\n{}",
        out.escape_debug()
    );
}

#[test]
fn control_characters_from_a_backup_never_reach_the_terminal() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--collection", "github"]);
    edit_manifest(&backup, |m| {
        m["ai_memory_version"] = json!(OSC_TITLE);
        m["qdrant_version"] = json!(format!("1.18.3{CLEAR}"));
        m["qdrant_host"] = json!(format!("host{CLEAR}"));
        m["backup_date"] = json!(format!("{}{OSC_TITLE}", m["backup_date"].as_str().unwrap()));
    });
    let dir = backup.to_str().unwrap();
    let run = env.run(&["list"]);
    assert_no_controls("list", &run);
    assert!(
        run.stdout.contains("pwned"),
        "the field is still shown:\n{}",
        run.stdout
    );
    assert_no_controls("list --verify", &env.run(&["list", "--verify"]));
    assert_no_controls("verify", &env.run(&["verify", dir]));
    assert_no_controls(
        "restore --dry-run",
        &env.run(&["restore", "--dry-run", dir]),
    );
    assert_no_controls(
        "restore --dry-run --restore-config",
        &env.run(&["restore", "--dry-run", "--restore-config", dir]),
    );
    assert_no_controls("diff-schema", &env.run(&["diff-schema", dir]));
    assert_no_controls(
        "prune",
        &env.run(&["prune", "--keep-last", "5", "--dry-run"]),
    );

    // A manifest that is not JSON at all: its text is quoted in the diagnostic.
    let broken = env.tmp.path().join("broken");
    copy_dir(&backup, &broken);
    std::fs::write(
        broken.join("manifest.json"),
        format!("{{\"backup_date\": {OSC_TITLE}{CLEAR} }}"),
    )
    .unwrap();
    let broken = broken.to_str().unwrap();
    assert_no_controls("verify of a broken manifest", &env.run(&["verify", broken]));
    assert_no_controls(
        "restore of a broken manifest",
        &env.run(&["restore", "--dry-run", broken]),
    );

    // A config entry with controls is refused as an unsafe name; the refusal quotes it escaped.
    let unsafe_name = env.tmp.path().join("unsafe-name");
    copy_dir(&backup, &unsafe_name);
    edit_manifest(&unsafe_name, |m| {
        m["config_files"] = json!([format!("settings{CLEAR}\u{202e}.json")]);
    });
    let unsafe_name = unsafe_name.to_str().unwrap();
    let run = env.run(&["verify", unsafe_name]);
    assert_ne!(run.code, 0);
    assert_no_controls("verify of an unsafe config entry", &run);
    assert_no_controls(
        "restore of an unsafe config entry",
        &env.run(&["restore", "--dry-run", "--restore-config", unsafe_name]),
    );
}

#[test]
fn control_characters_from_the_server_never_reach_the_terminal() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--collection", "github"]);
    let dir = backup.to_str().unwrap();
    let message = format!("Service internal error: {OSC_TITLE}{CLEAR}");
    for args in [
        vec!["diff-schema", dir],
        vec!["restore", "--dry-run", dir],
        vec!["backup", "--collection", "github"],
    ] {
        env.double.clear_faults();
        env.double.inject(Fault::always(
            None,
            "/collections/github",
            FaultKind::Status {
                code: 500,
                message: message.clone(),
            },
        ));
        let run = env.run(&args);
        assert_ne!(run.code, 0);
        assert!(
            run.stderr.contains("Service internal error"),
            "the server's message is still shown:\n{}",
            run.stderr
        );
        assert_no_controls(&format!("{args:?}"), &run);
        env.double.clear_faults();
        env.double.inject(Fault::always(
            None,
            "/collections/github",
            FaultKind::PlainStatus {
                code: 400,
                body: message.clone(),
            },
        ));
        assert_no_controls(&format!("{args:?} (plain text)"), &env.run(&args));
    }
}

#[test]
fn help_wraps_between_words_only() {
    let env = TestEnv::new();
    let help = |args: &[&str], columns: &str| {
        let run = env.run_with(args, |c| {
            c.env("COLUMNS", columns);
        });
        run.assert_code(0);
        run.stdout
    };
    let words = |text: &str| -> std::collections::BTreeSet<String> {
        text.split_whitespace().map(str::to_string).collect()
    };
    for sub in [
        "",
        "backup",
        "restore",
        "verify",
        "list",
        "diff-schema",
        "prune",
        "completions",
    ] {
        for flag in ["-h", "--help"] {
            let args: Vec<&str> = [sub, flag].into_iter().filter(|a| !a.is_empty()).collect();
            let wide = words(&help(&args, "1000"));
            for columns in ["30", "40", "60", "80", "100", "120"] {
                let text = help(&args, columns);
                let narrow = words(&text);
                let split: Vec<&String> = narrow.difference(&wide).collect();
                assert!(
                    split.is_empty(),
                    "`aimem {sub} {flag}` at {columns} columns splits words: {split:?}"
                );
                // A quoted command (`source <(COMPLETE=bash aimem)`) is copied whole: it
                // never starts on one line and ends on the next.
                for line in text.lines() {
                    assert!(
                        line.matches('`').count() % 2 == 0,
                        "`aimem {sub} {flag}` at {columns} columns splits a quoted span: {line:?}"
                    );
                }
            }
        }
    }
}
