//! `aimem prune`: restic-style retention over real backups, with --dry-run and the safety net.

use std::path::PathBuf;

use serde_json::json;

use super::support::*;

/// Backups named and dated as given (copies of one real backup), plus that backup removed.
fn dated_backups(env: &TestEnv, dates: &[&str]) -> Vec<PathBuf> {
    let real = env.backup(&["--collection", "conventions"]);
    let made = dates
        .iter()
        .map(|date| {
            // "2026-02-10T18:00:00" → folder "2026-02-10_180000"
            let name = format!("{}_{}", &date[..10], date[11..19].replace(':', ""));
            let dir = env.root().join(name);
            copy_dir(&real, &dir);
            edit_manifest(&dir, |m| {
                m["backup_date"] = json!(format!("{date}.000000+00:00"))
            });
            dir
        })
        .collect();
    std::fs::remove_dir_all(real).unwrap();
    made
}

const DATES: [&str; 5] = [
    "2026-02-10T18:00:00",
    "2026-02-10T06:00:00",
    "2026-02-09T12:00:00",
    "2026-02-08T12:00:00",
    "2026-02-01T12:00:00",
];

fn names(env: &TestEnv) -> Vec<String> {
    env.root_entries()
}

#[test]
fn no_policy_is_an_argument_error_and_deletes_nothing() {
    let env = TestEnv::ai_memory();
    dated_backups(&env, &DATES);
    env.run(&["prune"])
        .assert_code(1)
        .assert_stderr_contains("--keep-last");
    assert_eq!(names(&env).len(), 5);
}

#[test]
fn keep_last_with_dry_run_changes_nothing_then_prunes() {
    let env = TestEnv::ai_memory();
    dated_backups(&env, &DATES);
    let run = env.run(&["prune", "--keep-last", "2", "--dry-run"]);
    run.assert_code(0);
    assert_eq!(names(&env).len(), 5, "dry run deleted something");
    assert!(
        run.stdout.contains("would remove  2026-02-01_120000"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("keep    2026-02-10_180000  (last 2 (#1))"),
        "{}",
        run.stdout
    );

    let doc = json_stdout(&env.run(&["prune", "--keep-last", "2", "--dry-run", "--json"]));
    assert_eq!(doc["dry_run"], json!(true));
    assert_eq!(doc["removed"].as_array().unwrap().len(), 3);
    assert_eq!(names(&env).len(), 5);

    env.run(&["prune", "--keep-last", "2"]).assert_code(0);
    assert_eq!(names(&env), ["2026-02-10_060000", "2026-02-10_180000"]);
}

#[test]
fn keep_daily_keeps_the_newest_of_each_day() {
    let env = TestEnv::ai_memory();
    dated_backups(&env, &DATES);
    let doc = json_stdout(&env.run(&["prune", "--keep-daily", "2", "--json"]));
    let kept: Vec<&str> = doc["kept"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    assert_eq!(kept, ["2026-02-10_180000", "2026-02-09_120000"]);
    assert_eq!(doc["kept"][0]["reasons"], json!(["daily (2026-02-10)"]));
    assert_eq!(names(&env), ["2026-02-09_120000", "2026-02-10_180000"]);
}

#[test]
fn keep_weekly_and_within_combine() {
    let env = TestEnv::ai_memory();
    dated_backups(&env, &DATES);
    // within 1d of the newest: both 02-10; weekly 2: 02-10 (W07) and 02-08 (W06).
    env.run(&["prune", "--keep-within", "1d", "--keep-weekly", "2"])
        .assert_code(0);
    assert_eq!(
        names(&env),
        [
            "2026-02-08_120000",
            "2026-02-10_060000",
            "2026-02-10_180000"
        ]
    );
    env.run(&["prune", "--keep-within", "soon"]).assert_code(1);
}

#[test]
fn stale_staging_folders_go_young_running_and_damaged_ones_stay() {
    let env = TestEnv::ai_memory();
    dated_backups(&env, &DATES[..2]);
    let root = env.root();
    // Staging names end with the writer's process id: 999999990+ are never running.
    let running = format!(".aimem-staging-running-{}", std::process::id());
    let old = ".aimem-staging-old-999999990";
    let young = ".aimem-staging-new-999999991";
    let busy = ".aimem-staging-busy-999999992";
    for name in [old, young, busy, running.as_str(), ".aimem-prerestore-x"] {
        std::fs::create_dir_all(root.join(name).join("qdrant")).unwrap();
        std::fs::write(root.join(name).join("qdrant/part"), "x").unwrap();
    }
    std::fs::create_dir(root.join("2020-01-01_000000")).unwrap();
    std::fs::write(root.join("2020-01-01_000000/manifest.json"), "{").unwrap();
    let age = |path: std::path::PathBuf| {
        let status = std::process::Command::new("touch")
            .args(["-d", "3 days ago"])
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success());
    };
    for name in [old, running.as_str(), ".aimem-prerestore-x"] {
        age(root.join(name).join("qdrant/part"));
        age(root.join(name).join("qdrant"));
        age(root.join(name));
    }
    // A long backup still writing: only its folder's own time is old.
    age(root.join(busy));
    let run = env.run(&["prune", "--keep-last", "5", "--dry-run"]);
    run.assert_code(0);
    assert!(
        run.stdout
            .contains(&format!("would remove  {old}  (incomplete")),
        "{}",
        run.stdout
    );
    assert!(root.join(old).exists());
    env.run(&["prune", "--keep-last", "5"]).assert_code(0);
    let mut expected = vec![
        ".aimem-prerestore-x".to_string(),
        busy.to_string(),
        young.to_string(),
        running.clone(),
        "2020-01-01_000000".to_string(),
        "2026-02-10_060000".to_string(),
        "2026-02-10_180000".to_string(),
    ];
    expected.sort();
    assert_eq!(names(&env), expected);
}

#[test]
fn a_copy_named_by_hand_is_never_pruned() {
    let env = TestEnv::ai_memory();
    let made = dated_backups(&env, &DATES[..3]);
    let copy = env.root().join("pre-upgrade");
    std::fs::rename(&made[2], &copy).unwrap();
    let run = env.run(&["prune", "--keep-last", "1", "--dry-run"]);
    run.assert_code(0);
    assert!(
        !run.stdout.contains("would remove  pre-upgrade"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("keep    pre-upgrade"), "{}", run.stdout);
}

#[test]
fn never_deletes_the_only_backup_that_verifies_unless_forced() {
    let env = TestEnv::ai_memory();
    let made = dated_backups(&env, &DATES[..3]);
    // The newest (the one --keep-last 1 keeps) is damaged; the older ones are good.
    std::fs::write(made[0].join("qdrant/conventions.snapshot"), "garbage").unwrap();
    let run = env.run(&["prune", "--keep-last", "1"]);
    run.assert_code(2).assert_stderr_contains("--force");
    assert_eq!(names(&env).len(), 3, "refused prune deleted something");
    let doc = json_stdout(&env.run(&["prune", "--keep-last", "1", "--json"]));
    assert_eq!(doc["refused"], json!(true));
    assert_eq!(doc["removed"], json!([]));

    // Keeping two keeps a good one: allowed, and that one is named.
    let doc = json_stdout(&env.run(&["prune", "--keep-last", "2", "--dry-run", "--json"]));
    assert_eq!(doc["refused"], json!(false));
    assert_eq!(doc["verified"], json!("2026-02-10_060000"));

    env.run(&["prune", "--keep-last", "1", "--force"])
        .assert_code(0);
    assert_eq!(names(&env), ["2026-02-10_180000"]);
}

#[test]
fn a_deletion_left_half_done_is_finished_by_the_next_prune() {
    let env = TestEnv::ai_memory();
    dated_backups(&env, &DATES[..2]);
    let leftover = env.root().join(".aimem-deleting-2020-01-01_000000");
    std::fs::create_dir_all(leftover.join("qdrant")).unwrap();
    std::fs::write(leftover.join("qdrant/x.snapshot"), "x").unwrap();
    env.run(&["prune", "--keep-last", "5", "--dry-run"])
        .assert_code(0);
    assert!(leftover.exists(), "a dry run changes nothing");
    env.run(&["prune", "--keep-last", "1"]).assert_code(0);
    assert!(!leftover.exists());
    assert_eq!(names(&env), ["2026-02-10_180000"]);
}
