//! The per-user state folder (`$XDG_STATE_HOME/aimem`, else `~/.local/state/aimem`), where
//! restores keep their journals and, for backups in folders other users can change, their
//! pre-restore copies: one of ours open to others is made private, a link or another user's
//! folder is refused (never followed), a run without one says where its state goes instead,
//! and `list`, which only reads state, creates nothing.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::support::*;

/// A private folder for the lock folder and the state fallback (aimem's
/// `$XDG_RUNTIME_DIR/aimem`), so the test sees what a run puts there.
fn runtime_dir(env: &TestEnv) -> PathBuf {
    let dir = env.tmp.path().join("run");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    dir
}

/// Every path under `dir` (any depth, links not followed), relative to it.
fn tree(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut queue = vec![dir.to_path_buf()];
    while let Some(folder) = queue.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            found.push(path.strip_prefix(dir).unwrap().display().to_string());
            if path.symlink_metadata().unwrap().is_dir() {
                queue.push(path);
            }
        }
    }
    found.sort();
    found
}

/// The journal of a killed restore that left `github-1.snapshot` on the test's server.
fn killed_restore_journal(env: &TestEnv, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let started = serde_json::json!({
        "event": "started",
        "owner": {"pid": 999_999, "host": "h", "started": "2026-01-01T00:00:00Z"},
        "server": format!("http://127.0.0.1:{}", env.double.port()),
    });
    let created = serde_json::json!({
        "event": "created", "collection": "github", "snapshot": "github-1.snapshot",
    });
    std::fs::write(
        dir.join("restore-x.journal"),
        format!("{started}\n{created}\n"),
    )
    .unwrap();
}

#[test]
fn list_without_a_state_folder_creates_none() {
    let env = TestEnv::ai_memory();
    env.backup(&["--collection", "github"]);
    let runtime = runtime_dir(&env);
    let xdg = env.tmp.path().join("xdg-state");
    for args in [vec!["list"], vec!["list", "--json"]] {
        // In `~/.local/state`, and in `$XDG_STATE_HOME`.
        let run = env.run_with(&args, |c| {
            c.env("XDG_RUNTIME_DIR", &runtime);
        });
        run.assert_code(0);
        let run = env.run_with(&args, |c| {
            c.env("XDG_RUNTIME_DIR", &runtime)
                .env("XDG_STATE_HOME", &xdg);
        });
        run.assert_code(0);
        assert_eq!(tree(&env.tmp.path().join("home")), Vec::<String>::new());
        assert!(!xdg.exists(), "{args:?} made {}", xdg.display());
        assert_eq!(tree(&runtime), Vec::<String>::new(), "{args:?}");
    }
}

#[test]
fn a_run_without_a_state_folder_says_where_its_journal_goes() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--collection", "github"]);
    let runtime = runtime_dir(&env);
    let run = env.run_with(&["restore", backup.to_str().unwrap(), "--force"], |c| {
        c.env_remove("HOME").env("XDG_RUNTIME_DIR", &runtime);
    });
    run.assert_code(0);
    let fallback = runtime.join("aimem/state/restores");
    run.assert_stderr_contains("neither XDG_STATE_HOME nor HOME");
    run.assert_stderr_contains(&format!(
        "this restore's journal goes to {} instead, which may not outlive a reboot",
        fallback.display()
    ));
    assert_eq!(mode(&runtime.join("aimem/state")), 0o700);
    assert_eq!(mode(&fallback), 0o700);
}

#[test]
fn a_state_folder_of_ours_open_to_others_is_made_private() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--collection", "github"]);
    let runtime = runtime_dir(&env);
    let state = env.tmp.path().join("home/.local/state/aimem");
    let restores = state.join("restores");
    let open = || {
        for dir in [&state, &restores] {
            std::fs::create_dir_all(dir).unwrap();
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        }
    };
    // By `list`, which only reads it.
    open();
    let run = env.run_with(&["list"], |c| {
        c.env("XDG_RUNTIME_DIR", &runtime);
    });
    run.assert_code(0);
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&restores), 0o700);
    run.assert_stderr_contains(&format!(
        "{} was open to other users (mode 0777): aimem made it private (0700)",
        state.display()
    ));
    // By a restore, whose journal then goes there (not to the fallback).
    open();
    let run = env.run_with(&["restore", backup.to_str().unwrap(), "--force"], |c| {
        c.env("XDG_RUNTIME_DIR", &runtime);
    });
    run.assert_code(0);
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&restores), 0o700);
    assert!(!run.stderr.contains("instead"), "{}", run.stderr);
    assert!(!runtime.join("aimem/state").exists());
}

#[test]
fn a_symlinked_state_folder_is_refused_and_never_followed() {
    let env = TestEnv::ai_memory();
    let backup = env.backup(&["--collection", "github"]);
    let runtime = runtime_dir(&env);
    // `$XDG_STATE_HOME/aimem` is a link to a folder of ours that holds a restore journal.
    let xdg = env.tmp.path().join("xdg-state");
    let elsewhere = env.tmp.path().join("elsewhere");
    std::fs::create_dir_all(&xdg).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o700)).unwrap();
    killed_restore_journal(&env, &elsewhere.join("restores"));
    std::fs::set_permissions(
        elsewhere.join("restores"),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    let link = xdg.join("aimem");
    std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
    let before = tree(&elsewhere);
    let with_link = |c: &mut std::process::Command| {
        c.env("XDG_STATE_HOME", &xdg)
            .env("XDG_RUNTIME_DIR", &runtime);
    };
    let refused = format!(
        "{} is a symbolic link: aimem does not use it as its state folder",
        link.display()
    );

    // `list` warns, and does not read through the link.
    let run = env.run_with(&["list", "--json"], with_link);
    run.assert_code(0);
    run.assert_stderr_contains(&refused);
    assert!(
        json_stdout(&run).get("leftovers").is_none(),
        "{}",
        run.stdout
    );

    // A restore warns, and puts its journal in the fallback, not through the link.
    let run = env.run_with(&["restore", backup.to_str().unwrap(), "--force"], with_link);
    run.assert_code(0);
    run.assert_stderr_contains(&refused);
    run.assert_stderr_contains(&format!(
        "this restore's journal goes to {} instead",
        runtime.join("aimem/state/restores").display()
    ));

    // A backup in a folder other users can change: its pre-restore copy would go to the
    // state folder, which is refused, so the restore stops before any change.
    let shared = env.tmp.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    let moved = shared.join(backup.file_name().unwrap());
    std::fs::rename(&backup, &moved).unwrap();
    let asked = env.double.requests().len();
    let run = env.run_with(&["restore", moved.to_str().unwrap(), "--force"], with_link);
    run.assert_code(2);
    run.assert_stderr_contains(&format!(
        "{} can be changed by other users",
        shared.display()
    ));
    run.assert_stderr_contains(&refused);
    let changes: Vec<_> = env.double.requests()[asked..]
        .iter()
        // Counting points is a read; snapshots, uploads and deletions are changes.
        .filter(|r| r.method != "GET" && !r.path.ends_with("/points/count"))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(changes.is_empty(), "{changes:?}");

    // Nothing was written through the link, which is still a link.
    assert!(link.symlink_metadata().unwrap().file_type().is_symlink());
    assert_eq!(tree(&elsewhere), before);
}
