//! The man pages: clap's own sections (name, synopsis, description, options) and the ones a
//! person reaches for at 2 a.m.: EXIT STATUS, ENVIRONMENT, EXAMPLES and SEE ALSO.
//!
//! The pages in man/ are generated from here by the freshness test:
//! `AIMEM_REGENERATE=1 cargo test --test cli generated`.

use std::io::Write;

use clap::{Command, CommandFactory};
use clap_mangen::Man;

use crate::cli::Cli;

/// The version in the pages' title line: the crate's only, so the pages do not change with
/// every commit (`aimem --version` names the commit).
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// One generated page.
pub struct Page {
    /// The file name in man/, e.g. `aimem-restore.1`.
    pub file: String,
    pub roff: Vec<u8>,
}

/// `aimem.1` and one page per subcommand.
pub fn pages() -> std::io::Result<Vec<Page>> {
    let mut cli = Cli::command();
    // Gives each subcommand its real command name (`aimem restore`) for the synopsis and its
    // page name (`aimem-restore`) for the title, and copies the global options into it.
    cli.build();
    let subcommands: Vec<Command> = cli
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
        .cloned()
        .collect();
    let page_names: Vec<String> = subcommands.iter().map(page_name).collect();

    let mut pages = vec![Page {
        file: "aimem.1".to_string(),
        roff: render(&cli, &page_names, &subcommands)?,
    }];
    for sub in &subcommands {
        let mut see_also = vec!["aimem".to_string()];
        see_also.extend(
            related(sub.get_name())
                .iter()
                .map(|r| format!("aimem-{r}"))
                .filter(|r| page_names.contains(r)),
        );
        pages.push(Page {
            file: format!("{}.1", page_name(sub)),
            roff: render(sub, &see_also, &[])?,
        });
    }
    Ok(pages)
}

/// `aimem-restore` for `restore`.
fn page_name(sub: &Command) -> String {
    format!("aimem-{}", sub.get_name())
}

fn render(cmd: &Command, see_also: &[String], subcommands: &[Command]) -> std::io::Result<Vec<u8>> {
    let name = cmd.get_name();
    let man = Man::new(cmd.clone())
        .source(format!("aimem {VERSION}"))
        .manual("aimem manual");
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    // No hyphenation and a ragged right edge: a variable, flag or path is never split at a
    // line's end (AI_MEM-ORY_BACKUP_DIR), and can be copied whole.
    writeln!(out, ".nh\n.ad l")?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut out)?;
    }
    if !subcommands.is_empty() {
        // clap_mangen's own list names a page for `help`, which has none.
        section(&mut out, "SUBCOMMANDS")?;
        for sub in subcommands {
            writeln!(out, ".TP\n\\fB{}\\fR(1)", escape(&page_name(sub)))?;
            if let Some(about) = sub.get_about() {
                writeln!(out, "{}", escape(&about.to_string()))?;
            }
        }
    }
    section(&mut out, "EXIT STATUS")?;
    for (code, meaning) in exit_status(name) {
        writeln!(out, ".TP\n.B {code}\n{}", escape(meaning))?;
    }
    section(&mut out, "ENVIRONMENT")?;
    for var in environment(cmd) {
        writeln!(
            out,
            ".TP\n.B {}\n{}",
            escape(&var.name),
            escape(&var.meaning)
        )?;
        writeln!(out, "Default: {}.", escape(&var.default))?;
    }
    section(&mut out, "EXAMPLES")?;
    for (what, commands) in examples(name) {
        writeln!(out, ".PP\n{}", escape(what))?;
        writeln!(out, ".PP\n.RS 4\n.nf")?;
        for line in commands.lines() {
            writeln!(out, "{}", escape(line))?;
        }
        writeln!(out, ".fi\n.RE")?;
    }
    section(&mut out, "SEE ALSO")?;
    let refs: Vec<String> = see_also
        .iter()
        .map(|page| format!("\\fB{}\\fR(1)", escape(page)))
        .collect();
    writeln!(out, "{}", refs.join(", "))?;
    Ok(out)
}

fn section(out: &mut Vec<u8>, title: &str) -> std::io::Result<()> {
    if title.contains(' ') {
        writeln!(out, ".SH \"{title}\"")
    } else {
        writeln!(out, ".SH {title}")
    }
}

/// Text safe on a roff line: backslashes and dashes escaped, no line read as a request.
fn escape(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    let mut lines: Vec<String> = Vec::new();
    for line in escaped.lines() {
        if line.starts_with(['.', '\'']) {
            lines.push(format!("\\&{line}"));
        } else {
            lines.push(line.to_string());
        }
    }
    lines.join("\n")
}

/// The pages a subcommand's page points at besides aimem(1).
fn related(name: &str) -> &'static [&'static str] {
    match name {
        "backup" => &["verify", "prune", "restore", "list"],
        "restore" => &["backup", "verify", "list", "diff-schema"],
        "verify" => &["backup", "restore", "list"],
        "list" => &["verify", "prune"],
        "diff-schema" => &["restore", "verify"],
        "prune" => &["backup", "verify", "list"],
        _ => &[],
    }
}

/// Exit statuses a subcommand can end with (the numbers of [`crate::exit`]).
pub fn exit_status(name: &str) -> Vec<(u8, &'static str)> {
    let mut codes: Vec<(u8, &'static str)> = vec![(0, "Success.")];
    codes.extend_from_slice(match name {
        "backup" => &[
            (
                1,
                "Invalid arguments; or Qdrant could not be reached or refused the API key.",
            ),
            (
                2,
                "A collection could not be backed up (snapshot, download, checksum or schema); no backup folder is left.",
            ),
            (3, "Not enough free disk space in the backup root."),
            (4, "The config files could not be backed up."),
        ][..],
        "restore" => &[
            (
                1,
                "Invalid arguments: no such backup folder, no backup for `latest`, no terminal to confirm without --force (a --dry-run needs neither).",
            ),
            (
                2,
                "The backup failed a check (manifest, checksums, schema, Qdrant version) or was refused (another restore of the collection is running); nothing was changed.",
            ),
            (
                3,
                "Qdrant could not be reached or refused the API key; or no room for the pre-restore copy. Nothing was changed.",
            ),
            (
                4,
                "The restore failed and was rolled back: the server is as it was.",
            ),
            (
                5,
                "The restore failed and so did its rollback (or it could not be made safely): check the server.",
            ),
        ],
        "verify" => &[
            (1, "Invalid arguments: no such backup folder."),
            (
                2,
                "The backup failed a check: manifest, checksums, files or a snapshot's schema.",
            ),
        ],
        "list" => &[
            (1, "Invalid arguments, or the backup root does not exist."),
            (2, "The backup root could not be read."),
        ],
        "diff-schema" => &[
            (1, "Invalid arguments: no such backup folder or collection."),
            (2, "The schemas differ, or a backup could not be read."),
            (
                3,
                "Qdrant could not be reached or refused the API key.",
            ),
        ],
        "prune" => &[
            (
                1,
                "Invalid arguments, e.g. no retention rule, or the backup root does not exist.",
            ),
            (
                2,
                "No kept backup passes verification (nothing was deleted; --force overrides), or a backup could not be deleted.",
            ),
        ],
        "completions" => &[(1, "Invalid arguments.")],
        _ => &[
            (1, "Invalid arguments; Qdrant connection or authentication failed (backup)."),
            (
                2,
                "A backup, verification, checksum or schema check failed; a restore refused, unchanged.",
            ),
            (
                3,
                "Not enough disk space; Qdrant connection failed (restore, diff-schema).",
            ),
            (
                4,
                "Config backup failed; a restore failed and was rolled back.",
            ),
            (
                5,
                "A restore failed and its rollback failed too, or could not be made safely.",
            ),
        ],
    });
    if name != "completions" {
        codes.push((130, "Stopped by Ctrl-C (SIGINT), after cleaning up."));
        codes.push((143, "Stopped by SIGTERM, after cleaning up."));
    }
    codes
}

/// An environment variable as the man page states it.
pub struct EnvVar {
    pub name: String,
    pub meaning: String,
    pub default: String,
}

/// Every variable `cmd` (with its subcommands) reads: the `env` of its options, then the ones
/// read in code.
pub fn environment(cmd: &Command) -> Vec<EnvVar> {
    let mut vars: Vec<EnvVar> = Vec::new();
    // A variable read in several ways (AI_MEMORY_BACKUP_DIR: backup's --output, and the
    // root of `latest`) is listed once, with each meaning.
    let mut add = |var: EnvVar| match vars.iter_mut().find(|v| v.name == var.name) {
        Some(known) if !known.meaning.contains(&var.meaning) => {
            known.meaning = format!("{} {}", known.meaning, var.meaning);
        }
        Some(_) => {}
        None => vars.push(var),
    };
    let mut commands = vec![cmd];
    commands.extend(cmd.get_subcommands());
    for command in &commands {
        for arg in command.get_arguments() {
            let Some(env) = arg.get_env() else { continue };
            let long = arg.get_long().unwrap_or_default();
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            let help = help
                .split(" [default:")
                .next()
                .unwrap_or_default()
                .trim_end();
            let period = if help.ends_with('.') { "" } else { "." };
            let defaults: Vec<String> = arg
                .get_default_values()
                .iter()
                .map(|v| v.to_string_lossy().into_owned())
                .collect();
            let default = match (defaults.is_empty(), long) {
                (false, _) => defaults.join(","),
                (true, "install-dir") => "~/.ai-memory".to_string(),
                (true, "url") => "unset (then QDRANT_HOST and QDRANT_PORT)".to_string(),
                (true, _) => "unset".to_string(),
            };
            add(EnvVar {
                name: env.to_string_lossy().into_owned(),
                meaning: format!("The default of --{long}: {help}{period}"),
                default,
            });
        }
    }
    let names: Vec<&str> = commands.iter().map(|c| c.get_name()).collect();
    let talks_to_qdrant = commands
        .iter()
        .any(|c| c.get_arguments().any(|a| a.get_long() == Some("url")));
    if talks_to_qdrant {
        add(EnvVar {
            name: crate::settings::API_KEY_ENV.to_string(),
            meaning:
                "Qdrant's API key, sent as the api-key header. Read only from here, never from \
                      a flag, so it never shows in ps, shell history or --help."
                    .to_string(),
            default: "unset (no key)".to_string(),
        });
        add(EnvVar {
            name: "SSL_CERT_FILE".to_string(),
            meaning: "A PEM bundle of the CA certificates to trust for https (one holding a \
                      private CA, say), in place of the system's trust store."
                .to_string(),
            default: "unset (the system trust store)".to_string(),
        });
    }
    let reads_backups = names
        .iter()
        .any(|n| ["restore", "verify", "list", "diff-schema", "prune"].contains(n));
    if reads_backups {
        add(EnvVar {
            name: crate::manifest::layout::BACKUP_ROOT_ENV.to_string(),
            meaning: "The backup root: where `latest` is looked for, and the folder list and \
                      prune read when none is given."
                .to_string(),
            default: crate::manifest::layout::DEFAULT_BACKUP_ROOT.to_string(),
        });
    }
    if names.contains(&"backup") {
        add(EnvVar {
            name: crate::engine::backup::files::RUNTIME_FLAGS.join(", "),
            meaning: "AI Memory's feature flags, recorded in the manifest's runtime_flags \
                      (else read from <install>/docker/.env)."
                .to_string(),
            default: "unset (not recorded)".to_string(),
        });
    }
    if names.iter().any(|n| ["backup", "restore"].contains(n)) {
        add(EnvVar {
            name: "HOME".to_string(),
            meaning: "Where the default install folder, ~/.ai-memory, is.".to_string(),
            default: "set by the login".to_string(),
        });
    }
    if names.iter().any(|n| ["backup", "restore"].contains(n)) {
        add(EnvVar {
            name: "XDG_RUNTIME_DIR".to_string(),
            meaning: "The folder for aimem's lock files (XDG_RUNTIME_DIR/aimem), so two \
                      restores of one collection never run at once and two snapshots of one \
                      collection are never asked for in the same second."
                .to_string(),
            default: "unset (a private folder in the temporary directory)".to_string(),
        });
    }
    if names
        .iter()
        .any(|n| ["backup", "restore", "list"].contains(n))
    {
        add(EnvVar {
            name: "XDG_STATE_HOME".to_string(),
            meaning: "The folder for aimem's state (XDG_STATE_HOME/aimem): the journals of \
                      restores, so that what a killed restore left on the server is found by \
                      the next backup or restore and reported by list."
                .to_string(),
            default: "unset (~/.local/state)".to_string(),
        });
    }
    add(EnvVar {
        name: "NO_COLOR".to_string(),
        meaning: "Any non-empty value turns colour off with --color auto.".to_string(),
        default: "unset".to_string(),
    });
    if names.iter().any(|n| ["aimem", "completions"].contains(n)) {
        add(EnvVar {
            name: crate::complete::COMPLETE_ENV.to_string(),
            meaning: "Set to a shell (bash, zsh, fish, elvish, powershell), aimem prints that \
                      shell's registration for dynamic completion and exits; the shell sets it \
                      again to ask for candidates. Empty or 0 means an ordinary run."
                .to_string(),
            default: "unset".to_string(),
        });
    }
    vars
}

/// The examples of a page: (what it does, the commands).
fn examples(name: &str) -> Vec<(&'static str, &'static str)> {
    const BACKUP: (&str, &str) = (
        "Back up AI Memory's five collections from the Qdrant at localhost:26350 into ./backups, \
         with the API key from AI Memory's docker/.env:",
        "export QDRANT_API_KEY=\"$(grep '^QDRANT_API_KEY=' ~/.ai-memory/docker/.env | cut -d= -f2-)\"\n\
         aimem backup",
    );
    const CRON: (&str, &str) = (
        "Every night at 02:30 from cron: back up, check the new backup, and keep two weeks of \
         dailies and eight weekly backups (~/.aimem.env exports QDRANT_API_KEY). Each step runs \
         only if the one before succeeded, and a non-zero exit status makes cron mail the output:",
        "AI_MEMORY_BACKUP_DIR=/var/backups/aimem\n\
         30 2 * * * . $HOME/.aimem.env && dir=$(aimem -q backup) && aimem -q verify \"$dir\" && aimem -q prune --keep-daily 14 --keep-weekly 8",
    );
    const SYSTEMD_SERVICE: (&str, &str) = (
        "The same with a systemd timer. The service, /etc/systemd/system/aimem-backup.service \
         (the API key in /etc/aimem.env; $$ is systemd's escape for the shell's $):",
        "[Unit]\n\
         Description=Back up, verify and prune the Qdrant collections\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         EnvironmentFile=/etc/aimem.env\n\
         Environment=AI_MEMORY_BACKUP_DIR=/var/backups/aimem\n\
         ExecStart=/bin/sh -c 'dir=$$(/usr/local/bin/aimem -q backup) && /usr/local/bin/aimem -q verify \"$$dir\"'\n\
         ExecStart=/usr/local/bin/aimem -q prune --keep-daily 14 --keep-weekly 8",
    );
    const SYSTEMD_TIMER: (&str, &str) = (
        "and its timer, /etc/systemd/system/aimem-backup.timer, started with \
         systemctl enable --now aimem-backup.timer:",
        "[Unit]\n\
         Description=Nightly aimem backup\n\
         \n\
         [Timer]\n\
         OnCalendar=*-*-* 02:30\n\
         Persistent=true\n\
         \n\
         [Install]\n\
         WantedBy=timers.target",
    );
    const RESTORE: (&str, &str) = (
        "See what a restore of the newest backup would do, then restore one collection of it \
         under another name, leaving the original untouched:",
        "aimem restore latest --dry-run\n\
         aimem restore latest --collection github --target-name github-restored",
    );
    const COMPLETION: (&str, &str) = (
        "Completion that knows the backups and collections (bash; zsh the same with zsh):",
        "echo 'source <(COMPLETE=bash aimem)' >> ~/.bashrc",
    );
    match name {
        "backup" => vec![
            BACKUP,
            (
                "Back up two collections of another server, over https:",
                "QDRANT_URL=https://qdrant.example.org:6333 aimem backup --collection github --collection jira-data",
            ),
            CRON,
            SYSTEMD_SERVICE,
            SYSTEMD_TIMER,
        ],
        "restore" => vec![
            RESTORE,
            (
                "Restore a given backup with its config files, without the prompt:",
                "aimem restore ./backups/2026-02-03_143052 --restore-config --force",
            ),
        ],
        "verify" => vec![
            (
                "Check the newest backup, and one backup's files only (no schemas):",
                "aimem verify latest\naimem verify ./backups/2026-02-03_143052 --no-deep",
            ),
            CRON,
        ],
        "list" => vec![(
            "List the backups, checking each complete one, as JSON:",
            "aimem list --verify --json",
        )],
        "diff-schema" => vec![(
            "Compare the newest backup with the live server, then with an older backup:",
            "aimem diff-schema latest\naimem diff-schema latest ./backups/2026-01-01_020000",
        )],
        "prune" => vec![
            (
                "Show what a policy would delete, then apply it:",
                "aimem prune --keep-last 3 --keep-within 30d --dry-run\naimem prune --keep-last 3 --keep-within 30d",
            ),
            SYSTEMD_SERVICE,
            SYSTEMD_TIMER,
        ],
        "completions" => vec![
            COMPLETION,
            (
                "A static script, for shells where dynamic completion is not available:",
                "aimem completions bash > /etc/bash_completion.d/aimem",
            ),
        ],
        _ => vec![
            BACKUP,
            (
                "Check it and see what the backup root holds:",
                "aimem verify latest\naimem list",
            ),
            RESTORE,
            CRON,
            SYSTEMD_SERVICE,
            SYSTEMD_TIMER,
            COMPLETION,
        ],
    }
}
