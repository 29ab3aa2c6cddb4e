//! Shared test helpers: a fresh environment per test and a runner for the real binary.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use qdrant_double::{Config, Double};
use serde_json::Value;
use tempfile::TempDir;

/// The key the double expects in tests that use one.
pub const KEY: &str = "test-admin-key-0123456789";

/// A test's world: a Qdrant double, a temporary HOME, backup root and install dir.
pub struct TestEnv {
    pub double: Double,
    pub tmp: TempDir,
}

/// What a run of `aimem` did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Both streams, for "never printed" checks.
    pub fn all_output(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Run {
        assert_eq!(
            self.code, code,
            "exit code; stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn assert_stderr_contains(&self, text: &str) -> &Run {
        assert!(
            self.stderr.contains(text),
            "stderr lacks {text:?}:\n{}",
            self.stderr
        );
        self
    }
}

impl TestEnv {
    /// A double with an API key, nothing seeded.
    pub fn new() -> TestEnv {
        TestEnv::with_config(Config {
            api_key: Some(KEY.to_string()),
            ..Config::default()
        })
    }

    /// A double started with `config` (give it [`KEY`]), nothing seeded.
    pub fn with_config(config: Config) -> TestEnv {
        let double = Double::start(config);
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(tmp.path().join("home")).expect("home");
        std::fs::create_dir_all(tmp.path().join("install")).expect("install");
        TestEnv { double, tmp }
    }

    /// With the five AI Memory collections seeded from the fixtures (30 points each).
    pub fn ai_memory() -> TestEnv {
        let env = TestEnv::new();
        env.double.seed_ai_memory();
        env
    }

    pub fn root(&self) -> PathBuf {
        self.tmp.path().join("backups")
    }

    pub fn install(&self) -> PathBuf {
        self.tmp.path().join("install")
    }

    /// `aimem` with a clean environment pointing at the double.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_aimem"));
        command.args(args).env_clear();
        if let Some(path) = std::env::var_os("PATH") {
            command.env("PATH", path);
        }
        command
            .env("HOME", self.tmp.path().join("home"))
            .env("NO_COLOR", "1")
            .env("QDRANT_URL", self.double.url())
            .env("QDRANT_API_KEY", KEY)
            .env("AI_MEMORY_BACKUP_DIR", self.root())
            .env("AI_MEMORY_INSTALL_DIR", self.install())
            .stdin(Stdio::null());
        command
    }

    /// Runs `aimem` to completion.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, |_| {})
    }

    /// Runs `aimem` after `tweak` adjusts the command (extra env, removed vars…).
    pub fn run_with(&self, args: &[&str], tweak: impl FnOnce(&mut Command)) -> Run {
        let mut command = self.command(args);
        tweak(&mut command);
        to_run(command.output().expect("run aimem"))
    }

    /// Every entry of the backup root (including hidden staging folders).
    pub fn root_entries(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.root()) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// The only backup folder under the root; panics if there is not exactly one entry.
    #[track_caller]
    pub fn only_backup(&self) -> PathBuf {
        let entries = self.root_entries();
        assert_eq!(
            entries.len(),
            1,
            "expected exactly one backup, found {entries:?}"
        );
        self.root().join(&entries[0])
    }

    /// Runs a backup that must succeed and returns its folder.
    #[track_caller]
    pub fn backup(&self, args: &[&str]) -> PathBuf {
        let mut all = vec!["backup"];
        all.extend_from_slice(args);
        let run = self.run(&all);
        run.assert_code(0);
        PathBuf::from(run.stdout.trim())
    }

    /// Total snapshots left in the double's snapshot folders.
    pub fn server_snapshots(&self) -> usize {
        self.double
            .collection_names()
            .iter()
            .map(|c| self.double.snapshot_names(c).len())
            .sum()
    }
}

pub fn to_run(output: Output) -> Run {
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Parses `manifest.json` of a backup.
pub fn manifest(backup: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(backup.join("manifest.json")).expect("manifest"))
        .expect("json")
}

/// The `result` of a fixture exchange.
pub fn fixture_result(relative: &str) -> Value {
    let text =
        std::fs::read_to_string(qdrant_double::fixtures_dir().join(relative)).expect("fixture");
    let exchange: Value = serde_json::from_str(&text).expect("fixture json");
    exchange["response"]["body"]["result"].clone()
}

/// Runs `sha256sum -c CHECKSUMS.sha256` in the backup folder.
pub fn sha256sum_check(backup: &Path) -> Run {
    to_run(
        Command::new("sha256sum")
            .args(["-c", "--strict", "CHECKSUMS.sha256"])
            .current_dir(backup)
            .output()
            .expect("sha256sum"),
    )
}

/// Unix permission bits of a path.
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

/// Copies a backup folder (recursively) to `dest`.
pub fn copy_dir(src: &Path, dest: &Path) {
    std::fs::create_dir_all(dest).expect("mkdir");
    for entry in std::fs::read_dir(src).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = dest.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// Rewrites `CHECKSUMS.sha256` of a backup so it matches the files listed in it now (after a
/// test edited one on purpose, so only the damage under test remains).
pub fn rewrite_checksums(backup: &Path) {
    let text = std::fs::read_to_string(backup.join("CHECKSUMS.sha256")).expect("checksums");
    let mut out = String::new();
    for line in text.lines() {
        let path = &line[66..];
        let digest = sha256_hex(&backup.join(path));
        out.push_str(&format!("{digest}  {path}\n"));
    }
    std::fs::write(backup.join("CHECKSUMS.sha256"), out).expect("write checksums");
}

/// Lowercase hex SHA-256 of a file.
pub fn sha256_hex(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)[..64].to_string()
}

/// Edits `manifest.json` of a backup as JSON, then refreshes its checksum line.
pub fn edit_manifest(backup: &Path, edit: impl FnOnce(&mut Value)) {
    let mut value = manifest(backup);
    edit(&mut value);
    std::fs::write(
        backup.join("manifest.json"),
        serde_json::to_string_pretty(&value).expect("json"),
    )
    .expect("write manifest");
    rewrite_checksums(backup);
}

/// Parses a run's stdout as the one JSON document `--json` promises.
#[track_caller]
pub fn json_stdout(run: &Run) -> Value {
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{}", run.stdout))
}

/// Waits (up to 30 s) until the double has received a `method` request whose path satisfies
/// `path`: the moment a test acts on a running aimem.
#[track_caller]
pub fn wait_for_request(double: &Double, method: &str, path: impl Fn(&str) -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !double
        .requests()
        .iter()
        .any(|r| r.method == method && path(&r.path))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no {method} request of the expected kind arrived"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// `aimem ARGS` run by util-linux `script` on a pseudo-terminal, in the same clean environment
/// `env.command` gives aimem.
pub fn terminal_command(env: &TestEnv, args: &[&str]) -> Command {
    let aimem = env!("CARGO_BIN_EXE_aimem");
    let line = std::iter::once(format!("'{aimem}'"))
        .chain(args.iter().map(|a| format!("'{a}'")))
        .collect::<Vec<_>>()
        .join(" ");
    let template = env.command(&[]);
    let envs: Vec<_> = template
        .get_envs()
        .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.to_owned())))
        .collect();
    let mut command = Command::new("script");
    command
        .args(["-qec", &line, "/dev/null"])
        .env_clear()
        .envs(envs);
    command
}

/// Runs `aimem ARGS` on a pseudo-terminal (util-linux `script`) and types `keys` once `prompt`
/// shows; the run's stdout is everything the terminal showed.
pub fn run_on_a_terminal(env: &TestEnv, args: &[&str], prompt: &str, keys: &str) -> Run {
    converse_on_a_terminal(env, args, &[(prompt, keys)])
}

/// Runs `aimem ARGS` on a pseudo-terminal and, for each `(prompt, keys)` in turn, waits until
/// `prompt` shows (after what the previous step waited for) and types `keys`. A prompt reads
/// only what is typed once it shows (a password prompt drops what was typed before it).
pub fn converse_on_a_terminal(env: &TestEnv, args: &[&str], steps: &[(&str, &str)]) -> Run {
    use std::io::Write;
    let mut child = terminal_command(env, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("util-linux `script` runs aimem on a terminal");
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = {
        let seen = std::sync::Arc::clone(&seen);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = std::io::Read::read(&mut stdout, &mut buf) {
                if n == 0 {
                    break;
                }
                seen.lock().expect("lock").extend_from_slice(&buf[..n]);
            }
        })
    };
    // Keep the terminal open until aimem exits.
    let mut stdin = child.stdin.take().expect("stdin");
    let mut from = 0;
    for (prompt, keys) in steps {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let shown = String::from_utf8_lossy(&seen.lock().expect("lock")).into_owned();
            if let Some(at) = shown.get(from..).and_then(|rest| rest.find(prompt)) {
                from += at + prompt.len();
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the prompt {prompt:?} never came: {shown}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        // The prompt is drawn before it reads: give it a moment to start reading.
        std::thread::sleep(std::time::Duration::from_millis(100));
        stdin.write_all(keys.as_bytes()).expect("type");
        stdin.flush().expect("flush");
    }
    let output = child.wait_with_output().expect("wait");
    drop(stdin);
    reader.join().expect("reader");
    let mut run = to_run(output);
    run.stdout = String::from_utf8_lossy(&seen.lock().expect("lock")).into_owned();
    run
}

/// Makes the upload fail after clearing and the rollback's own upload fail too, so the
/// pre-restore snapshot is kept and its path printed (exit 5).
pub fn fail_restore_and_rollback(env: &TestEnv) {
    use qdrant_double::{Fault, FaultKind};
    env.double.inject(Fault::new(
        Some("POST"),
        "/snapshots/upload",
        FaultKind::UploadFailAfterClear,
    ));
    env.double.inject(Fault::new(
        Some("POST"),
        "/snapshots/upload",
        FaultKind::Status {
            code: 500,
            message: "Service internal error: disk full".into(),
        },
    ));
}

/// Makes the upload's connection drop while Qdrant goes on recovering, on a server without
/// `/metrics`: aimem cannot tell when the recovery ends (exit 5).
pub fn lose_the_upload_without_metrics(env: &TestEnv) {
    use qdrant_double::{Fault, FaultKind, LateAnswer};
    use std::time::Duration;
    env.double.inject(Fault::always(
        Some("GET"),
        "/metrics",
        FaultKind::PlainStatus {
            code: 404,
            body: "Not Found".into(),
        },
    ));
    env.double.inject(Fault::new(
        Some("POST"),
        "/snapshots/upload",
        FaultKind::SlowRecovery {
            takes: Duration::from_millis(200),
            answer: LateAnswer::Drop,
        },
    ));
}

/// A double's configuration with [`KEY`] required.
pub fn keyed_config() -> Config {
    Config {
        api_key: Some(KEY.to_string()),
        ..Config::default()
    }
}

/// A temporary HOME, backup root and install dir shared by the runs of one test, for `aimem`
/// pointed at any server (a peer of a cluster double, a single double), with [`KEY`].
pub struct World {
    tmp: TempDir,
}

impl World {
    pub fn new() -> World {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(tmp.path().join("home")).expect("home");
        std::fs::create_dir_all(tmp.path().join("install")).expect("install");
        World { tmp }
    }

    pub fn root(&self) -> PathBuf {
        self.tmp.path().join("backups")
    }

    /// `aimem args` pointed at `url`, with only this world's environment.
    pub fn command(&self, url: &str, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_aimem"));
        command.args(args).env_clear();
        if let Some(path) = std::env::var_os("PATH") {
            command.env("PATH", path);
        }
        command
            .env("HOME", self.tmp.path().join("home"))
            .env("NO_COLOR", "1")
            .env("QDRANT_URL", url)
            .env("QDRANT_API_KEY", KEY)
            .env("AI_MEMORY_BACKUP_DIR", self.root())
            .env("AI_MEMORY_INSTALL_DIR", self.tmp.path().join("install"))
            .stdin(Stdio::null());
        command
    }

    /// Runs [`World::command`] after `tweak`.
    pub fn run_with(&self, url: &str, args: &[&str], tweak: impl FnOnce(&mut Command)) -> Run {
        let mut command = self.command(url, args);
        tweak(&mut command);
        to_run(command.output().expect("run aimem"))
    }

    pub fn run(&self, url: &str, args: &[&str]) -> Run {
        self.run_with(url, args, |_| {})
    }

    /// The pre-restore folders left in the backup root.
    pub fn prerestore_left(&self) -> Vec<String> {
        std::fs::read_dir(self.root())
            .expect("root")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with(".aimem-prerestore"))
            .collect()
    }

    /// Backs up `collection` from `url`; the backup folder.
    pub fn backup(&self, url: &str, collection: &str) -> String {
        self.backup_with(url, &["--collection", collection])
    }

    /// Backs up from `url` with `args`; the backup folder.
    pub fn backup_with(&self, url: &str, args: &[&str]) -> String {
        let mut all = vec!["backup"];
        all.extend_from_slice(args);
        let run = self.run(url, &all);
        run.assert_code(0);
        let folder = run.stdout.trim().to_string();
        assert!(Path::new(&folder).is_dir(), "{run:?}");
        folder
    }
}
