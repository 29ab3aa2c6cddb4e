
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'aimem' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'aimem'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'aimem' {
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour (NO_COLOR is honoured with `auto`)')
            [CompletionResult]::new('--progress', '--progress', [CompletionResultType]::ParameterName, 'How to show progress: `auto` draws bars on a terminal; `none` never does; `json` writes JSON lines on stderr (phases, bytes done and total, warnings, then a summary) instead of the lines for a person, for a wrapper or a GUI. --json on stdout is unchanged')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only warnings and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only warnings and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Show each HTTP request on stderr (method, path, status, bytes, duration); -vv adds headers (the API key always hidden), -vvv the HTTP library''s own messages')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Show each HTTP request on stderr (method, path, status, bytes, duration); -vv adds headers (the API key always hidden), -vvv the HTTP library''s own messages')
            [CompletionResult]::new('--no-progress', '--no-progress', [CompletionResultType]::ParameterName, 'Never draw progress bars (the same as --progress none)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('backup', 'backup', [CompletionResultType]::ParameterValue, 'Snapshot collections, config files and (optionally) logs into a new backup folder')
            [CompletionResult]::new('restore', 'restore', [CompletionResultType]::ParameterValue, 'Restore a backup: collections (with rollback on failure) and, optionally, config files')
            [CompletionResult]::new('verify', 'verify', [CompletionResultType]::ParameterValue, 'Check a backup offline: manifest, checksums, and each snapshot''s schema against it')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the backups in the backup root, newest first, with their state')
            [CompletionResult]::new('diff-schema', 'diff-schema', [CompletionResultType]::ParameterValue, 'Compare a backup''s schemas with the live collections, or two backups with each other')
            [CompletionResult]::new('prune', 'prune', [CompletionResultType]::ParameterValue, 'Delete old backups by a retention policy, never the last one that verifies')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script to stdout')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'aimem;backup' {
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Qdrant''s full URL (http or https, optionally with USER:PASSWORD@, a `/`, `?`, `#` or `%` in them percent-encoded); overrides --host and --port')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Qdrant host name or IP address (no user info, scheme, path or port)')
            [CompletionResult]::new('--port', '--port', [CompletionResultType]::ParameterName, 'Qdrant REST port')
            [CompletionResult]::new('--request-timeout', '--request-timeout', [CompletionResultType]::ParameterName, 'Seconds to wait for Qdrant''s answer to an ordinary API call (snapshot creation, transfers and recovery have their own, longer timeouts)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Folder that holds the backups; each backup is a dated folder inside it. An `s3://bucket/prefix` puts them in S3-compatible object storage instead (credentials and endpoint from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL, AWS_REGION or AWS_PROFILE)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Folder that holds the backups; each backup is a dated folder inside it. An `s3://bucket/prefix` puts them in S3-compatible object storage instead (credentials and endpoint from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL, AWS_REGION or AWS_PROFILE)')
            [CompletionResult]::new('--collection', '--collection', [CompletionResultType]::ParameterName, 'Back up only this collection (repeatable). It must exist on the server')
            [CompletionResult]::new('--retry', '--retry', [CompletionResultType]::ParameterName, 'Re-attempt a failed snapshot transfer N times: a stored snapshot''s download resumes where it broke, a streamed shard snapshot starts again from its first byte')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'What to back up of each collection: `snapshot`, Qdrant''s own snapshots (restorable into the same Qdrant version or the next minor one, in the same shard layout), or `logical`, its points in Parquet files with its definition (restorable into any Qdrant from 1.16 on and any shard layout, readable without aimem; docs/logical-format.md)')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'The AI Memory version to record [default: <install>/version.txt, else "unknown"]')
            [CompletionResult]::new('--install-dir', '--install-dir', [CompletionResultType]::ParameterName, 'AI Memory''s install folder (config files, logs, version.txt) [default: ~/.ai-memory]')
            [CompletionResult]::new('--peer', '--peer', [CompletionResultType]::ParameterName, 'REST URL of a cluster peer (repeatable; QDRANT_PEERS: comma-separated); without it each peer is reached at its cluster host with the scheme and port of --url')
            [CompletionResult]::new('--recipient', '--recipient', [CompletionResultType]::ParameterName, 'An age public key (age1...) to encrypt to, instead of a passphrase; repeatable. Its identity file opens the backup (with --identity, or with the age tool)')
            [CompletionResult]::new('--recipients-file', '--recipients-file', [CompletionResultType]::ParameterName, 'A file of age public keys to encrypt to, one per line (`#` starts a comment)')
            [CompletionResult]::new('--create-timeout', '--create-timeout', [CompletionResultType]::ParameterName, 'Seconds to wait for Qdrant to build a snapshot')
            [CompletionResult]::new('--download-timeout', '--download-timeout', [CompletionResultType]::ParameterName, 'Seconds a snapshot download may stall; one that keeps moving is never cut off')
            [CompletionResult]::new('--pushgateway', '--pushgateway', [CompletionResultType]::ParameterName, 'Push how the run went to this Prometheus Pushgateway (job `aimem`): a URL, or host:port as AI Memory''s PUSHGATEWAY_URL holds it. One short try; a failure is a warning, never the run''s outcome')
            [CompletionResult]::new('--metrics-file', '--metrics-file', [CompletionResultType]::ParameterName, 'Write how the run went into this file, in Prometheus text format, for node_exporter''s textfile collector (the other operations'' series in it are kept)')
            [CompletionResult]::new('--jobs', '--jobs', [CompletionResultType]::ParameterName, 'Collections backed up at the same time (while Qdrant builds one snapshot, another is downloaded); 1 backs them up one after another')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour (NO_COLOR is honoured with `auto`)')
            [CompletionResult]::new('--progress', '--progress', [CompletionResultType]::ParameterName, 'How to show progress: `auto` draws bars on a terminal; `none` never does; `json` writes JSON lines on stderr (phases, bytes done and total, warnings, then a summary) instead of the lines for a person, for a wrapper or a GUI. --json on stdout is unchanged')
            [CompletionResult]::new('--all', '--all', [CompletionResultType]::ParameterName, 'Back up every collection on the server, not only AI Memory''s five')
            [CompletionResult]::new('--include-logs', '--include-logs', [CompletionResultType]::ParameterName, 'Also copy the log files from <install>/logs')
            [CompletionResult]::new('--no-stream', '--no-stream', [CompletionResultType]::ParameterName, 'Have Qdrant build each snapshot on its disk and download it from there (resumable, deleted after), instead of streaming each shard''s snapshot with nothing stored')
            [CompletionResult]::new('--encrypt', '--encrypt', [CompletionResultType]::ParameterName, 'Encrypt every file of the backup except its manifest and checksum list, with age: to the passphrase in AIMEM_PASSPHRASE (or the file AIMEM_PASSPHRASE_FILE names), or to the --recipient keys')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON document on stdout instead of the folder''s path (shape in the README, "JSON output")')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only warnings and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only warnings and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Show each HTTP request on stderr (method, path, status, bytes, duration); -vv adds headers (the API key always hidden), -vvv the HTTP library''s own messages')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Show each HTTP request on stderr (method, path, status, bytes, duration); -vv adds headers (the API key always hidden), -vvv the HTTP library''s own messages')
            [CompletionResult]::new('--no-progress', '--no-progress', [CompletionResultType]::ParameterName, 'Never draw progress bars (the same as --progress none)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'aimem;restore' {
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Qdrant''s full URL (http or https, optionally with USER:PASSWORD@, a `/`, `?`, `#` or `%` in them percent-encoded); overrides --host and --port')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Qdrant host name or IP address (no user info, scheme, path or port)')
            [CompletionResult]::new('--port', '--port', [CompletionResultType]::ParameterName, 'Qdrant REST port')
            [CompletionResult]::new('--request-timeout', '--request-timeout', [CompletionResultType]::ParameterName, 'Seconds to wait for Qdrant''s answer to an ordinary API call (snapshot creation, transfers and recovery have their own, longer timeouts)')
            [CompletionResult]::new('--peer', '--peer', [CompletionResultType]::ParameterName, 'REST URL of a cluster peer (repeatable; QDRANT_PEERS: comma-separated); without it each peer is reached at its cluster host with the scheme and port of --url')
            [CompletionResult]::new('--identity', '--identity', [CompletionResultType]::ParameterName, 'An age identity file (AGE-SECRET-KEY-1... lines, as age-keygen writes) that opens a backup encrypted to recipients; repeatable. A backup encrypted with a passphrase is opened with AIMEM_PASSPHRASE or AIMEM_PASSPHRASE_FILE, or the passphrase typed on a terminal')
            [CompletionResult]::new('--collection', '--collection', [CompletionResultType]::ParameterName, 'Restore only this collection of the backup')
            [CompletionResult]::new('--target-name', '--target-name', [CompletionResultType]::ParameterName, 'Restore the collection into this name instead, leaving the original untouched')
            [CompletionResult]::new('--filter', '--filter', [CompletionResultType]::ParameterName, 'Merge into the live collection only the backed-up points that match this Qdrant filter (JSON, Qdrant''s syntax), as they were at backup time; nothing else of the collection changes. Needs --collection; with --dry-run, says how many points would be merged')
            [CompletionResult]::new('--shard-number', '--shard-number', [CompletionResultType]::ParameterName, 'Logical backups: the number of shards of each collection created [default: as recorded]. A snapshot backup''s layout cannot change')
            [CompletionResult]::new('--replication-factor', '--replication-factor', [CompletionResultType]::ParameterName, 'Logical backups: the replicas of each shard of each collection created on a cluster [default: as recorded, at most one per peer]')
            [CompletionResult]::new('--install-dir', '--install-dir', [CompletionResultType]::ParameterName, 'AI Memory''s install folder (config files, logs, version.txt) [default: ~/.ai-memory]')
            [CompletionResult]::new('--upload-timeout', '--upload-timeout', [CompletionResultType]::ParameterName, 'Seconds an upload may stall; one that keeps moving is never cut off')
            [CompletionResult]::new('--recovery-timeout', '--recovery-timeout', [CompletionResultType]::ParameterName, 'Seconds Qdrant may take to recover one collection: the wait for an upload''s answer, and after an upload whose outcome is unknown, the wait for Qdrant to finish before rolling back; in a cluster, also each wait for every replica to settle (before the uploads, before the checks after them, and the same in a rollback)')
            [CompletionResult]::new('--pushgateway', '--pushgateway', [CompletionResultType]::ParameterName, 'Push how the run went to this Prometheus Pushgateway (job `aimem`): a URL, or host:port as AI Memory''s PUSHGATEWAY_URL holds it. One short try; a failure is a warning, never the run''s outcome')
            [CompletionResult]::new('--metrics-file', '--metrics-file', [CompletionResultType]::ParameterName, 'Write how the run went into this file, in Prometheus text format, for node_exporter''s textfile collector (the other operations'' series in it are kept)')
            [CompletionResult]::new('--jobs', '--jobs', [CompletionResultType]::ParameterName, 'Collections restored at the same time (while Qdrant recovers one upload, the next is sent); 1 restores them one after another')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour (NO_COLOR is honoured with `auto`)')
            [CompletionResult]::new('--progress', '--progress', [CompletionResultType]::ParameterName, 'How to show progress: `auto` draws bars on a terminal; `none` never does; `json` writes JSON lines on stderr (phases, bytes done and total, warnings, then a summary) instead of the lines for a person, for a wrapper or a GUI. --json on stdout is unchanged')
            [CompletionResult]::new('--force', '--force', [CompletionResultType]::ParameterName, 'Overwrite existing collections and config files without asking')
            [CompletionResult]::new('--restore-config', '--restore-config', [CompletionResultType]::ParameterName, 'Also write back settings.json, .env, docker/.env and docker/.env.secrets')
            [CompletionResult]::new('--dry-run', '--dry-run', [CompletionResultType]::ParameterName, 'Check everything and print the plan; change nothing')
            [CompletionResult]::new('--skip-checksum-verify', '--skip-checksum-verify', [CompletionResultType]::ParameterName, 'Do not verify CHECKSUMS.sha256 before uploading (config files are still verified)')
            [CompletionResult]::new('--allow-version-skew', '--allow-version-skew', [CompletionResultType]::ParameterName, 'Restore even when the server''s Qdrant is older, or over one minor newer, than the backup''s')
            [CompletionResult]::new('--allow-unknown-settings', '--allow-unknown-settings', [CompletionResultType]::ParameterName, 'Logical backups: restore even when the server does not know a setting the backup recorded (it is left out, with a warning)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON document on stdout: the plan and what each collection ended as (shape in the README, "JSON output")')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only warnings and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only warnings and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Show each HTTP request on stderr (method, path, status, bytes, duration); -vv adds headers (the API key always hidden), -vvv the HTTP library''s own messages')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Show each HTTP request on stderr (method, path, status, bytes, duration); -vv adds headers (the API key always hidden), -vvv the HTTP library''s own messages')
            [CompletionResult]::new('--no-progress', '--no-progress', [CompletionResultType]::ParameterName, 'Never draw progress bars (the same as --progress none)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'aimem;verify' {
            [CompletionResult]::new('--pushgateway', '--pushgateway', [CompletionResultType]::ParameterName, 'Push how the run went to this Prometheus Pushgateway (job `aimem`): a URL, or host:port as AI Memory''s PUSHGATEWAY_URL holds it. One short try; a failure is a warning, never the run''s outcome')
            [CompletionResult]::new('--metrics-file', '--metrics-file', [CompletionResultType]::ParameterName, 'Write how the run went into this file, in Prometheus text format, for node_exporter''s textfile collector (the other operations'' series in it are kept)')
            [CompletionResult]::new('--identity', '--identity', [CompletionResultType]::ParameterName, 'An age identity file (AGE-SECRET-KEY-1... lines, as age-keygen writes) that opens a backup encrypted to recipients; repeatable. A backup encrypted with a passphrase is opened with AIMEM_PASSPHRASE or AIMEM_PASSPHRASE_FILE, or the passphrase typed on a terminal')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour (NO_COLOR is honoured with `auto`)')
            [CompletionResult]::new('--progress', '--progress', [CompletionResultType]::ParameterName, 'How to show progress: `auto` draws bars on a terminal; `none` never does; `json` writes JSON lines on stderr (phases, bytes done and total, warnings, then a summary) instead of the lines for a person, for a wrapper or a GUI. --json on stdout is unchanged')
            [CompletionResult]::new('--no-deep', '--no-deep', [CompletionResultType]::ParameterName, 'Check files only: do not read each snapshot''s schema from inside its archive, nor decode a logical backup''s points files')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON document on stdout (shape in the README, "JSON output")')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only warnings and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only warnings and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Show each HTTP request on stderr (method, path, status, bytes, duration); -vv adds headers (the API key always hidden), -vvv the HTTP library''s own messages')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Show each HTTP request on stderr (method, path, status, bytes, duration); -vv adds headers (the API key always hidden), -vvv the HTTP library''s own messages')
            [CompletionResult]::new('--no-progress', '--no-progress', [CompletionResultType]::ParameterName, 'Never draw progress bars (the same as --progress none)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'aimem;list' {
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour (NO_COLOR is honoured with `auto`)')
            [CompletionResult]::new('--progress', '--progress', [CompletionResultType]::ParameterName, 'How to show progress: `auto` draws bars on a terminal; `none` never does; `json` writes JSON lines on stderr (phases, bytes done and total, warnings, then a summary) instead of the lines for a person, for a wrapper or a GUI. --json on stdout is unchanged')
            [CompletionResult]::new('--verify', '--verify', [CompletionResultType]::ParameterName, 'Also verify each complete backup (checksums and snapshot schemas) and show the result')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON document on stdout (shape in the README, "JSON output")')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only warnings and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only warnings and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Show each HTTP request on stderr (method, path, status, bytes, duration); -vv adds headers (the API key always hidden), -vvv the HTTP library''s own messages')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Show each HTTP request on stderr (method, path, status, bytes, duration); -vv adds headers (the API key always hidden), -vvv the HTTP library''s own messages')
            [CompletionResult]::new('--no-progress', '--no-progress', [CompletionResultType]::ParameterName, 'Never draw progress bars (the same as --progress none)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'aimem;diff-schema' {
            [CompletionResult]::new('--collection', '--collection', [CompletionResultType]::ParameterName, 'Compare only this collection')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Qdrant''s full URL (http or https, optionally with USER:PASSWORD@, a `/`, `?`, `#` or `%` in them percent-encoded); overrides --host and --port')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Qdrant host name or IP address (no user info, scheme, path or port)')
            [CompletionResult]::new('--port', '--port', [CompletionResultType]::ParameterName, 'Qdrant REST port')
            [CompletionResult]::new('--request-timeout', '--request-timeout', [CompletionResultType]::ParameterName, 'Seconds to wait for Qdrant''s answer to an ordinary API call (snapshot creation, transfers and recovery have their own, longer timeouts)')
            [CompletionResult]::new('--peer', '--peer', [CompletionResultType]::ParameterName, 'REST URL of a cluster peer (repeatable; QDRANT_PEERS: comma-separated); without it each peer is reached at its cluster host with the scheme and port of --url')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour (NO_COLOR is honoured with `auto`)')
            [CompletionResult]::new('--progress', '--progress', [CompletionResultType]::ParameterName, 'How to show progress: `auto` draws bars on a terminal; `none` never does; `json` writes JSON lines on stderr (phases, bytes done and total, warnings, then a summary) instead of the lines for a person, for a wrapper or a GUI. --json on stdout is unchanged')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON document on stdout (shape in the README, "JSON output")')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only warnings and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only warnings and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Show each HTTP request on stderr (method, path, status, bytes, duration); -vv adds headers (the API key always hidden), -vvv the HTTP library''s own messages')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Show each HTTP request on stderr (method, path, status, bytes, duration); -vv adds headers (the API key always hidden), -vvv the HTTP library''s own messages')
            [CompletionResult]::new('--no-progress', '--no-progress', [CompletionResultType]::ParameterName, 'Never draw progress bars (the same as --progress none)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'aimem;prune' {
            [CompletionResult]::new('--keep-last', '--keep-last', [CompletionResultType]::ParameterName, 'Keep the N most recent backups')
            [CompletionResult]::new('--keep-within', '--keep-within', [CompletionResultType]::ParameterName, 'Keep every backup taken within DURATION of the newest one (7d, 12h, 2w, 1d12h)')
            [CompletionResult]::new('--keep-daily', '--keep-daily', [CompletionResultType]::ParameterName, 'Keep the newest backup of each of the last N days that have backups')
            [CompletionResult]::new('--keep-weekly', '--keep-weekly', [CompletionResultType]::ParameterName, 'Keep the newest backup of each of the last N ISO weeks that have backups')
            [CompletionResult]::new('--pushgateway', '--pushgateway', [CompletionResultType]::ParameterName, 'Push how the run went to this Prometheus Pushgateway (job `aimem`): a URL, or host:port as AI Memory''s PUSHGATEWAY_URL holds it. One short try; a failure is a warning, never the run''s outcome')
            [CompletionResult]::new('--metrics-file', '--metrics-file', [CompletionResultType]::ParameterName, 'Write how the run went into this file, in Prometheus text format, for node_exporter''s textfile collector (the other operations'' series in it are kept)')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour (NO_COLOR is honoured with `auto`)')
            [CompletionResult]::new('--progress', '--progress', [CompletionResultType]::ParameterName, 'How to show progress: `auto` draws bars on a terminal; `none` never does; `json` writes JSON lines on stderr (phases, bytes done and total, warnings, then a summary) instead of the lines for a person, for a wrapper or a GUI. --json on stdout is unchanged')
            [CompletionResult]::new('--dry-run', '--dry-run', [CompletionResultType]::ParameterName, 'Show what would be kept and removed; change nothing')
            [CompletionResult]::new('--force', '--force', [CompletionResultType]::ParameterName, 'Delete even when no backup that is kept passes verification')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON document on stdout (shape in the README, "JSON output")')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only warnings and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only warnings and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Show each HTTP request on stderr (method, path, status, bytes, duration); -vv adds headers (the API key always hidden), -vvv the HTTP library''s own messages')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Show each HTTP request on stderr (method, path, status, bytes, duration); -vv adds headers (the API key always hidden), -vvv the HTTP library''s own messages')
            [CompletionResult]::new('--no-progress', '--no-progress', [CompletionResultType]::ParameterName, 'Never draw progress bars (the same as --progress none)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'aimem;completions' {
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour (NO_COLOR is honoured with `auto`)')
            [CompletionResult]::new('--progress', '--progress', [CompletionResultType]::ParameterName, 'How to show progress: `auto` draws bars on a terminal; `none` never does; `json` writes JSON lines on stderr (phases, bytes done and total, warnings, then a summary) instead of the lines for a person, for a wrapper or a GUI. --json on stdout is unchanged')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only warnings and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only warnings and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Show each HTTP request on stderr (method, path, status, bytes, duration); -vv adds headers (the API key always hidden), -vvv the HTTP library''s own messages')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Show each HTTP request on stderr (method, path, status, bytes, duration); -vv adds headers (the API key always hidden), -vvv the HTTP library''s own messages')
            [CompletionResult]::new('--no-progress', '--no-progress', [CompletionResultType]::ParameterName, 'Never draw progress bars (the same as --progress none)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'aimem;help' {
            [CompletionResult]::new('backup', 'backup', [CompletionResultType]::ParameterValue, 'Snapshot collections, config files and (optionally) logs into a new backup folder')
            [CompletionResult]::new('restore', 'restore', [CompletionResultType]::ParameterValue, 'Restore a backup: collections (with rollback on failure) and, optionally, config files')
            [CompletionResult]::new('verify', 'verify', [CompletionResultType]::ParameterValue, 'Check a backup offline: manifest, checksums, and each snapshot''s schema against it')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the backups in the backup root, newest first, with their state')
            [CompletionResult]::new('diff-schema', 'diff-schema', [CompletionResultType]::ParameterValue, 'Compare a backup''s schemas with the live collections, or two backups with each other')
            [CompletionResult]::new('prune', 'prune', [CompletionResultType]::ParameterValue, 'Delete old backups by a retention policy, never the last one that verifies')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script to stdout')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'aimem;help;backup' {
            break
        }
        'aimem;help;restore' {
            break
        }
        'aimem;help;verify' {
            break
        }
        'aimem;help;list' {
            break
        }
        'aimem;help;diff-schema' {
            break
        }
        'aimem;help;prune' {
            break
        }
        'aimem;help;completions' {
            break
        }
        'aimem;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
