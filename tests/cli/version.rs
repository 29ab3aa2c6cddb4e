//! `aimem --version`: the version, and the commit when built from a git checkout.

use std::process::Command;

use super::support::*;

/// The checkout's short commit, if this is a checkout and git is there.
fn short_commit() -> Option<String> {
    let output = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    let commit = String::from_utf8(output.stdout).ok()?.trim().to_string();
    (output.status.success() && !commit.is_empty()).then_some(commit)
}

#[test]
fn version_names_the_commit_it_was_built_from() {
    let env = TestEnv::new();
    for flag in ["--version", "-V"] {
        let run = env.run(&[flag]);
        run.assert_code(0);
        assert!(
            run.stdout.starts_with("aimem 0.1.0"),
            "{flag}: {:?}",
            run.stdout
        );
        let expected = match short_commit() {
            Some(commit) => format!("aimem {} ({commit})\n", env!("CARGO_PKG_VERSION")),
            None => format!("aimem {}\n", env!("CARGO_PKG_VERSION")),
        };
        assert_eq!(run.stdout, expected, "{flag}");
    }
}
