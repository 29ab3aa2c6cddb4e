//! No credential ever reaches the terminal, a `--json` document or a file aimem writes
//! (issue 17 finding 8): a URL password with the characters RFC 3986 reserves (`/`, `?`, `#`),
//! user info in QDRANT_HOST, and an API key that the server echoes in an error body.

use std::path::Path;
use std::process::Stdio;

use qdrant_double::{Fault, FaultKind};
use serde_json::Value;

use super::support::*;

/// Every file under `dir` (any depth), for "written nowhere" checks.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut queue = vec![dir.to_path_buf()];
    while let Some(dir) = queue.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.symlink_metadata().unwrap().is_dir() {
                queue.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found
}

/// No file under the test's folders (backups, staging folders, journals in the state folder,
/// locks) holds `secret`, in any letter case.
#[track_caller]
fn assert_written_nowhere(env: &TestEnv, secret: &str) {
    let secret = secret.to_ascii_lowercase();
    for file in files_under(env.tmp.path()) {
        let bytes = std::fs::read(&file).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes).to_ascii_lowercase();
        assert!(
            !text.contains(&secret),
            "{} holds the secret {secret:?}:\n{text}",
            file.display()
        );
    }
}

#[track_caller]
fn assert_not_printed(what: &str, run: &Run, secrets: &[&str]) {
    let all = run.all_output().to_ascii_lowercase();
    for secret in secrets {
        assert!(
            !all.contains(&secret.to_ascii_lowercase()),
            "{what} printed {secret:?}:\n{}",
            run.all_output()
        );
    }
}

/// The two halves of the test passwords, each of which must never be printed.
const LEFT: &str = "Hx7qLeft";
const RIGHT: &str = "Zr9kRight";

#[test]
fn a_url_password_with_reserved_characters_is_refused_and_never_printed() {
    let env = TestEnv::ai_memory();
    let port = env.double.port();
    let backup = env.backup(&["--collection", "github"]);
    let dir = backup.to_str().unwrap();
    for reserved in ["/", "#", "?", "/?#", "#/", "?/"] {
        let url = format!("http://admin:{LEFT}{reserved}{RIGHT}@127.0.0.1:{port}");
        for args in [
            vec!["backup"],
            vec!["backup", "--json"],
            vec!["diff-schema", dir],
            vec!["diff-schema", "--json", dir],
            vec!["restore", "--dry-run", dir],
            vec!["restore", "--json", "--force", dir],
        ] {
            let what = format!("{args:?} with a password holding {reserved:?}");
            let run = env.run_with(&args, |c| {
                c.env("QDRANT_URL", &url);
            });
            run.assert_code(1);
            assert_not_printed(&what, &run, &[LEFT, RIGHT]);
            // What to do instead is said.
            assert!(
                run.all_output().contains("percent-encoded"),
                "{what}: no hint to percent-encode:\n{}",
                run.all_output()
            );
            if args.contains(&"--json") {
                let doc = json_stdout(&run);
                assert_eq!(doc["error"]["exit"], 1, "{doc}");
            }
        }
        // The same URL given with --url, and as a --peer.
        let run = env.run(&["backup", "--url", &url]);
        run.assert_code(1);
        assert_not_printed("--url", &run, &[LEFT, RIGHT]);
        let run = env.run(&["backup", "--peer", &url]);
        run.assert_code(1);
        assert_not_printed("--peer", &run, &[LEFT, RIGHT]);
    }
    assert_written_nowhere(&env, LEFT);
    assert_written_nowhere(&env, RIGHT);
}

#[test]
fn a_percent_encoded_password_is_sent_decoded_and_never_printed() {
    let env = TestEnv::ai_memory();
    let port = env.double.port();
    // `/`, `#`, `?`, `%` and `:` percent-encoded; a raw `@` before the last one is taken as
    // part of the password, as browsers and curl do.
    let password = format!("{LEFT}/#?%:@{RIGHT}");
    let url = format!("http://admin:{LEFT}%2F%23%3F%25%3A@{RIGHT}@127.0.0.1:{port}");
    let run = env.run_with(&["backup", "--collection", "github"], |c| {
        c.env("QDRANT_URL", &url);
    });
    run.assert_code(0);
    assert_not_printed("backup", &run, &[LEFT, RIGHT]);
    run.assert_stderr_contains(&format!("127.0.0.1:{port}"));
    let backup = std::path::PathBuf::from(run.stdout.trim());
    assert_eq!(manifest(&backup)["qdrant_host"], "127.0.0.1");
    // The server gets the password itself, as HTTP Basic credentials.
    let sent = env
        .double
        .requests()
        .iter()
        .filter_map(|r| r.headers.get("authorization").cloned())
        .collect::<Vec<_>>();
    let expected = format!("Basic {}", base64(&format!("admin:{password}")));
    assert!(!sent.is_empty(), "no credentials were sent");
    assert!(
        sent.iter().all(|s| *s == expected),
        "{sent:?} != {expected}"
    );
    assert_written_nowhere(&env, LEFT);
    assert_written_nowhere(&env, RIGHT);
}

/// RFC 4648 base64, for checking the `Authorization` header.
fn base64(text: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in text.as_bytes().chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The test's QDRANT_HOST password: never printed, never written, in any letter case.
const HOST_PASSWORD: &str = "HOSTPW9";

/// `aimem ARGS` with QDRANT_HOST/QDRANT_PORT instead of QDRANT_URL.
fn with_host(env: &TestEnv, args: &[&str], host: &str) -> Run {
    let port = env.double.port().to_string();
    env.run_with(args, |c| {
        c.env_remove("QDRANT_URL")
            .env("QDRANT_HOST", host)
            .env("QDRANT_PORT", port);
    })
}

#[test]
fn qdrant_host_with_user_info_is_refused_without_being_printed() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--collection", "github"]);
    let dir = backup.to_str().unwrap();
    let host = format!("admin:{HOST_PASSWORD}@127.0.0.1");
    for args in [
        vec!["backup", "--collection", "github"],
        vec!["backup", "--json", "--collection", "github"],
        vec!["diff-schema", dir],
        vec!["diff-schema", "--json", dir],
        vec!["restore", "--dry-run", dir],
        vec!["restore", "--json", "--force", dir],
    ] {
        let run = with_host(&env, &args, &host);
        run.assert_code(1);
        assert_not_printed(&format!("{args:?}"), &run, &[HOST_PASSWORD]);
        assert!(
            run.all_output().contains("QDRANT_HOST"),
            "{args:?} does not say which setting is wrong:\n{}",
            run.all_output()
        );
    }
    // With --host too.
    let run = env.run_with(&["backup", "--host", &host], |c| {
        c.env_remove("QDRANT_URL");
    });
    run.assert_code(1);
    assert_not_printed("--host", &run, &[HOST_PASSWORD]);
    assert_written_nowhere(&env, HOST_PASSWORD);
}

#[test]
fn qdrant_host_is_a_host_name_or_ip_address_only() {
    let env = TestEnv::ai_memory();
    for bad in [
        "http://127.0.0.1",
        "127.0.0.1/collections",
        "127.0.0.1?api-key=x",
        "127.0.0.1:6333",
        "127.0.0.1 ",
        " ",
        "local host",
        "host\u{1b}[2J",
        "",
    ] {
        let run = with_host(&env, &["backup", "--collection", "github"], bad);
        run.assert_code(1);
        run.assert_stderr_contains("QDRANT_HOST");
        assert!(
            !run.stderr.contains('\u{1b}'),
            "{bad:?}: a control character was printed"
        );
    }
    // A plain host name or address works, and is what the manifest records.
    for good in ["127.0.0.1", "localhost"] {
        let run = with_host(&env, &["backup", "--collection", "github"], good);
        run.assert_code(0);
        let backup = std::path::PathBuf::from(run.stdout.trim());
        assert_eq!(manifest(&backup)["qdrant_host"], good);
    }
}

/// Starts `aimem backup --collection conventions` with `tweak` applied, lets its snapshot
/// download stall, and kills it with SIGKILL once the download is under way (or lets it end,
/// if it stops before that): whatever it wrote stays as a killed run leaves it.
fn killed_backup(env: &TestEnv, tweak: impl FnOnce(&mut std::process::Command)) {
    env.double.inject(Fault::new(
        Some("GET"),
        "/collections/conventions/snapshots/",
        FaultKind::StallBody {
            after_bytes: 100,
            stall: std::time::Duration::from_secs(60),
        },
    ));
    let mut command = env.command(&["backup", "--no-stream", "--collection", "conventions"]);
    tweak(&mut command);
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        let downloading = env.double.requests().iter().any(|r| {
            r.method == "GET" && r.path.starts_with("/collections/conventions/snapshots/")
        });
        if downloading {
            std::process::Command::new("kill")
                .args(["-KILL", &child.id().to_string()])
                .status()
                .unwrap();
            child.wait().unwrap();
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the backup hangs");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    env.double.clear_faults();
}

#[test]
fn journals_and_leftovers_of_a_killed_backup_hold_no_credentials() {
    // Credentials in QDRANT_HOST: refused before anything is written.
    let env = TestEnv::ai_memory();
    let port = env.double.port().to_string();
    killed_backup(&env, |c| {
        c.env_remove("QDRANT_URL")
            .env("QDRANT_HOST", format!("admin:{HOST_PASSWORD}@127.0.0.1"))
            .env("QDRANT_PORT", &port);
    });
    assert_written_nowhere(&env, HOST_PASSWORD);
    let list = env.run(&["list", "--json"]);
    assert_not_printed("list --json", &list, &[HOST_PASSWORD]);

    // Credentials in QDRANT_URL: the journal names the server by scheme, host and port.
    let env = TestEnv::ai_memory();
    let url = format!(
        "http://admin:{LEFT}%2F{RIGHT}@127.0.0.1:{}",
        env.double.port()
    );
    killed_backup(&env, |c| {
        c.env("QDRANT_URL", &url);
    });
    let journals: Vec<_> = files_under(&env.root())
        .into_iter()
        .filter(|f| f.ends_with(".aimem-journal"))
        .collect();
    assert_eq!(journals.len(), 1, "{:?}", env.root_entries());
    // One JSON record a line; the first names the run and the server.
    let text = std::fs::read_to_string(&journals[0]).unwrap();
    let journal: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(
        journal["server"],
        format!("http://127.0.0.1:{}", env.double.port()),
        "{journal}"
    );
    assert_written_nowhere(&env, LEFT);
    assert_written_nowhere(&env, RIGHT);
    assert_written_nowhere(&env, "admin:");
    let list = env.run(&["list", "--json"]);
    list.assert_code(0);
    assert_eq!(json_stdout(&list)["leftovers"].as_array().unwrap().len(), 1);
    assert_not_printed("list --json", &list, &[LEFT, RIGHT, "admin:"]);
    // The next backup clears the leftover, and says so without the credentials.
    let run = env.run_with(&["backup", "--no-stream", "--collection", "github"], |c| {
        c.env("QDRANT_URL", &url);
    });
    run.assert_code(0);
    assert_not_printed("the next backup", &run, &[LEFT, RIGHT, "admin:"]);
}

/// An error message that quotes the request's API key back, as a careless server or proxy may.
fn echoing(prefix: &str) -> String {
    format!("{prefix}: the api-key header was `{KEY}`")
}

#[test]
fn an_api_key_the_server_echoes_is_never_printed() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--no-stream", "--collection", "github"]);
    let dir = backup.to_str().unwrap();
    let faults = [
        (
            "a JSON error body",
            FaultKind::Status {
                code: 500,
                message: echoing("Service internal error"),
            },
        ),
        (
            "a plain-text error body",
            FaultKind::PlainStatus {
                code: 502,
                body: echoing("Bad gateway"),
            },
        ),
        (
            "a refused key",
            FaultKind::Status {
                code: 401,
                message: echoing("Invalid API key"),
            },
        ),
        (
            "a read-only key",
            FaultKind::PlainStatus {
                code: 403,
                body: echoing("Forbidden"),
            },
        ),
        (
            "a 404 (taken as a missing collection, yet still quoted)",
            FaultKind::Status {
                code: 404,
                message: echoing("Not found"),
            },
        ),
    ];
    for (what, kind) in faults {
        for args in [
            vec!["backup", "--no-stream", "--collection", "github"],
            vec!["backup", "--no-stream", "--json", "--collection", "github"],
            vec!["diff-schema", dir],
            vec!["diff-schema", "--json", dir],
            vec!["restore", "--dry-run", dir],
            vec!["restore", "--json", "--force", dir],
            vec!["-vv", "backup", "--collection", "github"],
        ] {
            env.double.clear_faults();
            env.double
                .inject(Fault::always(None, "/collections/github", kind.clone()));
            let run = env.run(&args);
            if !what.starts_with("a 404") {
                assert_ne!(run.code, 0, "{what}, {args:?}:\n{}", run.all_output());
            }
            assert_not_printed(&format!("{args:?} after {what}"), &run, &[KEY]);
            // The rest of the server's message is still shown, with the key hidden.
            if run.all_output().contains("the api-key header was") {
                assert!(
                    run.all_output().contains("the api-key header was `***`"),
                    "{what}, {args:?}:\n{}",
                    run.all_output()
                );
            }
        }
    }
    // The key in an answer aimem cannot read: quoted by the parser's error.
    env.double.clear_faults();
    env.double.inject(Fault::always(
        Some("POST"),
        "/collections/github/snapshots",
        FaultKind::RawJson {
            code: 200,
            body: format!(r#"{{"result":{{"name":"x.snapshot","size":"{KEY}"}},"status":"ok"}}"#),
        },
    ));
    for args in [
        vec!["backup", "--no-stream", "--collection", "github"],
        vec!["backup", "--no-stream", "--json", "--collection", "github"],
    ] {
        let run = env.run(&args);
        assert_ne!(run.code, 0, "{args:?}:\n{}", run.all_output());
        assert_not_printed(
            &format!("{args:?} after an unreadable answer"),
            &run,
            &[KEY],
        );
    }
    env.double.clear_faults();
    assert_written_nowhere(&env, KEY);
}

#[test]
fn url_passwords_the_server_echoes_are_never_printed() {
    let env = TestEnv::ai_memory();
    let url = format!(
        "http://admin:{LEFT}%2F{RIGHT}@127.0.0.1:{}",
        env.double.port()
    );
    env.double.inject(Fault::always(
        None,
        "/collections/github",
        FaultKind::PlainStatus {
            code: 500,
            body: format!("upstream said: {LEFT}/{RIGHT} and {LEFT}%2F{RIGHT}"),
        },
    ));
    let run = env.run_with(&["backup", "--json", "--collection", "github"], |c| {
        c.env("QDRANT_URL", &url);
    });
    assert_ne!(run.code, 0);
    assert!(
        run.all_output().contains("upstream said"),
        "{}",
        run.all_output()
    );
    assert_not_printed("backup --json", &run, &[LEFT, RIGHT]);
}

#[test]
fn the_basic_credentials_the_server_echoes_are_never_printed() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--collection", "github"]);
    let dir = backup.to_str().unwrap();
    let url = format!(
        "http://admin:{LEFT}%2F{RIGHT}@127.0.0.1:{}",
        env.double.port()
    );
    // What aimem sends: `Authorization: Basic <base64 of admin:password>`.
    let encoded = base64(&format!("admin:{LEFT}/{RIGHT}"));
    let faults = [
        FaultKind::PlainStatus {
            code: 502,
            body: format!("proxy saw: Authorization: Basic {encoded}"),
        },
        FaultKind::Status {
            code: 401,
            message: format!("proxy saw: credentials {encoded} refused"),
        },
    ];
    for kind in faults {
        for args in [
            vec!["backup", "--collection", "github"],
            vec!["backup", "--json", "--collection", "github"],
            vec!["diff-schema", "--json", dir],
            vec!["restore", "--dry-run", dir],
            vec!["-vv", "backup", "--collection", "github"],
        ] {
            env.double.clear_faults();
            env.double
                .inject(Fault::always(None, "/collections/github", kind.clone()));
            let run = env.run_with(&args, |c| {
                c.env("QDRANT_URL", &url);
            });
            assert_ne!(run.code, 0, "{args:?}:\n{}", run.all_output());
            // The rest of the server's message is still shown.
            assert!(
                run.all_output().contains("proxy saw"),
                "{args:?}:\n{}",
                run.all_output()
            );
            assert_not_printed(&format!("{args:?}"), &run, &[&encoded, LEFT, RIGHT]);
        }
    }
    env.double.clear_faults();
    assert_written_nowhere(&env, &encoded);
}

/// The password of a server URL an older aimem wrote into a journal.
const STORED_PASSWORD: &str = "St0redPw";

/// A journal (one `started` record naming `server`, one snapshot still on it) at `path`.
fn planted_journal(path: &Path, server: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let started = serde_json::json!({
        "event": "started",
        "owner": {"pid": 999_999, "host": "h", "started": "2026-01-01T00:00:00Z"},
        "server": server,
    });
    let created = serde_json::json!({
        "event": "created", "collection": "github", "snapshot": "github-1.snapshot",
    });
    std::fs::write(path, format!("{started}\n{created}\n")).unwrap();
}

#[test]
fn a_server_url_with_credentials_read_from_a_journal_is_shown_redacted() {
    let env = TestEnv::ai_memory();
    std::fs::create_dir_all(env.root()).unwrap();
    let backup_journal = env
        .root()
        .join(".aimem-staging-2026-01-01_000000-abcdefghijkl-999999/.aimem-journal");
    let restore_journal = env
        .tmp
        .path()
        .join("home/.local/state/aimem/restores/restore-x.journal");
    let server = format!("http://user:{STORED_PASSWORD}@127.0.0.1:9");
    planted_journal(&backup_journal, &server);
    planted_journal(&restore_journal, &server);
    // The state folder as aimem makes it: private.
    for dir in [
        "home/.local/state/aimem",
        "home/.local/state/aimem/restores",
    ] {
        use std::os::unix::fs::PermissionsExt;
        let private = std::fs::Permissions::from_mode(0o700);
        std::fs::set_permissions(env.tmp.path().join(dir), private).unwrap();
    }
    let run = env.run(&["list"]);
    run.assert_code(0);
    assert_not_printed("list", &run, &[STORED_PASSWORD]);
    // Both leftovers are reported, with the server named without its credentials.
    assert_eq!(
        run.stderr.matches("http://***@127.0.0.1:9").count(),
        2,
        "{}",
        run.all_output()
    );
    let run = env.run(&["list", "--json"]);
    run.assert_code(0);
    assert_not_printed("list --json", &run, &[STORED_PASSWORD]);
    let leftovers = json_stdout(&run)["leftovers"].as_array().unwrap().clone();
    assert_eq!(leftovers.len(), 2, "{leftovers:?}");
    for leftover in &leftovers {
        assert_eq!(leftover["server"], "http://***@127.0.0.1:9", "{leftover}");
    }

    // Text that is no server URL (user info without a scheme): never shown as it is.
    let server = format!("user:{STORED_PASSWORD}@127.0.0.1:9");
    planted_journal(&backup_journal, &server);
    planted_journal(&restore_journal, &server);
    for args in [vec!["list"], vec!["list", "--json"]] {
        let run = env.run(&args);
        run.assert_code(0);
        assert_not_printed(&format!("{args:?}"), &run, &[STORED_PASSWORD]);
        assert!(
            run.stderr
                .contains("a server whose recorded address cannot be read"),
            "{args:?}:\n{}",
            run.all_output()
        );
    }
    let run = env.run(&["list", "--json"]);
    for leftover in json_stdout(&run)["leftovers"].as_array().unwrap() {
        assert_eq!(leftover["server"], serde_json::Value::Null, "{leftover}");
    }
}
