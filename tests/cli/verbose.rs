//! `-v`/`--verbose` (each HTTP exchange on stderr, headers at `-vv`, secrets never), progress
//! on a terminal only, IEC sizes, and ASCII-only output off a terminal.

use super::support::{KEY, Run, TestEnv, json_stdout, terminal_command, to_run};

/// The `-v` lines of a run: aimem's own log records.
fn log_lines(run: &Run) -> Vec<&str> {
    run.stderr
        .lines()
        .filter(|l| l.starts_with("[aimem] "))
        .collect()
}

/// The closing line of one exchange: `METHOD PATH -> STATUS, sent N B, received N B, T`.
#[track_caller]
fn exchange_line<'r>(run: &'r Run, method: &str, path_start: &str, status: u16) -> &'r str {
    let prefix = format!("[aimem] {method} {path_start}");
    let line = log_lines(run)
        .into_iter()
        .find(|l| l.starts_with(&prefix) && l.contains(&format!(" -> {status}, ")))
        .unwrap_or_else(|| panic!("no {method} {path_start} -> {status} line:\n{}", run.stderr));
    assert!(line.contains(", sent "), "{line}");
    assert!(line.contains(", received "), "{line}");
    assert!(
        line.ends_with(" ms") || line.ends_with(" s"),
        "a duration closes the line: {line}"
    );
    line
}

#[test]
fn verbose_shows_each_request_with_status_bytes_and_duration() {
    let env = TestEnv::ai_memory();
    let run = env.run(&["-v", "backup", "--no-stream", "--collection", "github"]);
    run.assert_code(0);
    exchange_line(&run, "GET", "/collections", 200);
    exchange_line(&run, "POST", "/collections/github/snapshots?wait=true", 200);
    let download = exchange_line(&run, "GET", "/collections/github/snapshots/github-", 200);
    // The snapshot's bytes are counted as they arrive, not just the headers.
    let size = snapshot_len(&env.only_backup());
    let received = download
        .split(", received ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .expect("received");
    assert_eq!(received, human_size_like_aimem(size), "{download}");
    exchange_line(&run, "DELETE", "/collections/github/snapshots/", 200);
    // Headers are for -vv.
    assert!(!run.stderr.contains("api-key"), "{}", run.stderr);
    // stdout is still only the backup's path.
    assert_eq!(run.stdout.lines().count(), 1, "{}", run.stdout);

    // A streamed shard snapshot's bytes are counted as they arrive too.
    let streamed = TestEnv::ai_memory();
    let run = streamed.run(&["-v", "backup", "--collection", "github"]);
    run.assert_code(0);
    let stream = exchange_line(&run, "GET", "/collections/github/shards/0/snapshot", 200);
    let size = std::fs::metadata(
        streamed
            .only_backup()
            .join("qdrant/github/shard-0.snapshot"),
    )
    .expect("shard file")
    .len();
    assert!(
        stream.contains(&format!(", received {}", human_size_like_aimem(size))),
        "{stream}"
    );

    // An exchange that gets no answer says so, with its duration.
    let refused = env.run(&["-v", "backup", "--url", "http://127.0.0.1:9"]);
    assert_ne!(refused.code, 0);
    assert!(
        log_lines(&refused)
            .iter()
            .any(|l| l.starts_with("[aimem] GET / -> failed after ")),
        "{}",
        refused.stderr
    );

    let quiet = env.run(&["backup", "--no-stream", "--collection", "github"]);
    quiet.assert_code(0);
    assert!(log_lines(&quiet).is_empty(), "{}", quiet.stderr);
}

/// The length of the one `.snapshot` file in a backup folder (searched to any depth).
fn snapshot_len(dir: &std::path::Path) -> u64 {
    let mut found = Vec::new();
    let mut queue = vec![dir.to_path_buf()];
    while let Some(dir) = queue.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                queue.push(path);
            } else if path.extension().is_some_and(|e| e == "snapshot") {
                found.push(std::fs::metadata(&path).expect("metadata").len());
            }
        }
    }
    assert_eq!(found.len(), 1, "one snapshot in {dir:?}");
    found[0]
}

/// aimem's own size wording (IEC units, one decimal), for comparing with a file's length.
fn human_size_like_aimem(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < units.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    match unit {
        0 => format!("{bytes} B"),
        _ => format!("{value:.1} {}", units[unit]),
    }
}

#[test]
fn very_verbose_shows_headers_but_never_the_key_or_url_credentials() {
    let env = TestEnv::ai_memory();
    let url = env
        .double
        .url()
        .replacen("http://", "http://admin:url-pass-hunter2@", 1);
    for flags in [
        &["-vv"][..],
        &["-vvv"],
        &["--verbose", "--verbose", "--verbose"],
    ] {
        let mut args = flags.to_vec();
        args.extend([
            "backup",
            "--no-stream",
            "--collection",
            "github",
            "--url",
            &url,
        ]);
        let run = env.run(&args);
        run.assert_code(0);
        let all = run.all_output();
        assert!(all.contains("> api-key: <redacted>"), "{all}");
        assert!(all.contains("< content-type: "), "{all}");
        assert!(
            all.contains("> POST /collections/github/snapshots"),
            "{all}"
        );
        assert!(!all.contains(KEY), "the API key leaked:\n{all}");
        assert!(
            !all.contains("url-pass-hunter2"),
            "the URL password leaked:\n{all}"
        );
        assert!(!all.contains("admin:"), "the URL user info leaked:\n{all}");
    }
    // -vvv adds the HTTP library's own records; -vv does not.
    let two = env.run(&["-vv", "backup", "--collection", "github"]);
    assert!(!two.stderr.contains("[ureq"), "{}", two.stderr);
    let three = env.run(&["-vvv", "backup", "--collection", "github"]);
    assert!(three.stderr.contains("[ureq"), "{}", three.stderr);
    assert!(!three.all_output().contains(KEY), "{}", three.stderr);
}

#[test]
fn verbose_never_writes_to_stdout_in_quiet_or_json_mode() {
    let env = TestEnv::ai_memory();
    // -q keeps the person's lines away; the requests asked for with -v still come, on stderr.
    let run = env.run(&["-q", "-v", "backup", "--collection", "github"]);
    run.assert_code(0);
    let path = run.stdout.trim();
    assert!(std::path::Path::new(path).is_dir(), "{}", run.stdout);
    assert_eq!(run.stdout.lines().count(), 1, "{}", run.stdout);
    assert!(!run.stderr.contains("Backup complete"), "{}", run.stderr);
    exchange_line(&run, "GET", "/collections", 200);

    let json = env.run(&["-vv", "diff-schema", path, "--json"]);
    json.assert_code(0);
    json_stdout(&json);
    exchange_line(&json, "GET", "/collections/github", 200);
    assert!(!json.stdout.contains("[aimem]"), "{}", json.stdout);
}

#[test]
fn sizes_use_binary_units_everywhere() {
    let env = TestEnv::ai_memory();
    env.double.set_snapshot_filler("github", 3 * 1024 * 1024);
    let run = env.run(&["backup", "--collection", "github"]);
    run.assert_code(0);
    let total = run
        .stderr
        .lines()
        .find(|l| l.contains("Total size:"))
        .unwrap_or_else(|| panic!("{}", run.stderr));
    assert!(total.ends_with(" MiB"), "{total}");
    for unit in [" KB", " MB", " GB"] {
        assert!(!run.stderr.contains(unit), "{unit}: {}", run.stderr);
    }
    let listed = env.run(&["list"]);
    listed.assert_code(0);
    assert!(listed.stdout.contains(" MiB"), "{}", listed.stdout);
}

/// Runs `aimem ARGS` on a pseudo-terminal (util-linux `script`) and returns all it drew.
fn on_a_terminal(env: &TestEnv, args: &[&str]) -> Run {
    let output = terminal_command(env, args)
        // A terminal that can move the cursor (bars are hidden on a dumb one).
        .env("TERM", "xterm")
        .output()
        .expect("util-linux `script` runs aimem on a terminal");
    to_run(output)
}

/// The labels of the bars and spinners of a backup, a restore and a verify.
const BACKUP_LABELS: [&str; 2] = ["Qdrant building the snapshot of github", "download github"];
const RESTORE_LABELS: [&str; 5] = [
    "Qdrant building the pre-restore snapshot of github",
    "pre-restore copy of github",
    "upload github",
    "Qdrant recovering github",
    "hashing ",
];

#[test]
fn progress_is_labelled_on_a_terminal_and_absent_without_one() {
    let env = TestEnv::ai_memory();
    let backup = on_a_terminal(&env, &["backup", "--no-stream", "--collection", "github"]);
    backup.assert_code(0);
    for label in BACKUP_LABELS {
        assert!(backup.stdout.contains(label), "{label}:\n{}", backup.stdout);
    }
    let folder = env.only_backup();
    let path = folder.to_str().expect("utf-8");
    let restore = on_a_terminal(&env, &["restore", path, "--force"]);
    restore.assert_code(0);
    for label in RESTORE_LABELS {
        assert!(
            restore.stdout.contains(label),
            "{label}:\n{}",
            restore.stdout
        );
    }
    let verify = on_a_terminal(&env, &["verify", path]);
    verify.assert_code(0);
    assert!(verify.stdout.contains("hashing "), "{}", verify.stdout);
    // The closing lines: duration and throughput.
    for run in [&backup, &restore] {
        assert!(run.stdout.contains("Took: "), "{}", run.stdout);
        assert!(run.stdout.contains("/s)"), "{}", run.stdout);
    }

    // Without a terminal, and on one with --no-progress or --quiet: no bar, no spinner.
    let piped = [
        env.run(&["backup", "--no-stream", "--collection", "github"]),
        env.run(&["restore", path, "--force"]),
        env.run(&["verify", path]),
    ];
    let asked_not_to = [
        on_a_terminal(&env, &["--no-progress", "backup", "--collection", "github"]),
        on_a_terminal(&env, &["-q", "restore", path, "--force"]),
    ];
    for run in piped.iter().chain(&asked_not_to) {
        run.assert_code(0);
        for label in BACKUP_LABELS.iter().chain(&RESTORE_LABELS[..4]) {
            assert!(
                !run.all_output().contains(label),
                "{label}:\n{}",
                run.all_output()
            );
        }
        assert!(!run.stderr.contains("hashing "), "{}", run.stderr);
    }
    // The closing lines are there without a terminal too.
    assert!(piped[0].stderr.contains("Took: "), "{}", piped[0].stderr);
    assert!(piped[2].stderr.contains("hashed "), "{}", piped[2].stderr);
}

#[test]
fn output_without_a_terminal_is_ascii_without_escape_codes() {
    let env = TestEnv::ai_memory();
    let folder = env.backup(&["--collection", "github"]);
    let path = folder.to_str().expect("utf-8");
    let damaged = env.tmp.path().join("damaged");
    super::support::copy_dir(&folder, &damaged);
    std::fs::write(damaged.join("manifest.json"), "{ not json").expect("damage");
    let damaged = damaged.to_str().expect("utf-8");
    let runs: Vec<(&str, Vec<&str>)> = vec![
        ("backup", vec!["backup", "--collection", "github"]),
        ("verify", vec!["verify", path]),
        ("verify damaged", vec!["verify", damaged]),
        ("restore damaged", vec!["restore", damaged, "--force"]),
        ("restore", vec!["restore", path, "--force"]),
        ("list", vec!["list"]),
        ("diff-schema", vec!["diff-schema", path]),
        ("missing backup", vec!["verify", "/nonexistent/backup"]),
        ("bad flag", vec!["backup", "--no-such-flag"]),
        ("unreachable", vec!["backup", "--url", "http://127.0.0.1:9"]),
        ("verbose", vec!["-vv", "backup", "--collection", "github"]),
        ("help", vec!["restore", "--help"]),
    ];
    let mut failures = 0;
    for (what, args) in &runs {
        for no_color in [true, false] {
            let run = env.run_with(args, |c| {
                if !no_color {
                    c.env_remove("NO_COLOR");
                }
            });
            if run.code != 0 {
                failures += 1;
            }
            for (stream, text) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
                if let Some(c) = text.chars().find(|c| !c.is_ascii() || *c == '\u{1b}') {
                    panic!("{what}: {stream} has {c:?}:\n{text}");
                }
            }
        }
    }
    assert!(failures >= 8, "the failing commands failed");
}

#[test]
fn color_always_off_a_terminal_still_draws_diagnostics_in_ascii() {
    // Box drawing follows the stream, not the colour choice: `--color always` off a terminal
    // gets colour (asked for) but ASCII lines.
    let env = TestEnv::new();
    let run = env.run(&["--color", "always", "verify", "/nonexistent/backup"]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.is_ascii(), "{}", run.stderr);
}
