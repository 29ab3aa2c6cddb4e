
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
            cand --progress 'How to show progress: `auto` draws bars on a terminal; `none` never does; `json` writes JSON lines on stderr (phases, bytes done and total, warnings, then a summary) instead of the lines for a person, for a wrapper or a GUI. --json on stdout is unchanged'
            cand -q 'Print only warnings and errors'
            cand --quiet 'Print only warnings and errors'
            cand -v 'Show each HTTP request on stderr (method, path, status, bytes, duration); -vv adds headers (the API key always hidden), -vvv the HTTP library''s own messages'
            cand --verbose 'Show each HTTP request on stderr (method, path, status, bytes, duration); -vv adds headers (the API key always hidden), -vvv the HTTP library''s own messages'
            cand --no-progress 'Never draw progress bars (the same as --progress none)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand backup 'Snapshot collections, config files and (optionally) logs into a new backup folder'
            cand restore 'Restore a backup: collections (with rollback on failure) and, optionally, config files'
            cand verify 'Check a backup offline: manifest, checksums, and each snapshot''s schema against it'
            cand list 'List the backups in the backup root, newest first, with their state'
            cand diff-schema 'Compare a backup''s schemas with the live collections, or two backups with each other'
            cand prune 'Delete old backups by a retention policy, never the last one that verifies'
            cand completions 'Print a shell completion script to stdout'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'aimem;backup'= {
            cand --url 'Qdrant''s full URL (http or https, optionally with USER:PASSWORD@, a `/`, `?`, `#` or `%` in them percent-encoded); overrides --host and --port'
            cand --host 'Qdrant host name or IP address (no user info, scheme, path or port)'
            cand --port 'Qdrant REST port'
            cand --request-timeout 'Seconds to wait for Qdrant''s answer to an ordinary API call (snapshot creation, transfers and recovery have their own, longer timeouts)'
            cand -o 'Folder that holds the backups; each backup is a dated folder inside it. An `s3://bucket/prefix` puts them in S3-compatible object storage instead (credentials and endpoint from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL, AWS_REGION or AWS_PROFILE)'
            cand --output 'Folder that holds the backups; each backup is a dated folder inside it. An `s3://bucket/prefix` puts them in S3-compatible object storage instead (credentials and endpoint from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL, AWS_REGION or AWS_PROFILE)'
            cand --collection 'Back up only this collection (repeatable). It must exist on the server'
            cand --retry 'Re-attempt a failed snapshot transfer N times: a stored snapshot''s download resumes where it broke, a streamed shard snapshot starts again from its first byte'
            cand --format 'What to back up of each collection: `snapshot`, Qdrant''s own snapshots (restorable into the same Qdrant version or the next minor one, in the same shard layout), or `logical`, its points in Parquet files with its definition (restorable into any Qdrant from 1.16 on and any shard layout, readable without aimem; docs/logical-format.md)'
            cand --version 'The AI Memory version to record [default: <install>/version.txt, else "unknown"]'
            cand --install-dir 'AI Memory''s install folder (config files, logs, version.txt) [default: ~/.ai-memory]'
            cand --peer 'REST URL of a cluster peer (repeatable; QDRANT_PEERS: comma-separated); without it each peer is reached at its cluster host with the scheme and port of --url'
            cand --recipient 'An age public key (age1...) to encrypt to, instead of a passphrase; repeatable. Its identity file opens the backup (with --identity, or with the age tool)'
            cand --recipients-file 'A file of age public keys to encrypt to, one per line (`#` starts a comment)'
            cand --create-timeout 'Seconds to wait for Qdrant to build a snapshot'
            cand --download-timeout 'Seconds a snapshot download may stall; one that keeps moving is never cut off'
            cand --pushgateway 'Push how the run went to this Prometheus Pushgateway (job `aimem`): a URL, or host:port as AI Memory''s PUSHGATEWAY_URL holds it. One short try; a failure is a warning, never the run''s outcome'
            cand --metrics-file 'Write how the run went into this file, in Prometheus text format, for node_exporter''s textfile collector (the other operations'' series in it are kept)'
            cand --jobs 'Collections backed up at the same time (while Qdrant builds one snapshot, another is downloaded); 1 backs them up one after another'
            cand --color 'When to use colour (NO_COLOR is honoured with `auto`)'
            cand --progress 'How to show progress: `auto` draws bars on a terminal; `none` never does; `json` writes JSON lines on stderr (phases, bytes done and total, warnings, then a summary) instead of the lines for a person, for a wrapper or a GUI. --json on stdout is unchanged'
            cand --all 'Back up every collection on the server, not only AI Memory''s five'
            cand --include-logs 'Also copy the log files from <install>/logs'
            cand --no-stream 'Have Qdrant build each snapshot on its disk and download it from there (resumable, deleted after), instead of streaming each shard''s snapshot with nothing stored'
            cand --encrypt 'Encrypt every file of the backup except its manifest and checksum list, with age: to the passphrase in AIMEM_PASSPHRASE (or the file AIMEM_PASSPHRASE_FILE names), or to the --recipient keys'
            cand --json 'Print one JSON document on stdout instead of the folder''s path (shape in the README, "JSON output")'
            cand -q 'Print only warnings and errors'
            cand --quiet 'Print only warnings and errors'
            cand -v 'Show each HTTP request on stderr (method, path, status, bytes, duration); -vv adds headers (the API key always hidden), -vvv the HTTP library''s own messages'
            cand --verbose 'Show each HTTP request on stderr (method, path, status, bytes, duration); -vv adds headers (the API key always hidden), -vvv the HTTP library''s own messages'
            cand --no-progress 'Never draw progress bars (the same as --progress none)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'aimem;restore'= {
            cand --url 'Qdrant''s full URL (http or https, optionally with USER:PASSWORD@, a `/`, `?`, `#` or `%` in them percent-encoded); overrides --host and --port'
            cand --host 'Qdrant host name or IP address (no user info, scheme, path or port)'
            cand --port 'Qdrant REST port'
            cand --request-timeout 'Seconds to wait for Qdrant''s answer to an ordinary API call (snapshot creation, transfers and recovery have their own, longer timeouts)'
            cand --peer 'REST URL of a cluster peer (repeatable; QDRANT_PEERS: comma-separated); without it each peer is reached at its cluster host with the scheme and port of --url'
            cand --identity 'An age identity file (AGE-SECRET-KEY-1... lines, as age-keygen writes) that opens a backup encrypted to recipients; repeatable. A backup encrypted with a passphrase is opened with AIMEM_PASSPHRASE or AIMEM_PASSPHRASE_FILE, or the passphrase typed on a terminal'
            cand --collection 'Restore only this collection of the backup'
            cand --target-name 'Restore the collection into this name instead, leaving the original untouched'
            cand --filter 'Merge into the live collection only the backed-up points that match this Qdrant filter (JSON, Qdrant''s syntax), as they were at backup time; nothing else of the collection changes. Needs --collection; with --dry-run, says how many points would be merged'
            cand --shard-number 'Logical backups: the number of shards of each collection created [default: as recorded]. A snapshot backup''s layout cannot change'
            cand --replication-factor 'Logical backups: the replicas of each shard of each collection created on a cluster [default: as recorded, at most one per peer]'
            cand --install-dir 'AI Memory''s install folder (config files, logs, version.txt) [default: ~/.ai-memory]'
            cand --upload-timeout 'Seconds an upload may stall; one that keeps moving is never cut off'
            cand --recovery-timeout 'Seconds Qdrant may take to recover one collection: the wait for an upload''s answer, and after an upload whose outcome is unknown, the wait for Qdrant to finish before rolling back; in a cluster, also each wait for every replica to settle (before the uploads, before the checks after them, and the same in a rollback)'
            cand --pushgateway 'Push how the run went to this Prometheus Pushgateway (job `aimem`): a URL, or host:port as AI Memory''s PUSHGATEWAY_URL holds it. One short try; a failure is a warning, never the run''s outcome'
            cand --metrics-file 'Write how the run went into this file, in Prometheus text format, for node_exporter''s textfile collector (the other operations'' series in it are kept)'
            cand --jobs 'Collections restored at the same time (while Qdrant recovers one upload, the next is sent); 1 restores them one after another'
            cand --color 'When to use colour (NO_COLOR is honoured with `auto`)'
            cand --progress 'How to show progress: `auto` draws bars on a terminal; `none` never does; `json` writes JSON lines on stderr (phases, bytes done and total, warnings, then a summary) instead of the lines for a person, for a wrapper or a GUI. --json on stdout is unchanged'
            cand --force 'Overwrite existing collections and config files without asking'
            cand --restore-config 'Also write back settings.json, .env, docker/.env and docker/.env.secrets'
            cand --dry-run 'Check everything and print the plan; change nothing'
            cand --skip-checksum-verify 'Do not verify CHECKSUMS.sha256 before uploading (config files are still verified)'
            cand --allow-version-skew 'Restore even when the server''s Qdrant is older, or over one minor newer, than the backup''s'
            cand --allow-unknown-settings 'Logical backups: restore even when the server does not know a setting the backup recorded (it is left out, with a warning)'
            cand --json 'Print one JSON document on stdout: the plan and what each collection ended as (shape in the README, "JSON output")'
            cand -q 'Print only warnings and errors'
            cand --quiet 'Print only warnings and errors'
            cand -v 'Show each HTTP request on stderr (method, path, status, bytes, duration); -vv adds headers (the API key always hidden), -vvv the HTTP library''s own messages'
            cand --verbose 'Show each HTTP request on stderr (method, path, status, bytes, duration); -vv adds headers (the API key always hidden), -vvv the HTTP library''s own messages'
            cand --no-progress 'Never draw progress bars (the same as --progress none)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'aimem;verify'= {
            cand --pushgateway 'Push how the run went to this Prometheus Pushgateway (job `aimem`): a URL, or host:port as AI Memory''s PUSHGATEWAY_URL holds it. One short try; a failure is a warning, never the run''s outcome'
            cand --metrics-file 'Write how the run went into this file, in Prometheus text format, for node_exporter''s textfile collector (the other operations'' series in it are kept)'
            cand --identity 'An age identity file (AGE-SECRET-KEY-1... lines, as age-keygen writes) that opens a backup encrypted to recipients; repeatable. A backup encrypted with a passphrase is opened with AIMEM_PASSPHRASE or AIMEM_PASSPHRASE_FILE, or the passphrase typed on a terminal'
            cand --color 'When to use colour (NO_COLOR is honoured with `auto`)'
            cand --progress 'How to show progress: `auto` draws bars on a terminal; `none` never does; `json` writes JSON lines on stderr (phases, bytes done and total, warnings, then a summary) instead of the lines for a person, for a wrapper or a GUI. --json on stdout is unchanged'
            cand --no-deep 'Check files only: do not read each snapshot''s schema from inside its archive, nor decode a logical backup''s points files'
            cand --json 'Print one JSON document on stdout (shape in the README, "JSON output")'
            cand -q 'Print only warnings and errors'
            cand --quiet 'Print only warnings and errors'
            cand -v 'Show each HTTP request on stderr (method, path, status, bytes, duration); -vv adds headers (the API key always hidden), -vvv the HTTP library''s own messages'
            cand --verbose 'Show each HTTP request on stderr (method, path, status, bytes, duration); -vv adds headers (the API key always hidden), -vvv the HTTP library''s own messages'
            cand --no-progress 'Never draw progress bars (the same as --progress none)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'aimem;list'= {
            cand --color 'When to use colour (NO_COLOR is honoured with `auto`)'
            cand --progress 'How to show progress: `auto` draws bars on a terminal; `none` never does; `json` writes JSON lines on stderr (phases, bytes done and total, warnings, then a summary) instead of the lines for a person, for a wrapper or a GUI. --json on stdout is unchanged'
            cand --verify 'Also verify each complete backup (checksums and snapshot schemas) and show the result'
            cand --json 'Print one JSON document on stdout (shape in the README, "JSON output")'
            cand -q 'Print only warnings and errors'
            cand --quiet 'Print only warnings and errors'
            cand -v 'Show each HTTP request on stderr (method, path, status, bytes, duration); -vv adds headers (the API key always hidden), -vvv the HTTP library''s own messages'
            cand --verbose 'Show each HTTP request on stderr (method, path, status, bytes, duration); -vv adds headers (the API key always hidden), -vvv the HTTP library''s own messages'
            cand --no-progress 'Never draw progress bars (the same as --progress none)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'aimem;diff-schema'= {
            cand --collection 'Compare only this collection'
            cand --url 'Qdrant''s full URL (http or https, optionally with USER:PASSWORD@, a `/`, `?`, `#` or `%` in them percent-encoded); overrides --host and --port'
            cand --host 'Qdrant host name or IP address (no user info, scheme, path or port)'
            cand --port 'Qdrant REST port'
            cand --request-timeout 'Seconds to wait for Qdrant''s answer to an ordinary API call (snapshot creation, transfers and recovery have their own, longer timeouts)'
            cand --peer 'REST URL of a cluster peer (repeatable; QDRANT_PEERS: comma-separated); without it each peer is reached at its cluster host with the scheme and port of --url'
            cand --color 'When to use colour (NO_COLOR is honoured with `auto`)'
            cand --progress 'How to show progress: `auto` draws bars on a terminal; `none` never does; `json` writes JSON lines on stderr (phases, bytes done and total, warnings, then a summary) instead of the lines for a person, for a wrapper or a GUI. --json on stdout is unchanged'
            cand --json 'Print one JSON document on stdout (shape in the README, "JSON output")'
            cand -q 'Print only warnings and errors'
            cand --quiet 'Print only warnings and errors'
            cand -v 'Show each HTTP request on stderr (method, path, status, bytes, duration); -vv adds headers (the API key always hidden), -vvv the HTTP library''s own messages'
            cand --verbose 'Show each HTTP request on stderr (method, path, status, bytes, duration); -vv adds headers (the API key always hidden), -vvv the HTTP library''s own messages'
            cand --no-progress 'Never draw progress bars (the same as --progress none)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'aimem;prune'= {
            cand --keep-last 'Keep the N most recent backups'
            cand --keep-within 'Keep every backup taken within DURATION of the newest one (7d, 12h, 2w, 1d12h)'
            cand --keep-daily 'Keep the newest backup of each of the last N days that have backups'
            cand --keep-weekly 'Keep the newest backup of each of the last N ISO weeks that have backups'
            cand --pushgateway 'Push how the run went to this Prometheus Pushgateway (job `aimem`): a URL, or host:port as AI Memory''s PUSHGATEWAY_URL holds it. One short try; a failure is a warning, never the run''s outcome'
            cand --metrics-file 'Write how the run went into this file, in Prometheus text format, for node_exporter''s textfile collector (the other operations'' series in it are kept)'
            cand --color 'When to use colour (NO_COLOR is honoured with `auto`)'
            cand --progress 'How to show progress: `auto` draws bars on a terminal; `none` never does; `json` writes JSON lines on stderr (phases, bytes done and total, warnings, then a summary) instead of the lines for a person, for a wrapper or a GUI. --json on stdout is unchanged'
            cand --dry-run 'Show what would be kept and removed; change nothing'
            cand --force 'Delete even when no backup that is kept passes verification'
            cand --json 'Print one JSON document on stdout (shape in the README, "JSON output")'
            cand -q 'Print only warnings and errors'
            cand --quiet 'Print only warnings and errors'
            cand -v 'Show each HTTP request on stderr (method, path, status, bytes, duration); -vv adds headers (the API key always hidden), -vvv the HTTP library''s own messages'
            cand --verbose 'Show each HTTP request on stderr (method, path, status, bytes, duration); -vv adds headers (the API key always hidden), -vvv the HTTP library''s own messages'
            cand --no-progress 'Never draw progress bars (the same as --progress none)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'aimem;completions'= {
            cand --color 'When to use colour (NO_COLOR is honoured with `auto`)'
            cand --progress 'How to show progress: `auto` draws bars on a terminal; `none` never does; `json` writes JSON lines on stderr (phases, bytes done and total, warnings, then a summary) instead of the lines for a person, for a wrapper or a GUI. --json on stdout is unchanged'
            cand -q 'Print only warnings and errors'
            cand --quiet 'Print only warnings and errors'
            cand -v 'Show each HTTP request on stderr (method, path, status, bytes, duration); -vv adds headers (the API key always hidden), -vvv the HTTP library''s own messages'
            cand --verbose 'Show each HTTP request on stderr (method, path, status, bytes, duration); -vv adds headers (the API key always hidden), -vvv the HTTP library''s own messages'
            cand --no-progress 'Never draw progress bars (the same as --progress none)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'aimem;help'= {
            cand backup 'Snapshot collections, config files and (optionally) logs into a new backup folder'
            cand restore 'Restore a backup: collections (with rollback on failure) and, optionally, config files'
            cand verify 'Check a backup offline: manifest, checksums, and each snapshot''s schema against it'
            cand list 'List the backups in the backup root, newest first, with their state'
            cand diff-schema 'Compare a backup''s schemas with the live collections, or two backups with each other'
            cand prune 'Delete old backups by a retention policy, never the last one that verifies'
            cand completions 'Print a shell completion script to stdout'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'aimem;help;backup'= {
        }
        &'aimem;help;restore'= {
        }
        &'aimem;help;verify'= {
        }
        &'aimem;help;list'= {
        }
        &'aimem;help;diff-schema'= {
        }
        &'aimem;help;prune'= {
        }
        &'aimem;help;completions'= {
        }
        &'aimem;help;help'= {
        }
    ]
    $completions[$command]
}
