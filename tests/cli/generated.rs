//! The checked-in completions and man pages match the clap definition.
//!
//! Regenerate them with: `AIMEM_REGENERATE=1 cargo test --test cli generated`

use std::path::{Path, PathBuf};

use aimem::cli::Cli;
use clap::CommandFactory;
use clap_complete::Shell;

const REGENERATE: &str = "AIMEM_REGENERATE";

fn project() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every generated file: (path relative to the project, contents).
fn generated() -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for (shell, name) in [
        (Shell::Bash, "aimem.bash"),
        (Shell::Zsh, "_aimem"),
        (Shell::Fish, "aimem.fish"),
        (Shell::Elvish, "aimem.elv"),
        (Shell::PowerShell, "_aimem.ps1"),
    ] {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "aimem", &mut out);
        files.push((format!("completions/{name}"), out));
    }
    for page in aimem::manual::pages().unwrap() {
        files.push((format!("man/{}", page.file), page.roff));
    }
    files
}

#[test]
fn the_clap_definition_is_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn generated_completions_and_man_pages_are_fresh() {
    let files = generated();
    if std::env::var_os(REGENERATE).is_some() {
        for dir in ["completions", "man"] {
            let _ = std::fs::remove_dir_all(project().join(dir));
            std::fs::create_dir_all(project().join(dir)).unwrap();
        }
        for (path, bytes) in &files {
            std::fs::write(project().join(path), bytes).unwrap();
        }
        return;
    }
    let mut stale = Vec::new();
    for (path, bytes) in &files {
        if std::fs::read(project().join(path)).ok().as_deref() != Some(bytes.as_slice()) {
            stale.push(path.clone());
        }
    }
    for dir in ["completions", "man"] {
        for entry in std::fs::read_dir(project().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            let relative = path
                .strip_prefix(project())
                .unwrap()
                .to_string_lossy()
                .to_string();
            if !files
                .iter()
                .any(|(p, _)| Path::new(p) == Path::new(&relative))
            {
                stale.push(format!("{relative} (no longer generated)"));
            }
        }
    }
    assert!(
        stale.is_empty(),
        "stale generated files {stale:?}: run `{REGENERATE}=1 cargo test --test cli generated`"
    );
}

#[test]
fn completions_on_stdout_survive_a_reader_that_stops_early() {
    // A pipe whose reader is already gone (as after `| head -1`): every write fails.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_aimem"))
        .args(["completions", "bash"])
        .stdout(writer)
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
