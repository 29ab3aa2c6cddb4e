//! Runs that overlap or die: two backups into one root, two restores of one collection, a
//! backup killed with `kill -9`, and config links pointing out of the install dir.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use qdrant_double::{Fault, FaultKind};

use super::support::{TestEnv, json_stdout, mode, to_run, wait_for_request};

/// Staging folders in the backup root.
fn staging_folders(env: &TestEnv) -> Vec<String> {
    env.root_entries()
        .into_iter()
        .filter(|e| e.starts_with(".aimem-staging-"))
        .collect()
}

fn spawn(env: &TestEnv, args: &[&str]) -> Child {
    env.command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn aimem")
}

/// Waits until the wall clock is early in a second, so two runs started now start in the same
/// second (and pick the same folder name and, without serialisation, the same snapshot name).
fn early_in_a_second() {
    loop {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .subsec_nanos();
        if nanos < 100_000_000 {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn two_backups_into_one_root_at_once_both_succeed_with_their_own_folders() {
    let env = TestEnv::ai_memory();
    // Every download takes a while, so the two runs overlap from start to end.
    env.double.inject(Fault::always(
        Some("GET"),
        "/snapshots/",
        FaultKind::Delay(Duration::from_millis(600)),
    ));
    let args = [
        "backup",
        "--collection",
        "conventions",
        "--collection",
        "github",
    ];
    early_in_a_second();
    let first = spawn(&env, &args);
    let second = spawn(&env, &args);
    let first = to_run(first.wait_with_output().expect("wait"));
    let second = to_run(second.wait_with_output().expect("wait"));
    first.assert_code(0);
    second.assert_code(0);
    let (a, b) = (first.stdout.trim(), second.stdout.trim());
    assert_ne!(a, b, "each run has its own folder");
    for dir in [a, b] {
        env.run(&["verify", dir]).assert_code(0);
    }
    assert!(staging_folders(&env).is_empty(), "{:?}", env.root_entries());
    assert_eq!(env.server_snapshots(), 0, "every snapshot was deleted");
}

/// Starts a backup of `conventions` whose snapshot download stalls, waits until it is under
/// way, and kills it with SIGKILL: no cleanup can run.
fn killed_backup(env: &TestEnv) {
    env.double.inject(Fault::new(
        Some("GET"),
        "/collections/conventions/snapshots/",
        FaultKind::StallBody {
            after_bytes: 100,
            stall: Duration::from_secs(60),
        },
    ));
    let mut child = spawn(
        env,
        &["backup", "--no-stream", "--collection", "conventions"],
    );
    wait_for_request(&env.double, "GET", |p| {
        p.starts_with("/collections/conventions/snapshots/")
    });
    std::process::Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status()
        .expect("kill");
    child.wait().expect("wait");
    env.double.clear_faults();
}

#[test]
fn a_backup_killed_mid_download_is_reported_and_its_snapshot_deleted_by_the_next_backup() {
    let env = TestEnv::ai_memory();
    killed_backup(&env);
    let left = env.double.snapshot_names("conventions");
    assert_eq!(left.len(), 1, "the killed run's snapshot is on the server");
    assert_eq!(staging_folders(&env).len(), 1);

    // `list` (offline) names the leftover and where it is.
    let list = env.run(&["list"]);
    list.assert_code(0).assert_stderr_contains(&left[0]);
    let json = json_stdout(&env.run(&["list", "--json"]));
    let leftovers = json["leftovers"].as_array().expect("leftovers listed");
    assert_eq!(leftovers.len(), 1);
    assert_eq!(
        leftovers[0]["snapshots"][0],
        format!("conventions/{}", left[0])
    );

    // `prune` works offline: it reports the leftover and keeps its record.
    env.run(&["prune", "--keep-last", "5"])
        .assert_code(0)
        .assert_stderr_contains(&left[0]);
    assert_eq!(staging_folders(&env).len(), 1);

    // The next backup deletes it from the server and removes the staging folder.
    let run = env.run(&["backup", "--no-stream", "--collection", "github"]);
    run.assert_code(0).assert_stderr_contains(&left[0]);
    assert!(
        env.double.snapshot_names("conventions").is_empty(),
        "the leftover snapshot is still on the server"
    );
    assert!(staging_folders(&env).is_empty(), "{:?}", env.root_entries());
    assert_eq!(env.server_snapshots(), 0);
}

/// Someone's own snapshot of `collection`, taken by hand through the API.
fn hand_made_snapshot(env: &TestEnv, collection: &str) -> String {
    let url = format!(
        "{}/collections/{collection}/snapshots?wait=true",
        env.double.url()
    );
    let mut answer = ureq::post(&url)
        .header("api-key", super::support::KEY)
        .send_empty()
        .expect("snapshot");
    let text = answer.body_mut().read_to_string().expect("body");
    let body: serde_json::Value = serde_json::from_str(&text).expect("json");
    body["result"]["name"].as_str().expect("name").to_string()
}

/// A backup killed before the server answered its snapshot creation never learnt the
/// snapshot's name: whatever is named in that request's time window may be its snapshot, or
/// someone else's. aimem deletes only what it can prove is its own, so both are kept, reported
/// (by the next backup and by `list`), and the record goes once they are gone.
#[test]
fn a_snapshot_a_killed_backup_never_heard_of_is_kept_and_reported_not_deleted() {
    let env = TestEnv::ai_memory();
    // The creation answers late: the run is killed before it learns the snapshot's name.
    env.double.inject(Fault::new(
        Some("POST"),
        "/collections/conventions/snapshots",
        FaultKind::Delay(Duration::from_secs(2)),
    ));
    let mut child = spawn(
        &env,
        &["backup", "--no-stream", "--collection", "conventions"],
    );
    wait_for_request(&env.double, "POST", |p| {
        p.starts_with("/collections/conventions/snapshots")
    });
    std::process::Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status()
        .expect("kill");
    child.wait().expect("wait");
    // The server finishes the snapshot the dead run asked for...
    let deadline = Instant::now() + Duration::from_secs(30);
    while env.double.snapshot_names("conventions").is_empty() {
        assert!(Instant::now() < deadline, "the snapshot never appeared");
        std::thread::sleep(Duration::from_millis(50));
    }
    let theirs = env.double.snapshot_names("conventions")[0].clone();
    // ...and someone takes a snapshot of the same collection by hand (names have one-second
    // resolution: in the next second).
    std::thread::sleep(Duration::from_millis(1100));
    let mine = hand_made_snapshot(&env, "conventions");

    let run = env.run(&["backup", "--no-stream", "--collection", "github"]);
    run.assert_code(0)
        .assert_stderr_contains(&mine)
        .assert_stderr_contains(&theirs)
        .assert_stderr_contains("deletes only what it can prove");
    let mut left = env.double.snapshot_names("conventions");
    left.sort();
    let mut expected = vec![theirs, mine.clone()];
    expected.sort();
    assert_eq!(left, expected, "nothing was deleted on a guess");
    assert_eq!(staging_folders(&env).len(), 1, "the record is kept");
    env.run(&["list"])
        .assert_code(0)
        .assert_stderr_contains("never came back");

    // Once the candidates are gone (deleted by their owner), the next run drops the record.
    for name in &left {
        let url = format!(
            "{}/collections/conventions/snapshots/{name}",
            env.double.url()
        );
        ureq::delete(&url)
            .header("api-key", super::support::KEY)
            .call()
            .expect("delete");
    }
    env.run(&["backup", "--no-stream", "--collection", "github"])
        .assert_code(0);
    assert!(staging_folders(&env).is_empty(), "{:?}", env.root_entries());
}

/// A private lock folder for the test's restores (aimem's `$XDG_RUNTIME_DIR/aimem`).
fn runtime_dir(env: &TestEnv) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = env.tmp.path().join("run");
    std::fs::create_dir_all(&dir).expect("run dir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    dir
}

/// Starts a restore of `backup` whose upload the server answers only after `delay`, and waits
/// until the upload has begun: the restore is then in the middle of changing the collection.
fn restore_under_way(env: &TestEnv, backup: &std::path::Path, delay: Duration) -> Child {
    env.double.inject(Fault::new(
        Some("POST"),
        "/snapshots/upload",
        FaultKind::Delay(delay),
    ));
    let child = env
        .command(&["restore", backup.to_str().expect("utf-8"), "--force"])
        .env("XDG_RUNTIME_DIR", runtime_dir(env))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn aimem");
    wait_for_request(&env.double, "POST", |p| p.ends_with("/snapshots/upload"));
    child
}

fn restore_now(env: &TestEnv, backup: &std::path::Path) -> super::support::Run {
    let runtime = runtime_dir(env);
    env.run_with(
        &["restore", backup.to_str().expect("utf-8"), "--force"],
        |c| {
            c.env("XDG_RUNTIME_DIR", runtime);
        },
    )
}

/// The double's URL spelled with `localhost` instead of `127.0.0.1`: the same server.
fn other_spelling(env: &TestEnv) -> String {
    env.double.url().replace("127.0.0.1", "localhost")
}

/// Locks belong to the server, not to the spelling of its URL.
#[test]
fn a_restore_through_another_spelling_of_the_servers_url_is_refused_too() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--collection", "conventions"]);
    let first = restore_under_way(&env, &backup, Duration::from_secs(3));
    let runtime = runtime_dir(&env);
    let second = env.run_with(
        &["restore", backup.to_str().expect("utf-8"), "--force"],
        |c| {
            c.env("XDG_RUNTIME_DIR", runtime)
                .env("QDRANT_URL", other_spelling(&env));
        },
    );
    second
        .assert_code(2)
        .assert_stderr_contains("already running")
        .assert_stderr_contains(&format!("pid {}", first.id()));
    to_run(first.wait_with_output().expect("wait")).assert_code(0);
}

/// Two backups of one collection through two spellings of the server's URL, started in the same
/// second: without a shared lock both would get one snapshot name, and one would delete the
/// other's snapshot.
#[test]
fn two_backups_through_two_spellings_of_one_url_never_share_a_snapshot_name() {
    let env = TestEnv::ai_memory();
    env.double.inject(Fault::always(
        Some("GET"),
        "/snapshots/",
        FaultKind::Delay(Duration::from_millis(300)),
    ));
    let args = ["backup", "--no-stream", "--collection", "conventions"];
    early_in_a_second();
    let first = spawn(&env, &args);
    let second = env
        .command(&args)
        .env("QDRANT_URL", other_spelling(&env))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn aimem");
    let first = to_run(first.wait_with_output().expect("wait"));
    let second = to_run(second.wait_with_output().expect("wait"));
    first.assert_code(0);
    second.assert_code(0);
    for run in [&first, &second] {
        // One run deleting the other's snapshot shows as a failed deletion (404).
        assert!(!run.stderr.contains("could not delete"), "{}", run.stderr);
    }
    for dir in [first.stdout.trim(), second.stdout.trim()] {
        env.run(&["verify", dir]).assert_code(0);
    }
    // Both asked the server for a snapshot of their own.
    let creations = env
        .double
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/collections/conventions/snapshots")
        .count();
    assert_eq!(creations, 2);
    assert_eq!(env.server_snapshots(), 0, "every snapshot was deleted");
}

/// The server does not say who it is: `GET /telemetry` is refused (a key without the right, an
/// old or stripped-down server), so aimem knows it by its URL and addresses only.
fn without_process_id(env: &TestEnv) {
    env.double.inject(Fault::always(
        Some("GET"),
        "/telemetry",
        FaultKind::Status {
            code: 403,
            message: "Forbidden: telemetry is not for this key".into(),
        },
    ));
}

/// Sends `signal` (`STOP`, `CONT`) to a run: a stopped run keeps its locks for as long as the
/// test needs, however slowly the other run gets to them.
fn signal(child: &Child, signal: &str) {
    let sent = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success(), "kill -{signal}");
}

/// Reads a run's stderr until it says it waits for its turn (true) or ends without saying so
/// (false). The rest of its stderr is read on by the returned thread, which returns all of it.
fn waits_for_its_turn(child: &mut Child) -> (bool, std::thread::JoinHandle<String>) {
    use std::io::BufRead;
    let stderr = child.stderr.take().expect("stderr piped");
    let (lines, inbox) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in std::io::BufReader::new(stderr).lines() {
            let line = line.unwrap_or_default();
            all.push_str(&line);
            all.push('\n');
            lines.send(line).ok();
        }
        all
    });
    let waited = inbox
        .iter()
        .any(|line| line.contains("waiting for its turn"));
    (waited, reader)
}

/// Two spellings of the server's URL, and the server does not tell its process id: the
/// restores still share a lock, at the address both spellings resolve to.
#[test]
fn a_restore_through_another_spelling_is_refused_even_when_the_server_does_not_say_who_it_is() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--collection", "conventions"]);
    without_process_id(&env);
    let first = restore_under_way(&env, &backup, Duration::from_secs(2));
    signal(&first, "STOP");
    let runtime = runtime_dir(&env);
    let second = env.run_with(
        &["restore", backup.to_str().expect("utf-8"), "--force"],
        |c| {
            c.env("XDG_RUNTIME_DIR", runtime)
                .env("QDRANT_URL", other_spelling(&env));
        },
    );
    signal(&first, "CONT");
    let first_pid = first.id();
    to_run(first.wait_with_output().expect("wait")).assert_code(0);
    second
        .assert_code(2)
        .assert_stderr_contains("already running")
        .assert_stderr_contains(&format!("pid {first_pid}"));
}

/// Two backups of one collection through two spellings of the server's URL, which does not
/// tell its process id: the second waits while the first creates its snapshot.
#[test]
fn backups_through_two_spellings_take_turns_even_when_the_server_does_not_say_who_it_is() {
    let env = TestEnv::ai_memory();
    without_process_id(&env);
    // The first run's creation answers late, so it is under way when the run is stopped.
    env.double.inject(Fault::new(
        Some("POST"),
        "/collections/conventions/snapshots",
        FaultKind::Delay(Duration::from_secs(1)),
    ));
    let args = ["backup", "--no-stream", "--collection", "conventions"];
    let runtime = runtime_dir(&env);
    let first = env
        .command(&args)
        .env("XDG_RUNTIME_DIR", &runtime)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn aimem");
    wait_for_request(&env.double, "POST", |p| {
        p == "/collections/conventions/snapshots"
    });
    signal(&first, "STOP");
    let mut second = env
        .command(&args)
        .env("XDG_RUNTIME_DIR", &runtime)
        .env("QDRANT_URL", other_spelling(&env))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn aimem");
    let (waited, stderr) = waits_for_its_turn(&mut second);
    signal(&first, "CONT");
    let first = to_run(first.wait_with_output().expect("wait"));
    let mut second = to_run(second.wait_with_output().expect("wait"));
    second.stderr = stderr.join().expect("stderr");
    assert!(waited, "the second run did not wait:\n{}", second.stderr);
    first.assert_code(0);
    second.assert_code(0);
    assert_eq!(env.server_snapshots(), 0, "every snapshot was deleted");
}

#[test]
fn a_second_restore_of_a_collection_being_restored_is_refused_naming_the_first() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--collection", "conventions"]);
    let first = restore_under_way(&env, &backup, Duration::from_secs(3));
    let uploads_before = env
        .double
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/snapshots/upload"))
        .count();
    let second = restore_now(&env, &backup);
    second
        .assert_code(2)
        .assert_stderr_contains("already running")
        .assert_stderr_contains(&format!("pid {}", first.id()));
    let uploads_after = env
        .double
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/snapshots/upload"))
        .count();
    assert_eq!(
        uploads_before, uploads_after,
        "the second restore changed nothing"
    );
    to_run(first.wait_with_output().expect("wait")).assert_code(0);
    // Once the first is done, a restore runs normally, without talk of a dead holder.
    let third = restore_now(&env, &backup);
    third.assert_code(0);
    assert!(
        !third.stderr.contains("taking its lock over"),
        "{}",
        third.stderr
    );
}

#[test]
fn the_lock_of_a_killed_restore_is_taken_over_with_a_message() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--collection", "conventions"]);
    let mut first = restore_under_way(&env, &backup, Duration::from_secs(2));
    let pid = first.id();
    std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .expect("kill");
    first.wait().expect("wait");
    // Let the server finish what the dead restore started.
    std::thread::sleep(Duration::from_secs(3));
    let second = restore_now(&env, &backup);
    second
        .assert_code(0)
        .assert_stderr_contains("taking its lock over")
        .assert_stderr_contains(&format!("pid {pid}"));
}

/// A backup of `github` with `files` (path under the install dir, content) as its config.
fn backup_with_config(env: &TestEnv, files: &[(&str, &str)]) -> std::path::PathBuf {
    for (path, content) in files {
        let path = env.install().join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, content).expect("write");
    }
    env.backup(&["--collection", "github"])
}

fn restore_config(env: &TestEnv, backup: &std::path::Path) -> super::support::Run {
    env.run(&[
        "restore",
        backup.to_str().expect("utf-8"),
        "--force",
        "--restore-config",
    ])
}

#[test]
fn a_dangling_link_never_makes_restore_config_create_folders_outside_the_install_dir() {
    let env = TestEnv::ai_memory();
    let backup = backup_with_config(&env, &[("docker/.env", "B=2\n")]);
    // `docker` becomes a link to a folder that does not exist, outside the install dir.
    let outside = env.tmp.path().join("outside");
    std::fs::remove_dir_all(env.install().join("docker")).expect("rm");
    std::os::unix::fs::symlink(outside.join("made/here"), env.install().join("docker"))
        .expect("symlink");
    let run = restore_config(&env, &backup);
    run.assert_code(0)
        .assert_stderr_contains("outside the install dir")
        .assert_stderr_contains(&outside.join("made/here").display().to_string());
    assert!(
        !outside.exists(),
        "aimem created folders outside the install dir"
    );
}

#[test]
fn a_config_link_to_a_file_outside_the_install_dir_is_neither_written_nor_chmod_ed() {
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::ai_memory();
    let backup = backup_with_config(&env, &[(".env", "A=1\n")]);
    let victim = env.tmp.path().join("victim.conf");
    std::fs::write(&victim, "precious\n").expect("write");
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    std::fs::remove_file(env.install().join(".env")).expect("rm");
    std::os::unix::fs::symlink(&victim, env.install().join(".env")).expect("symlink");
    let run = restore_config(&env, &backup);
    run.assert_code(0)
        .assert_stderr_contains("outside the install dir")
        .assert_stderr_contains(&victim.display().to_string());
    assert_eq!(
        std::fs::read_to_string(&victim).expect("read"),
        "precious\n"
    );
    assert_eq!(mode(&victim), 0o600, "the mode of a file outside changed");
}

#[test]
fn restore_config_keeps_a_stricter_mode_than_its_own_with_a_warning() {
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::ai_memory();
    let backup = backup_with_config(&env, &[(".env", "A=1\n")]);
    let env_file = env.install().join(".env");
    std::fs::write(&env_file, "A=changed\n").expect("write");
    std::fs::set_permissions(&env_file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let run = restore_config(&env, &backup);
    run.assert_code(0).assert_stderr_contains("stricter");
    assert_eq!(std::fs::read_to_string(&env_file).expect("read"), "A=1\n");
    assert_eq!(mode(&env_file), 0o600, "the file was loosened");
}

#[test]
fn folders_restore_config_creates_for_a_secret_are_private() {
    let env = TestEnv::ai_memory();
    let backup = backup_with_config(&env, &[("docker/.env.secrets", "S=1\n")]);
    std::fs::remove_dir_all(env.install().join("docker")).expect("rm");
    restore_config(&env, &backup).assert_code(0);
    assert_eq!(mode(&env.install().join("docker/.env.secrets")), 0o600);
    assert_eq!(mode(&env.install().join("docker")), 0o700);
}

/// A backup alone never waits for itself: its own snapshot turn passes to its next collection.
#[test]
fn a_lone_backup_of_several_collections_never_waits_for_its_own_turn() {
    let env = TestEnv::ai_memory();
    let run = env.run(&["backup"]);
    run.assert_code(0);
    assert!(
        !run.stderr.contains("waiting for its turn"),
        "{}",
        run.stderr
    );
}

/// A snapshot the server would not delete after a successful backup is recorded for the next
/// backup, which deletes it: none stays on the server unrecorded.
#[test]
fn a_snapshot_the_server_would_not_delete_is_deleted_by_the_next_backup() {
    let env = TestEnv::ai_memory();
    env.double.inject(Fault::always(
        Some("DELETE"),
        "/snapshots/",
        FaultKind::Status {
            code: 500,
            message: "Service internal error: busy".into(),
        },
    ));
    let run = env.run(&["backup", "--no-stream", "--collection", "github"]);
    run.assert_code(0);
    assert!(
        run.stderr.contains("stayed on the server"),
        "{}",
        run.stderr
    );
    assert_eq!(env.server_snapshots(), 1);
    env.double.clear_faults();
    let run = env.run(&["backup", "--no-stream", "--collection", "github"]);
    run.assert_code(0);
    assert_eq!(env.server_snapshots(), 0, "{}", run.stderr);
    let staging: Vec<String> = env
        .root_entries()
        .into_iter()
        .filter(|n| n.starts_with(".aimem-staging-"))
        .collect();
    assert!(staging.is_empty(), "{staging:?}");
}

/// A restore's pre-restore snapshot of a collection and a backup's snapshot of it take turns:
/// made in one second, both would get one name.
#[test]
fn a_backup_waits_while_a_restore_takes_its_pre_restore_snapshot_of_the_same_collection() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--no-stream", "--collection", "conventions"]);
    env.double.clear_requests();
    // The pre-restore snapshot answers late, so it is under way when the restore is stopped.
    env.double.inject(Fault::new(
        Some("POST"),
        "/collections/conventions/snapshots",
        FaultKind::Delay(Duration::from_secs(1)),
    ));
    let runtime = runtime_dir(&env);
    let restore = env
        .command(&["restore", backup.to_str().expect("utf-8"), "--force"])
        .env("XDG_RUNTIME_DIR", &runtime)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn aimem");
    wait_for_request(&env.double, "POST", |p| {
        p == "/collections/conventions/snapshots"
    });
    signal(&restore, "STOP");
    let mut backing_up = env
        .command(&["backup", "--no-stream", "--collection", "conventions"])
        .env("XDG_RUNTIME_DIR", &runtime)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn aimem");
    let (waited, stderr) = waits_for_its_turn(&mut backing_up);
    signal(&restore, "CONT");
    let restore = to_run(restore.wait_with_output().expect("wait"));
    let mut backing_up = to_run(backing_up.wait_with_output().expect("wait"));
    backing_up.stderr = stderr.join().expect("stderr");
    assert!(waited, "the backup did not wait:\n{}", backing_up.stderr);
    restore.assert_code(0);
    backing_up.assert_code(0);
    assert_eq!(env.server_snapshots(), 0, "every snapshot was deleted");
}

/// The same for one shard of a cluster collection on the peer that holds it: the restore's
/// pre-restore copy of the shard and a cluster backup's snapshot of it take turns.
#[test]
fn a_cluster_backup_waits_while_a_restore_takes_its_pre_restore_copy_of_the_same_shard() {
    use qdrant_double::{Cluster, info_from_fixture};
    let world = super::support::World::new();
    // Peers that do not stream shard snapshots: the restore's copy is one they build.
    let cluster = Cluster::start(
        3,
        qdrant_double::Config {
            no_streamed_shard_snapshot: true,
            ..super::support::keyed_config()
        },
    );
    // One replica per shard: the restore and the backup take each shard from the same peer.
    cluster.seed(
        "discussions",
        info_from_fixture("cluster/3-node-collection-info.json"),
        3,
        1,
        (1..=60).collect(),
    );
    let backup = world.backup(&cluster.url(0), "discussions");
    let holder = cluster.placement("discussions").expect("collection")[&0][0].0;
    let peer = cluster.peer(
        cluster
            .peer_ids()
            .iter()
            .position(|id| *id == holder)
            .expect("holder"),
    );
    peer.clear_requests();
    let shard_snapshots = "/collections/discussions/shards/0/snapshots";
    peer.inject(Fault::new(
        Some("POST"),
        shard_snapshots,
        FaultKind::Delay(Duration::from_secs(1)),
    ));
    let runtime = tempfile::tempdir().expect("private lock folder");
    let restore = world
        .command(&cluster.url(0), &["restore", &backup, "--force"])
        .env("XDG_RUNTIME_DIR", runtime.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn aimem");
    wait_for_request(peer, "POST", |p| p == shard_snapshots);
    signal(&restore, "STOP");
    let mut backing_up = world
        .command(
            &cluster.url(0),
            &["backup", "--no-stream", "--collection", "discussions"],
        )
        .env("XDG_RUNTIME_DIR", runtime.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn aimem");
    let (waited, stderr) = waits_for_its_turn(&mut backing_up);
    signal(&restore, "CONT");
    let restore = to_run(restore.wait_with_output().expect("wait"));
    let mut backing_up = to_run(backing_up.wait_with_output().expect("wait"));
    backing_up.stderr = stderr.join().expect("stderr");
    assert!(waited, "the backup did not wait:\n{}", backing_up.stderr);
    assert!(
        backing_up.stderr.contains("shard 0 of `discussions`"),
        "{}",
        backing_up.stderr
    );
    restore.assert_code(0);
    backing_up.assert_code(0);
}
