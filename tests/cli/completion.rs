//! Dynamic completion, driven the way bash drives it: the registration script from
//! `COMPLETE=bash aimem` is sourced, COMP_WORDS/COMP_CWORD/COMP_LINE/COMP_POINT are set and the
//! registered function is called; COMPREPLY is what a TAB would offer.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use qdrant_double::{Fault, FaultKind};

use super::support::*;

/// Sources the registration, completes word number `$1` of the words after it (the word under
/// the cursor, maybe empty) and prints COMPREPLY one per line; stderr is kept to check that it
/// stays silent.
const DRIVER: &str = r#"
source <(COMPLETE=bash "$AIMEM") || exit 90
spec=$(complete -p aimem) || exit 91
function=$(sed -E 's/.* -F ([^ ]+) .*/\1/' <<<"$spec")
COMP_CWORD=$1
shift
COMP_WORDS=("$@")
COMP_LINE="$*"
before=("${COMP_WORDS[@]:0:COMP_CWORD+1}")
before="${before[*]}"
COMP_POINT=${#before}
COMP_TYPE=9
"$function" aimem "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]:-}"
printf '%s\n' "${COMPREPLY[@]}"
"#;

/// A bash with the test's environment (the one `env.command` gives aimem), in `cwd`, completing
/// word number `cursor` of `words`.
fn bash(env: &TestEnv, words: &[&str], cursor: usize, cwd: &Path) -> Command {
    let template = env.command(&[]);
    let mut bash = Command::new("bash");
    bash.env_clear();
    for (key, value) in template.get_envs() {
        if let Some(value) = value {
            bash.env(key, value);
        }
    }
    bash.env("AIMEM", env!("CARGO_BIN_EXE_aimem"))
        .current_dir(cwd)
        .arg("-c")
        .arg(DRIVER)
        .arg("bash")
        .arg(cursor.to_string())
        .args(words)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    bash
}

/// What a TAB offers after `words` (the last one is the word being completed).
#[track_caller]
fn complete(env: &TestEnv, words: &[&str]) -> Vec<String> {
    complete_in(env, words, env.tmp.path())
}

#[track_caller]
fn complete_in(env: &TestEnv, words: &[&str], cwd: &Path) -> Vec<String> {
    complete_at(env, words, words.len() - 1, cwd)
}

/// What a TAB offers with the cursor on word number `cursor`.
#[track_caller]
fn complete_at(env: &TestEnv, words: &[&str], cursor: usize, cwd: &Path) -> Vec<String> {
    let child = bash(env, words, cursor, cwd).spawn().expect("run bash");
    let run = wait_bounded(child);
    run.assert_code(0);
    assert_eq!(run.stderr, "", "completion printed to stderr for {words:?}");
    run.stdout
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// Waits for the child; a completion that is still running after a minute hangs the shell.
#[track_caller]
fn wait_bounded(mut child: std::process::Child) -> Run {
    let start = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            child.kill().ok();
            panic!("completion still running after a minute");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    to_run(child.wait_with_output().expect("output"))
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

#[test]
fn registration_script_comes_from_complete_env() {
    let env = TestEnv::new();
    let run = env.run_with(&[], |c| {
        c.env("COMPLETE", "bash");
    });
    run.assert_code(0);
    assert!(
        run.stdout.contains("complete ") && run.stdout.contains(" aimem"),
        "no bash registration:\n{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(env!("CARGO_BIN_EXE_aimem")),
        "the script must call back the binary that printed it:\n{}",
        run.stdout
    );
}

#[test]
fn restore_dir_offers_latest_and_the_backups_of_the_root() {
    let env = TestEnv::ai_memory();
    let first = env.backup(&["--collection", "github"]);
    let second = env.backup(&["--collection", "discussions"]);
    // Neither an unfinished backup nor restore's hidden folder is a backup to offer.
    copy_dir(
        &first,
        &env.root().join(".aimem-staging-2030-01-01_000000-99"),
    );
    copy_dir(&first, &env.root().join(".aimem-prerestore-github-1"));
    std::fs::write(env.root().join("notes.txt"), "not a backup").unwrap();

    let offered = complete(&env, &["aimem", "restore", ""]);
    for wanted in ["latest", path_str(&first), path_str(&second)] {
        assert!(
            offered.iter().any(|o| o == wanted),
            "{wanted} not offered: {offered:?}"
        );
    }
    for unwanted in ["staging", "prerestore", "notes.txt"] {
        assert!(
            !offered.iter().any(|o| o.contains(unwanted)),
            "{unwanted} offered: {offered:?}"
        );
    }
    // Newest first, after `latest`.
    let folders: Vec<&String> = offered.iter().filter(|o| !o.starts_with('-')).collect();
    assert_eq!(
        folders,
        [
            &"latest".to_string(),
            &path_str(&second).to_string(),
            &path_str(&first).to_string()
        ]
    );

    // What is typed narrows it; verify and diff-schema offer the same.
    assert_eq!(complete(&env, &["aimem", "verify", "la"]), ["latest"]);
    let typed = &path_str(&second)[..path_str(&second).len() - 2];
    assert!(
        complete(&env, &["aimem", "diff-schema", typed]).contains(&path_str(&second).to_string())
    );
}

#[test]
fn restore_collection_offers_the_names_in_the_backup_on_the_line() {
    let env = TestEnv::ai_memory();
    let older = env.backup(&["--collection", "github", "--collection", "jira-data"]);
    let newer = env.backup(&["--collection", "conventions"]);
    let older = path_str(&older);

    assert_eq!(
        complete(&env, &["aimem", "restore", older, "--collection", ""]),
        ["github", "jira-data"]
    );
    assert_eq!(
        complete(&env, &["aimem", "restore", older, "--collection", "j"]),
        ["jira-data"]
    );
    // The folder may come after the option, and `latest` means the newest backup.
    assert_eq!(
        complete_at(
            &env,
            &["aimem", "restore", "--collection", "", older],
            3,
            env.tmp.path()
        ),
        ["github", "jira-data"]
    );
    assert_eq!(
        complete(&env, &["aimem", "restore", "latest", "--collection", ""]),
        ["conventions"]
    );
    assert_eq!(
        complete(&env, &["aimem", "diff-schema", older, "--collection", ""]),
        ["github", "jira-data"]
    );
    // A folder that is no backup offers nothing, and says nothing.
    let nowhere = env.tmp.path().join("nowhere");
    assert_eq!(
        complete(
            &env,
            &["aimem", "restore", path_str(&nowhere), "--collection", ""]
        ),
        Vec::<String>::new()
    );
    drop(newer);
}

#[test]
fn backup_collection_offers_the_names_on_the_server() {
    let env = TestEnv::ai_memory();
    env.double
        .seed_from_fixture("extra one", "collections/info-github.json", 3);
    assert_eq!(
        complete(&env, &["aimem", "backup", "--collection", ""]),
        [
            "code-patterns",
            "conventions",
            "discussions",
            "extra one",
            "github",
            "jira-data"
        ]
    );
    assert_eq!(
        complete(&env, &["aimem", "backup", "--collection", "co"]),
        ["code-patterns", "conventions"]
    );
    // The server on the line wins over QDRANT_URL, as for a real run.
    let other = TestEnv::new();
    other
        .double
        .seed_from_fixture("elsewhere", "collections/info-github.json", 3);
    assert_eq!(
        complete(
            &env,
            &[
                "aimem",
                "backup",
                "--url",
                &other.double.url(),
                "--collection",
                ""
            ]
        ),
        ["elsewhere"]
    );
}

#[test]
fn backup_collection_gives_up_quietly_on_a_server_that_hangs_or_refuses() {
    let env = TestEnv::ai_memory();
    env.double.inject(Fault {
        times: usize::MAX,
        ..Fault::new(Some("GET"), "/collections", FaultKind::Blackhole)
    });
    assert_eq!(
        complete(&env, &["aimem", "backup", "--collection", ""]),
        Vec::<String>::new()
    );
    let refused = format!("http://127.0.0.1:{}", closed_port());
    assert_eq!(
        complete(
            &env,
            &["aimem", "backup", "--url", &refused, "--collection", ""]
        ),
        Vec::<String>::new()
    );
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[test]
fn keep_within_offers_examples_the_parser_accepts() {
    let env = TestEnv::new();
    let offered = complete(&env, &["aimem", "prune", "--keep-within", ""]);
    assert!(offered.len() >= 3, "{offered:?}");
    for example in &offered {
        aimem::manifest::retention::parse_duration(example)
            .unwrap_or_else(|e| panic!("offered {example} is refused: {e}"));
    }
}

#[test]
fn values_that_are_no_paths_complete_no_file_names() {
    let env = TestEnv::new();
    let cwd = env.tmp.path().join("cwd");
    std::fs::create_dir_all(&cwd).unwrap();
    std::fs::write(cwd.join("a-file"), "").unwrap();
    for words in [
        &["aimem", "backup", "--retry", ""][..],
        &["aimem", "backup", "--version", ""],
        &["aimem", "backup", "--create-timeout", ""],
        &["aimem", "backup", "--port", ""],
        &["aimem", "restore", "x", "--target-name", ""],
        &["aimem", "prune", "--keep-last", ""],
    ] {
        let offered = complete_in(&env, words, &cwd);
        assert!(
            !offered.iter().any(|o| o.contains("a-file")),
            "{words:?} offers file names: {offered:?}"
        );
    }
    // Where a folder is wanted, folders are offered.
    let offered = complete_in(&env, &["aimem", "list", ""], &cwd);
    assert!(!offered.iter().any(|o| o.contains("a-file")), "{offered:?}");
}
