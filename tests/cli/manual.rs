//! The man pages in man/: the sections a person looks for, references only to pages that
//! exist, the real command name in the synopsis, every environment variable, and a rendering
//! by groff without a warning.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use aimem::cli::Cli;
use clap::CommandFactory;

fn man_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("man")
}

/// (file name, roff text) of every page in man/.
fn pages() -> Vec<(String, String)> {
    let mut pages: Vec<(String, String)> = std::fs::read_dir(man_dir())
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_string();
            (name, std::fs::read_to_string(&path).unwrap())
        })
        .collect();
    pages.sort();
    assert!(pages.len() >= 8, "{pages:?}");
    pages
}

/// The lines of section `title` (between its `.SH` and the next).
fn section<'a>(roff: &'a str, title: &str) -> Vec<&'a str> {
    let heading = |line: &str| {
        line.strip_prefix(".SH ")
            .map(|t| t.trim_matches('"').to_string())
    };
    roff.lines()
        .skip_while(|l| heading(l).as_deref() != Some(title))
        .skip(1)
        .take_while(|l| heading(l).is_none())
        .collect()
}

/// Every `name(1)` the text refers to.
fn references(text: &str) -> BTreeSet<String> {
    let plain = text
        .replace("\\fB", "")
        .replace("\\fR", "")
        .replace("\\-", "-");
    let mut found = BTreeSet::new();
    for (at, _) in plain.match_indices("(1)") {
        let name: String = plain[..at]
            .chars()
            .rev()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        found.insert(name);
    }
    found
}

/// The clap command a page documents: `aimem` or one subcommand.
fn command_of(file: &str) -> clap::Command {
    let cli = Cli::command();
    match file.strip_suffix(".1").unwrap().strip_prefix("aimem-") {
        None => cli,
        Some(sub) => cli.find_subcommand(sub).unwrap().clone(),
    }
}

/// Every variable the options of `command` (and its subcommands) read.
fn clap_env(command: &clap::Command) -> BTreeSet<String> {
    let mut all = vec![command];
    all.extend(command.get_subcommands());
    all.iter()
        .flat_map(|c| c.get_arguments())
        .filter_map(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned())
        .collect()
}

#[test]
fn every_page_has_the_sections_a_person_looks_for() {
    for (file, roff) in pages() {
        for title in [
            "NAME",
            "SYNOPSIS",
            "DESCRIPTION",
            "EXIT STATUS",
            "ENVIRONMENT",
            "EXAMPLES",
            "SEE ALSO",
        ] {
            assert!(
                !section(&roff, title).is_empty(),
                "{file} has no {title} section"
            );
        }
    }
}

#[test]
fn pages_refer_only_to_pages_that_exist() {
    for (file, roff) in pages() {
        let see_also = section(&roff, "SEE ALSO").join("\n");
        assert!(!references(&see_also).is_empty(), "{file}: empty SEE ALSO");
        for name in references(&roff) {
            assert!(
                man_dir().join(format!("{name}.1")).is_file(),
                "{file} refers to {name}(1), which does not exist"
            );
        }
    }
}

#[test]
fn synopsis_names_the_real_command() {
    for (file, roff) in pages() {
        let command = file.strip_suffix(".1").unwrap().replacen('-', " ", 1);
        let synopsis = section(&roff, "SYNOPSIS").join("\n").replace("\\-", "-");
        assert!(
            synopsis.starts_with(&format!("\\fB{command}\\fR")),
            "{file}: the synopsis does not start with `{command}`:\n{synopsis}"
        );
    }
}

#[test]
fn environment_lists_every_variable_with_its_default() {
    for (file, roff) in pages() {
        let environment = section(&roff, "ENVIRONMENT").join("\n").replace("\\-", "-");
        let command = command_of(&file);
        let mut wanted = clap_env(&command);
        wanted.insert("NO_COLOR".to_string());
        if clap_env(&command).contains("QDRANT_URL") {
            wanted.extend(["QDRANT_API_KEY".to_string(), "SSL_CERT_FILE".to_string()]);
        }
        if [
            "aimem.1",
            "aimem-restore.1",
            "aimem-verify.1",
            "aimem-list.1",
            "aimem-prune.1",
        ]
        .contains(&file.as_str())
        {
            wanted.insert("AI_MEMORY_BACKUP_DIR".to_string());
        }
        if ["aimem.1", "aimem-completions.1"].contains(&file.as_str()) {
            wanted.insert("COMPLETE".to_string());
        }
        for var in &wanted {
            assert!(
                environment.contains(&format!(".B {var}\n")),
                "{file}: ENVIRONMENT lacks {var}:\n{environment}"
            );
        }
        let entries = environment.matches(".TP\n.B ").count();
        let defaults = environment.matches("Default: ").count();
        assert_eq!(entries, defaults, "{file}: a variable without its default");
    }
}

#[test]
fn exit_status_lists_only_documented_codes() {
    for (file, roff) in pages() {
        let codes: Vec<u8> = section(&roff, "EXIT STATUS")
            .iter()
            .filter_map(|l| l.strip_prefix(".B "))
            .map(|c| c.parse().unwrap())
            .collect();
        assert_eq!(codes.first(), Some(&0), "{file}: {codes:?}");
        for code in codes {
            assert!(
                aimem::exit::TABLE.contains(&format!("\n  {code} ")),
                "{file}: {code} is not in the exit table"
            );
        }
    }
}

#[test]
fn groff_renders_every_page_without_a_warning() {
    for (file, _) in pages() {
        let output = Command::new("groff")
            // Plain text: no bold or underline, no colour sequences.
            .args(["-man", "-Tascii", "-ww", "-P-c", "-P-b", "-P-u"])
            .arg(man_dir().join(&file))
            .output()
            .expect("groff (package groff-base; .ci/run installs it)");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success() && stderr.is_empty(),
            "{file}: {stderr}"
        );
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(!text.contains('\u{1b}'), "{file}: colour sequences");
        for heading in ["EXIT STATUS", "ENVIRONMENT", "EXAMPLES", "SEE ALSO"] {
            assert!(
                text.lines().any(|l| l == heading),
                "{file}: no {heading} heading in:\n{text}"
            );
        }
        // Nothing hyphenated across lines: every variable comes out whole.
        for var in clap_env(&command_of(&file)) {
            assert!(text.contains(&var), "{file}: {var} is split:\n{text}");
        }
    }
}
