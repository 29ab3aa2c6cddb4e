//! Output that cannot be written (issue 17, finding 9): a full stdout is a failure of its own,
//! exit 74, said once; a closed pipe is not.

use std::process::Stdio;

use super::support::{TestEnv, to_run};

/// Runs `aimem args` with stdout on `/dev/full`, where every write fails with ENOSPC.
fn into_dev_full(env: &TestEnv, args: &[&str]) -> super::support::Run {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    to_run(
        env.command(args)
            .stdout(Stdio::from(full))
            .output()
            .expect("run aimem"),
    )
}

#[test]
fn list_into_a_full_stdout_fails_with_its_own_status_and_says_so_once() {
    let env = TestEnv::ai_memory();
    for _ in 0..3 {
        env.backup(&["--collection", "conventions"]);
    }
    let run = into_dev_full(&env, &["list"]);
    run.assert_code(74)
        .assert_stderr_contains("could not write the output");
    assert_eq!(
        run.stderr.matches("could not write").count(),
        1,
        "{}",
        run.stderr
    );
}

#[test]
fn json_documents_into_a_full_stdout_fail_with_its_own_status() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--collection", "conventions"]);
    let backup = backup.to_str().expect("utf-8");
    into_dev_full(&env, &["verify", backup, "--json"]).assert_code(74);
    // The backup itself is made; only its report is lost, and the status says so.
    let run = into_dev_full(&env, &["backup", "--collection", "github", "--json"]);
    run.assert_code(74);
    assert_eq!(
        run.stderr.matches("could not write").count(),
        1,
        "{}",
        run.stderr
    );
}

#[test]
fn a_closed_pipe_is_not_an_error() {
    let env = TestEnv::ai_memory();
    for _ in 0..3 {
        env.backup(&["--collection", "conventions"]);
    }
    let mut child = env
        .command(&["list"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // The reader goes away before aimem writes.
    drop(child.stdout.take());
    let run = to_run(child.wait_with_output().expect("wait"));
    run.assert_code(0);
    assert!(!run.stderr.contains("could not write"), "{}", run.stderr);
}
