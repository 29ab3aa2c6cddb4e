//! Dynamic completion, driven the way bash drives it: the registration script from
//! `COMPLETE=bash aimem` is sourced, COMP_WORDS/COMP_CWORD/COMP_LINE/COMP_POINT are set and the
//! registered function is called; COMPREPLY is what a TAB would offer.

use std::path::{Path, PathBuf};
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
    // Each as the one word it is: `extra one` must not become two arguments.
    assert_eq!(
        offered_words(
            &env,
            &["aimem", "backup", "--collection", ""],
            env.tmp.path()
        ),
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

// What a TAB inserts must reach aimem as exactly the name offered, in every shell, and run
// nothing on its way: names may hold `$(…)`, quotes, spaces, and characters no shell can
// insert safely. These tests type at a real shell on a terminal (driven by zsh's zpty), let it
// complete, read back the line, and run that line with `aimem` defined as a function that
// prints its arguments, in an empty folder that must stay empty.

/// Runs "$@" on a terminal: waits until its start-up file is done, types `$KEYS`, and waits
/// until the key bound to ^X has written the line to `$OUT` (then `$DONE`).
const TERMINAL: &str = r#"
zmodload zsh/zpty || exit 90
zpty shell "$@" || exit 91
drain() { while zpty -r -t shell junk; do :; done }
for i in {1..600}; do [[ -e $READY ]] && break; drain; sleep 0.05; done
[[ -e $READY ]] || exit 92
zpty -w -n shell "$KEYS"
for i in {1..1200}; do [[ -e $DONE ]] && break; drain; sleep 0.05; done
zpty -d shell
[[ -e $DONE ]] || exit 93
"#;

/// The shells whose completion aimem registers (`COMPLETE=<shell> aimem`) and that run here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shell {
    Bash,
    Zsh,
    Fish,
    Elvish,
}

const SHELLS: [Shell; 4] = [Shell::Bash, Shell::Zsh, Shell::Fish, Shell::Elvish];

impl Shell {
    /// Writes the start-up files into `dir` (register aimem's completion, bind ^X to write the
    /// line to $OUT, then create $READY) and returns the command that starts the shell.
    fn set_up(self, dir: &Path) -> Vec<String> {
        let write = |path: PathBuf, text: &str| {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        match self {
            Shell::Bash => {
                let rc = dir.join("bashrc");
                write(
                    rc.clone(),
                    // extglob as bash-completion sets it: more of a word can be a pattern.
                    r#"shopt -s extglob
source <(COMPLETE=bash "$AIMEM")
bind -x '"\C-x": printf "%s" "$READLINE_LINE" > "$OUT"; : > "$DONE"'
: > "$READY"
"#,
                );
                let rc = path_str(&rc).to_string();
                vec![
                    "bash".into(),
                    "--noprofile".into(),
                    "--rcfile".into(),
                    rc,
                    "-i".into(),
                ]
            }
            Shell::Zsh => {
                write(
                    dir.join(".zshrc"),
                    r#"autoload -U compinit && compinit -u -D
source <(COMPLETE=zsh "$AIMEM")
_aimem_dump() { print -rn -- "$BUFFER" > "$OUT"; : > "$DONE" }
zle -N _aimem_dump
bindkey '^X' _aimem_dump
: > "$READY"
"#,
                );
                vec!["zsh".into(), "-d".into(), "-i".into()]
            }
            Shell::Fish => {
                write(
                    dir.join("fish").join("config.fish"),
                    r#"set -g fish_greeting
COMPLETE=fish $AIMEM | source
bind \cx 'commandline > $OUT; true > $DONE'
true > $READY
"#,
                );
                vec!["fish".into(), "-i".into()]
            }
            Shell::Elvish => {
                write(
                    dir.join("elvish").join("rc.elv"),
                    // Elvish may show a sole candidate in its menu: ^X there takes it first.
                    r#"eval (env COMPLETE=elvish $E:AIMEM | slurp)
fn dump { print $edit:current-command > $E:OUT; print > $E:DONE }
set edit:insert:binding[Ctrl-X] = $dump~
set edit:completion:binding[Ctrl-X] = { edit:completion:accept; dump }
print > $E:READY
"#,
                );
                vec!["elvish".into()]
            }
        }
    }

    /// The keys a person presses: the line, TAB, then ^X.
    fn keys(self, typed: &str) -> String {
        format!("{typed}\t\x18")
    }

    /// The arguments `line` passes to `aimem` when this shell runs it in `cwd` (`aimem` is a
    /// function that prints them, each ended by a NUL).
    #[track_caller]
    fn run_line(self, line: &str, cwd: &Path) -> Vec<String> {
        let mut command = match self {
            Shell::Bash => {
                let mut c = Command::new("bash");
                c.args(["--norc", "--noprofile", "-c"])
                    .arg(r#"aimem() { printf '%s\0' "$@"; }; eval "$1""#)
                    .arg("bash");
                c
            }
            Shell::Zsh => {
                let mut c = Command::new("zsh");
                c.args(["-f", "-c"])
                    .arg(r#"aimem() { printf '%s\0' "$@" }; eval "$1""#)
                    .arg("zsh");
                c
            }
            Shell::Fish => {
                let mut c = Command::new("fish");
                c.args(["--no-config", "-c"])
                    .arg(r#"function aimem; printf '%s\0' $argv; end; eval $argv[1]"#);
                c
            }
            Shell::Elvish => {
                let mut c = Command::new("elvish");
                c.args(["-norc", "-c"])
                    .arg(r#"fn aimem {|@a| for x $a { print $x"\x00" } }; eval $args[0]"#);
                c
            }
        };
        let out = command
            .arg(line)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{self:?} must be installed (see .ci/run): {e}"));
        assert!(
            out.status.success(),
            "{self:?} could not run {line:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .split_terminator('\0')
            .map(str::to_string)
            .collect()
    }
}

/// The line `shell` shows after `typed` and a TAB, in `cwd`, with the test's environment.
#[track_caller]
fn tab_in(env: &TestEnv, shell: Shell, typed: &str, cwd: &Path) -> String {
    let dir = tempfile::tempdir().unwrap();
    let start = shell.set_up(dir.path());
    let file = |name: &str| path_str(&dir.path().join(name)).to_string();
    let template = env.command(&[]);
    let mut zsh = Command::new("zsh");
    zsh.env_clear();
    for (key, value) in template.get_envs() {
        if let Some(value) = value {
            zsh.env(key, value);
        }
    }
    zsh.env("AIMEM", env!("CARGO_BIN_EXE_aimem"))
        .env("TERM", "xterm")
        .env("ZDOTDIR", dir.path())
        .env("XDG_CONFIG_HOME", dir.path())
        .env("XDG_DATA_HOME", dir.path().join("data"))
        .env("XDG_STATE_HOME", dir.path().join("state"))
        .env("XDG_CACHE_HOME", dir.path().join("cache"))
        .env("OUT", file("out"))
        .env("DONE", file("done"))
        .env("READY", file("ready"))
        .env("KEYS", shell.keys(typed))
        .current_dir(cwd)
        .args(["-f", "-c", TERMINAL, "zsh"])
        .args(&start)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let run = wait_bounded(zsh.spawn().expect("zsh must be installed (see .ci/run)"));
    assert_eq!(
        run.code, 0,
        "{shell:?} on a terminal failed: {}",
        run.stderr
    );
    let line = std::fs::read_to_string(dir.path().join("out")).unwrap();
    line.strip_suffix('\n').unwrap_or(&line).to_string()
}

/// What `aimem` receives when the line `shell` completed from `typed` is run: the line is run
/// in an empty folder, which must stay empty (nothing in the name ran).
#[track_caller]
fn completed(env: &TestEnv, shell: Shell, typed: &str, cwd: &Path) -> Vec<String> {
    let line = tab_in(env, shell, typed, cwd);
    let scratch = tempfile::tempdir().unwrap();
    let words = shell.run_line(&line, scratch.path());
    let left = std::fs::read_dir(scratch.path()).unwrap().count();
    assert_eq!(
        left, 0,
        "{shell:?}: running the completed line {line:?} ran code"
    );
    words
}

/// What each candidate bash offers is as a word on a command line: each must be exactly one
/// word, and running it must run nothing.
#[track_caller]
fn offered_words(env: &TestEnv, words: &[&str], cwd: &Path) -> Vec<String> {
    let scratch = tempfile::tempdir().unwrap();
    complete_in(env, words, cwd)
        .iter()
        .map(|reply| {
            let got = Shell::Bash.run_line(&format!("aimem {reply}"), scratch.path());
            assert_eq!(got.len(), 1, "{reply:?} is not one word but {got:?}");
            let left = std::fs::read_dir(scratch.path()).unwrap().count();
            assert_eq!(left, 0, "inserting {reply:?} runs code");
            got.into_iter().next().unwrap()
        })
        .collect()
}

#[test]
fn a_backup_folder_holding_shell_syntax_completes_as_that_one_name() {
    let env = TestEnv::new();
    let cwd = env.tmp.path().join("cwd");
    std::fs::create_dir_all(cwd.join("bk$(touch PWNED)")).unwrap();
    for shell in SHELLS {
        assert_eq!(
            completed(&env, shell, "aimem restore bk", &cwd),
            ["restore", "bk$(touch PWNED)/"],
            "{shell:?}"
        );
    }
    assert_eq!(
        offered_words(&env, &["aimem", "restore", "bk"], &cwd),
        ["bk$(touch PWNED)/"]
    );
    assert!(!cwd.join("PWNED").exists(), "completing ran the name");
}

#[test]
fn a_backup_in_the_root_holding_shell_syntax_completes_as_that_one_name() {
    let env = TestEnv::ai_memory();
    let taken = env.backup(&["--collection", "github"]);
    let hostile = env.root().join("$(touch X)");
    std::fs::rename(&taken, &hostile).unwrap();
    let hostile = path_str(&hostile).to_string();

    let typed = format!("aimem restore {}/", path_str(&env.root()));
    for shell in SHELLS {
        let words = completed(&env, shell, &typed, env.tmp.path());
        assert_eq!(words.len(), 2, "{shell:?}: {words:?}");
        assert_eq!(words[0], "restore", "{shell:?}");
        assert_eq!(words[1].trim_end_matches('/'), hostile, "{shell:?}");
    }
    // All the root offers, each as the one word it is.
    let mut offered = offered_words(&env, &["aimem", "restore", ""], env.tmp.path());
    offered.retain(|o| !o.starts_with('-'));
    assert_eq!(offered, ["latest", hostile.as_str()]);
    assert!(
        !env.tmp.path().join("X").exists(),
        "completing ran the name"
    );
}

#[test]
fn a_collection_on_the_server_holding_shell_syntax_completes_as_that_one_name() {
    let env = TestEnv::new();
    // Names Qdrant and aimem accept, with about everything a shell reads as syntax.
    let names = ["a$(touch X)", "q it's {a,b} [c]!~#&;`touch X`$HOME=%^ é漢"];
    for name in names {
        env.double
            .seed_from_fixture(name, "collections/info-github.json", 3);
    }
    for shell in SHELLS {
        // What a TAB inserted before (a common start, quoted) narrows as what it means.
        let quoted = match shell {
            Shell::Elvish => "'q it''s {a",
            _ => r"q\ it\'s\ \{a",
        };
        assert_eq!(
            completed(
                &env,
                shell,
                &format!("aimem backup --collection {quoted}"),
                env.tmp.path()
            ),
            ["backup", "--collection", names[1]],
            "{shell:?}"
        );
        for name in names {
            let typed = format!("aimem backup --collection {}", &name[..1]);
            assert_eq!(
                completed(&env, shell, &typed, env.tmp.path()),
                ["backup", "--collection", name],
                "{shell:?}"
            );
        }
    }
    assert_eq!(
        offered_words(
            &env,
            &["aimem", "backup", "--collection", ""],
            env.tmp.path()
        ),
        names
    );
    assert!(
        !env.tmp.path().join("X").exists(),
        "completing ran the name"
    );
}

#[test]
fn names_with_control_or_direction_characters_are_left_out() {
    let env = TestEnv::new();
    let cwd = env.tmp.path().join("cwd");
    // Each hostile name beside a safe one with the same start: the safe one is the only
    // candidate, so a TAB completes it.
    for folder in [
        "vt\u{b}split",
        "vtok",
        "nl\ntouch PWNED #",
        "nlok",
        "bidi\u{202e}gpj.exe",
        "bidiok",
        "iso\u{2066}x\u{2069}",
        "isook",
    ] {
        std::fs::create_dir_all(cwd.join(folder)).unwrap();
    }
    for name in ["evil\u{202e}txt", "eok", "zw\u{200b}x", "zwok"] {
        env.double
            .seed_from_fixture(name, "collections/info-github.json", 3);
    }
    for shell in SHELLS {
        for stem in ["vt", "nl", "bidi", "iso"] {
            assert_eq!(
                completed(&env, shell, &format!("aimem restore {stem}"), &cwd),
                ["restore", &format!("{stem}ok/")],
                "{shell:?}"
            );
        }
        for (stem, safe) in [("e", "eok"), ("zw", "zwok")] {
            assert_eq!(
                completed(
                    &env,
                    shell,
                    &format!("aimem backup --collection {stem}"),
                    &cwd
                ),
                ["backup", "--collection", safe],
                "{shell:?}"
            );
        }
    }
    assert!(!cwd.join("PWNED").exists(), "completing ran the name");
}
