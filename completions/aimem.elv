
use builtin;
use str;

set edit:completion:arg-completer[aimem] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'aimem'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'aimem'= {
            cand --color 'When to use colour (NO_COLOR is honoured with `auto`)'
            cand -q 'Print only warnings and errors'
            cand --quiet 'Print only warnings and errors'
            cand --no-progress 'Never draw progress bars'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand backup 'Snapshot collections, config files and (optionally) logs into a new backup folder'
            cand restore 'Restore a backup: collections (with rollback on failure) and, optionally, config files'
            cand completions 'Print a shell completion script to stdout'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'aimem;backup'= {
            cand --url 'Qdrant''s full URL (http or https); overrides --host and --port'
            cand --host 'Qdrant host name'
            cand --port 'Qdrant REST port'
            cand -o 'Folder that holds the backups; each backup is a dated folder inside it'
            cand --output 'Folder that holds the backups; each backup is a dated folder inside it'
            cand --collection 'Back up only this collection (repeatable). It must exist on the server'
            cand --retry 'Re-attempt a failed snapshot download N times; partial data is discarded first'
            cand --version 'The AI Memory version to record [default: <install>/version.txt, else "unknown"]'
            cand --install-dir 'AI Memory''s install folder (config files, logs, version.txt) [default: ~/.ai-memory]'
            cand --create-timeout 'Seconds to wait for Qdrant to build a snapshot'
            cand --download-timeout 'Seconds a snapshot download may stall; one that keeps moving is never cut off'
            cand --color 'When to use colour (NO_COLOR is honoured with `auto`)'
            cand --all 'Back up every collection on the server, not only AI Memory''s five'
            cand --include-logs 'Also copy the log files from <install>/logs'
            cand -q 'Print only warnings and errors'
            cand --quiet 'Print only warnings and errors'
            cand --no-progress 'Never draw progress bars'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'aimem;restore'= {
            cand --url 'Qdrant''s full URL (http or https); overrides --host and --port'
            cand --host 'Qdrant host name'
            cand --port 'Qdrant REST port'
            cand --collection 'Restore only this collection of the backup'
            cand --target-name 'Restore the collection into this name instead, leaving the original untouched'
            cand --install-dir 'AI Memory''s install folder, for --restore-config [default: ~/.ai-memory]'
            cand --upload-timeout 'Seconds an upload may stall; one that keeps moving is never cut off'
            cand --color 'When to use colour (NO_COLOR is honoured with `auto`)'
            cand --force 'Overwrite existing collections and config files without asking'
            cand --restore-config 'Also write back settings.json, .env, docker/.env and docker/.env.secrets'
            cand --dry-run 'Check everything and print the plan; change nothing'
            cand --skip-checksum-verify 'Do not verify CHECKSUMS.sha256 before uploading (config files are still verified)'
            cand --allow-version-skew 'Restore even when the server''s Qdrant is older, or over one minor newer, than the backup''s'
            cand -q 'Print only warnings and errors'
            cand --quiet 'Print only warnings and errors'
            cand --no-progress 'Never draw progress bars'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'aimem;completions'= {
            cand --color 'When to use colour (NO_COLOR is honoured with `auto`)'
            cand -q 'Print only warnings and errors'
            cand --quiet 'Print only warnings and errors'
            cand --no-progress 'Never draw progress bars'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'aimem;help'= {
            cand backup 'Snapshot collections, config files and (optionally) logs into a new backup folder'
            cand restore 'Restore a backup: collections (with rollback on failure) and, optionally, config files'
            cand completions 'Print a shell completion script to stdout'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'aimem;help;backup'= {
        }
        &'aimem;help;restore'= {
        }
        &'aimem;help;completions'= {
        }
        &'aimem;help;help'= {
        }
    ]
    $completions[$command]
}
