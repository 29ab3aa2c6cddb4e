//! Records the git commit the binary is built from, for `aimem --version`.
//!
//! Outside a git checkout (a source tarball, a crates.io build) or without git, the version is
//! the crate's alone: nothing here may fail the build.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let version = env!("CARGO_PKG_VERSION");
    let long = match git(&["rev-parse", "--short", "HEAD"]) {
        Some(commit) => {
            watch_head();
            format!("{version} ({commit})")
        }
        None => version.to_string(),
    };
    println!("cargo:rustc-env=AIMEM_LONG_VERSION={long}");
}

/// Rebuilds when HEAD moves: HEAD itself (a checkout), the branch it points at (a commit) and
/// packed-refs (a branch packed by `git gc`). Paths come from git, so worktrees work too;
/// a path that does not exist is left out (cargo would rerun every build otherwise).
fn watch_head() {
    let mut paths = vec!["HEAD".to_string(), "packed-refs".to_string()];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        paths.push(branch);
    }
    for path in paths {
        if let Some(file) = git(&["rev-parse", "--git-path", &path]).map(PathBuf::from)
            && file.exists()
        {
            println!("cargo:rerun-if-changed={}", file.display());
        }
    }
}

/// A git command's trimmed output, if git is there and succeeds.
fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    let text = text.trim();
    (output.status.success() && !text.is_empty()).then(|| text.to_string())
}
