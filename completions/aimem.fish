# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_aimem_global_optspecs
    string join \n color= q/quiet v/verbose no-progress progress= h/help V/version
end

function __fish_aimem_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_aimem_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_aimem_using_subcommand
    set -l cmd (__fish_aimem_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c aimem -n "__fish_aimem_needs_command" -l color -d 'When to use colour (NO_COLOR is honoured with `auto`)' -r -f -a "auto\t''
always\t''
never\t''"
complete -c aimem -n "__fish_aimem_needs_command" -l progress -d 'How to show progress: `auto` draws bars on a terminal; `none` never does; `json` writes JSON lines on stderr (phases, bytes done and total, warnings, then a summary) instead of the lines for a person, for a wrapper or a GUI. --json on stdout is unchanged' -r -f -a "auto\t''
none\t''
json\t''"
complete -c aimem -n "__fish_aimem_needs_command" -s q -l quiet -d 'Print only warnings and errors'
complete -c aimem -n "__fish_aimem_needs_command" -s v -l verbose -d 'Show each HTTP request on stderr (method, path, status, bytes, duration); -vv adds headers (the API key always hidden), -vvv the HTTP library\'s own messages'
complete -c aimem -n "__fish_aimem_needs_command" -l no-progress -d 'Never draw progress bars (the same as --progress none)'
complete -c aimem -n "__fish_aimem_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c aimem -n "__fish_aimem_needs_command" -s V -l version -d 'Print version'
complete -c aimem -n "__fish_aimem_needs_command" -f -a "backup" -d 'Snapshot collections, config files and (optionally) logs into a new backup folder'
complete -c aimem -n "__fish_aimem_needs_command" -f -a "restore" -d 'Restore a backup: collections (with rollback on failure) and, optionally, config files'
complete -c aimem -n "__fish_aimem_needs_command" -f -a "verify" -d 'Check a backup offline: manifest, checksums, and each snapshot\'s schema against it'
complete -c aimem -n "__fish_aimem_needs_command" -f -a "list" -d 'List the backups in the backup root, newest first, with their state'
complete -c aimem -n "__fish_aimem_needs_command" -f -a "diff-schema" -d 'Compare a backup\'s schemas with the live collections, or two backups with each other'
complete -c aimem -n "__fish_aimem_needs_command" -f -a "prune" -d 'Delete old backups by a retention policy, never the last one that verifies'
complete -c aimem -n "__fish_aimem_needs_command" -f -a "completions" -d 'Print a shell completion script to stdout'
complete -c aimem -n "__fish_aimem_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c aimem -n "__fish_aimem_using_subcommand backup" -l url -d 'Qdrant\'s full URL (http or https, optionally with USER:PASSWORD@, a `/`, `?`, `#` or `%` in them percent-encoded); overrides --host and --port' -r -f
complete -c aimem -n "__fish_aimem_using_subcommand backup" -l host -d 'Qdrant host name or IP address (no user info, scheme, path or port)' -r -f -a "(__fish_print_hostnames)"
complete -c aimem -n "__fish_aimem_using_subcommand backup" -l port -d 'Qdrant REST port' -r -f
complete -c aimem -n "__fish_aimem_using_subcommand backup" -l request-timeout -d 'Seconds to wait for Qdrant\'s answer to an ordinary API call (snapshot creation, transfers and recovery have their own, longer timeouts)' -r -f
complete -c aimem -n "__fish_aimem_using_subcommand backup" -s o -l output -d 'Folder that holds the backups; each backup is a dated folder inside it. An `s3://bucket/prefix` puts them in S3-compatible object storage instead (credentials and endpoint from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL, AWS_REGION or AWS_PROFILE)' -r -f -a "(__fish_complete_directories)"
complete -c aimem -n "__fish_aimem_using_subcommand backup" -l collection -d 'Back up only this collection (repeatable). It must exist on the server' -r -f
complete -c aimem -n "__fish_aimem_using_subcommand backup" -l retry -d 'Re-attempt a failed snapshot transfer N times: a stored snapshot\'s download resumes where it broke, a streamed shard snapshot starts again from its first byte' -r -f
complete -c aimem -n "__fish_aimem_using_subcommand backup" -l format -d 'What to back up of each collection: `snapshot`, Qdrant\'s own snapshots (restorable into the same Qdrant version or the next minor one, in the same shard layout), or `logical`, its points in Parquet files with its definition (restorable into any Qdrant from 1.16 on and any shard layout, readable without aimem; docs/logical-format.md)' -r -f -a "snapshot\t''
logical\t''"
complete -c aimem -n "__fish_aimem_using_subcommand backup" -l version -d 'The AI Memory version to record [default: <install>/version.txt, else "unknown"]' -r -f
complete -c aimem -n "__fish_aimem_using_subcommand backup" -l install-dir -d 'AI Memory\'s install folder (config files, logs, version.txt) [default: ~/.ai-memory]' -r -f -a "(__fish_complete_directories)"
complete -c aimem -n "__fish_aimem_using_subcommand backup" -l peer -d 'REST URL of a cluster peer (repeatable; QDRANT_PEERS: comma-separated); without it each peer is reached at its cluster host with the scheme and port of --url' -r -f
complete -c aimem -n "__fish_aimem_using_subcommand backup" -l recipient -d 'An age public key (age1...) to encrypt to, instead of a passphrase; repeatable. Its identity file opens the backup (with --identity, or with the age tool)' -r -f
complete -c aimem -n "__fish_aimem_using_subcommand backup" -l recipients-file -d 'A file of age public keys to encrypt to, one per line (`#` starts a comment)' -r -F
complete -c aimem -n "__fish_aimem_using_subcommand backup" -l create-timeout -d 'Seconds to wait for Qdrant to build a snapshot' -r -f
complete -c aimem -n "__fish_aimem_using_subcommand backup" -l download-timeout -d 'Seconds a snapshot download may stall; one that keeps moving is never cut off' -r -f
complete -c aimem -n "__fish_aimem_using_subcommand backup" -l pushgateway -d 'Push how the run went to this Prometheus Pushgateway (job `aimem`): a URL, or host:port as AI Memory\'s PUSHGATEWAY_URL holds it. One short try; a failure is a warning, never the run\'s outcome' -r -f
complete -c aimem -n "__fish_aimem_using_subcommand backup" -l metrics-file -d 'Write how the run went into this file, in Prometheus text format, for node_exporter\'s textfile collector (the other operations\' series in it are kept)' -r -F
complete -c aimem -n "__fish_aimem_using_subcommand backup" -l jobs -d 'Collections backed up at the same time (while Qdrant builds one snapshot, another is downloaded); 1 backs them up one after another' -r -f
complete -c aimem -n "__fish_aimem_using_subcommand backup" -l color -d 'When to use colour (NO_COLOR is honoured with `auto`)' -r -f -a "auto\t''
always\t''
never\t''"
complete -c aimem -n "__fish_aimem_using_subcommand backup" -l progress -d 'How to show progress: `auto` draws bars on a terminal; `none` never does; `json` writes JSON lines on stderr (phases, bytes done and total, warnings, then a summary) instead of the lines for a person, for a wrapper or a GUI. --json on stdout is unchanged' -r -f -a "auto\t''
none\t''
json\t''"
complete -c aimem -n "__fish_aimem_using_subcommand backup" -l all -d 'Back up every collection on the server, not only AI Memory\'s five'
complete -c aimem -n "__fish_aimem_using_subcommand backup" -l include-logs -d 'Also copy the log files from <install>/logs'
complete -c aimem -n "__fish_aimem_using_subcommand backup" -l no-stream -d 'Have Qdrant build each snapshot on its disk and download it from there (resumable, deleted after), instead of streaming each shard\'s snapshot with nothing stored'
complete -c aimem -n "__fish_aimem_using_subcommand backup" -l encrypt -d 'Encrypt every file of the backup except its manifest and checksum list, with age: to the passphrase in AIMEM_PASSPHRASE (or the file AIMEM_PASSPHRASE_FILE names), or to the --recipient keys'
complete -c aimem -n "__fish_aimem_using_subcommand backup" -l json -d 'Print one JSON document on stdout instead of the folder\'s path (shape in the README, "JSON output")'
complete -c aimem -n "__fish_aimem_using_subcommand backup" -s q -l quiet -d 'Print only warnings and errors'
complete -c aimem -n "__fish_aimem_using_subcommand backup" -s v -l verbose -d 'Show each HTTP request on stderr (method, path, status, bytes, duration); -vv adds headers (the API key always hidden), -vvv the HTTP library\'s own messages'
complete -c aimem -n "__fish_aimem_using_subcommand backup" -l no-progress -d 'Never draw progress bars (the same as --progress none)'
complete -c aimem -n "__fish_aimem_using_subcommand backup" -s h -l help -d 'Print help'
complete -c aimem -n "__fish_aimem_using_subcommand restore" -l url -d 'Qdrant\'s full URL (http or https, optionally with USER:PASSWORD@, a `/`, `?`, `#` or `%` in them percent-encoded); overrides --host and --port' -r -f
complete -c aimem -n "__fish_aimem_using_subcommand restore" -l host -d 'Qdrant host name or IP address (no user info, scheme, path or port)' -r -f -a "(__fish_print_hostnames)"
complete -c aimem -n "__fish_aimem_using_subcommand restore" -l port -d 'Qdrant REST port' -r -f
complete -c aimem -n "__fish_aimem_using_subcommand restore" -l request-timeout -d 'Seconds to wait for Qdrant\'s answer to an ordinary API call (snapshot creation, transfers and recovery have their own, longer timeouts)' -r -f
complete -c aimem -n "__fish_aimem_using_subcommand restore" -l peer -d 'REST URL of a cluster peer (repeatable; QDRANT_PEERS: comma-separated); without it each peer is reached at its cluster host with the scheme and port of --url' -r -f
complete -c aimem -n "__fish_aimem_using_subcommand restore" -l identity -d 'An age identity file (AGE-SECRET-KEY-1... lines, as age-keygen writes) that opens a backup encrypted to recipients; repeatable. A backup encrypted with a passphrase is opened with AIMEM_PASSPHRASE or AIMEM_PASSPHRASE_FILE, or the passphrase typed on a terminal' -r -F
complete -c aimem -n "__fish_aimem_using_subcommand restore" -l collection -d 'Restore only this collection of the backup' -r -f
complete -c aimem -n "__fish_aimem_using_subcommand restore" -l target-name -d 'Restore the collection into this name instead, leaving the original untouched' -r -f
complete -c aimem -n "__fish_aimem_using_subcommand restore" -l filter -d 'Merge into the live collection only the backed-up points that match this Qdrant filter (JSON, Qdrant\'s syntax), as they were at backup time; nothing else of the collection changes. Needs --collection; with --dry-run, says how many points would be merged' -r -f
complete -c aimem -n "__fish_aimem_using_subcommand restore" -l shard-number -d 'Logical backups: the number of shards of each collection created [default: as recorded]. A snapshot backup\'s layout cannot change' -r -f
complete -c aimem -n "__fish_aimem_using_subcommand restore" -l replication-factor -d 'Logical backups: the replicas of each shard of each collection created on a cluster [default: as recorded, at most one per peer]' -r -f
complete -c aimem -n "__fish_aimem_using_subcommand restore" -l install-dir -d 'AI Memory\'s install folder (config files, logs, version.txt) [default: ~/.ai-memory]' -r -f -a "(__fish_complete_directories)"
complete -c aimem -n "__fish_aimem_using_subcommand restore" -l upload-timeout -d 'Seconds an upload may stall; one that keeps moving is never cut off' -r -f
complete -c aimem -n "__fish_aimem_using_subcommand restore" -l recovery-timeout -d 'Seconds Qdrant may take to recover one collection: the wait for an upload\'s answer, and after an upload whose outcome is unknown, the wait for Qdrant to finish before rolling back; in a cluster, also each wait for every replica to settle (before the uploads, before the checks after them, and the same in a rollback)' -r -f
complete -c aimem -n "__fish_aimem_using_subcommand restore" -l pushgateway -d 'Push how the run went to this Prometheus Pushgateway (job `aimem`): a URL, or host:port as AI Memory\'s PUSHGATEWAY_URL holds it. One short try; a failure is a warning, never the run\'s outcome' -r -f
complete -c aimem -n "__fish_aimem_using_subcommand restore" -l metrics-file -d 'Write how the run went into this file, in Prometheus text format, for node_exporter\'s textfile collector (the other operations\' series in it are kept)' -r -F
complete -c aimem -n "__fish_aimem_using_subcommand restore" -l jobs -d 'Collections restored at the same time (while Qdrant recovers one upload, the next is sent); 1 restores them one after another' -r -f
complete -c aimem -n "__fish_aimem_using_subcommand restore" -l color -d 'When to use colour (NO_COLOR is honoured with `auto`)' -r -f -a "auto\t''
always\t''
never\t''"
complete -c aimem -n "__fish_aimem_using_subcommand restore" -l progress -d 'How to show progress: `auto` draws bars on a terminal; `none` never does; `json` writes JSON lines on stderr (phases, bytes done and total, warnings, then a summary) instead of the lines for a person, for a wrapper or a GUI. --json on stdout is unchanged' -r -f -a "auto\t''
none\t''
json\t''"
complete -c aimem -n "__fish_aimem_using_subcommand restore" -l force -d 'Overwrite existing collections and config files without asking'
complete -c aimem -n "__fish_aimem_using_subcommand restore" -l restore-config -d 'Also write back settings.json, .env, docker/.env and docker/.env.secrets'
complete -c aimem -n "__fish_aimem_using_subcommand restore" -l dry-run -d 'Check everything and print the plan; change nothing'
complete -c aimem -n "__fish_aimem_using_subcommand restore" -l skip-checksum-verify -d 'Do not verify CHECKSUMS.sha256 before uploading (config files are still verified)'
complete -c aimem -n "__fish_aimem_using_subcommand restore" -l allow-version-skew -d 'Restore even when the server\'s Qdrant is older, or over one minor newer, than the backup\'s'
complete -c aimem -n "__fish_aimem_using_subcommand restore" -l allow-unknown-settings -d 'Logical backups: restore even when the server does not know a setting the backup recorded (it is left out, with a warning)'
complete -c aimem -n "__fish_aimem_using_subcommand restore" -l json -d 'Print one JSON document on stdout: the plan and what each collection ended as (shape in the README, "JSON output")'
complete -c aimem -n "__fish_aimem_using_subcommand restore" -s q -l quiet -d 'Print only warnings and errors'
complete -c aimem -n "__fish_aimem_using_subcommand restore" -s v -l verbose -d 'Show each HTTP request on stderr (method, path, status, bytes, duration); -vv adds headers (the API key always hidden), -vvv the HTTP library\'s own messages'
complete -c aimem -n "__fish_aimem_using_subcommand restore" -l no-progress -d 'Never draw progress bars (the same as --progress none)'
complete -c aimem -n "__fish_aimem_using_subcommand restore" -s h -l help -d 'Print help'
complete -c aimem -n "__fish_aimem_using_subcommand verify" -l pushgateway -d 'Push how the run went to this Prometheus Pushgateway (job `aimem`): a URL, or host:port as AI Memory\'s PUSHGATEWAY_URL holds it. One short try; a failure is a warning, never the run\'s outcome' -r -f
complete -c aimem -n "__fish_aimem_using_subcommand verify" -l metrics-file -d 'Write how the run went into this file, in Prometheus text format, for node_exporter\'s textfile collector (the other operations\' series in it are kept)' -r -F
complete -c aimem -n "__fish_aimem_using_subcommand verify" -l identity -d 'An age identity file (AGE-SECRET-KEY-1... lines, as age-keygen writes) that opens a backup encrypted to recipients; repeatable. A backup encrypted with a passphrase is opened with AIMEM_PASSPHRASE or AIMEM_PASSPHRASE_FILE, or the passphrase typed on a terminal' -r -F
complete -c aimem -n "__fish_aimem_using_subcommand verify" -l color -d 'When to use colour (NO_COLOR is honoured with `auto`)' -r -f -a "auto\t''
always\t''
never\t''"
complete -c aimem -n "__fish_aimem_using_subcommand verify" -l progress -d 'How to show progress: `auto` draws bars on a terminal; `none` never does; `json` writes JSON lines on stderr (phases, bytes done and total, warnings, then a summary) instead of the lines for a person, for a wrapper or a GUI. --json on stdout is unchanged' -r -f -a "auto\t''
none\t''
json\t''"
complete -c aimem -n "__fish_aimem_using_subcommand verify" -l no-deep -d 'Check files only: do not read each snapshot\'s schema from inside its archive, nor decode a logical backup\'s points files'
complete -c aimem -n "__fish_aimem_using_subcommand verify" -l json -d 'Print one JSON document on stdout (shape in the README, "JSON output")'
complete -c aimem -n "__fish_aimem_using_subcommand verify" -s q -l quiet -d 'Print only warnings and errors'
complete -c aimem -n "__fish_aimem_using_subcommand verify" -s v -l verbose -d 'Show each HTTP request on stderr (method, path, status, bytes, duration); -vv adds headers (the API key always hidden), -vvv the HTTP library\'s own messages'
complete -c aimem -n "__fish_aimem_using_subcommand verify" -l no-progress -d 'Never draw progress bars (the same as --progress none)'
complete -c aimem -n "__fish_aimem_using_subcommand verify" -s h -l help -d 'Print help'
complete -c aimem -n "__fish_aimem_using_subcommand list" -l color -d 'When to use colour (NO_COLOR is honoured with `auto`)' -r -f -a "auto\t''
always\t''
never\t''"
complete -c aimem -n "__fish_aimem_using_subcommand list" -l progress -d 'How to show progress: `auto` draws bars on a terminal; `none` never does; `json` writes JSON lines on stderr (phases, bytes done and total, warnings, then a summary) instead of the lines for a person, for a wrapper or a GUI. --json on stdout is unchanged' -r -f -a "auto\t''
none\t''
json\t''"
complete -c aimem -n "__fish_aimem_using_subcommand list" -l verify -d 'Also verify each complete backup (checksums and snapshot schemas) and show the result'
complete -c aimem -n "__fish_aimem_using_subcommand list" -l json -d 'Print one JSON document on stdout (shape in the README, "JSON output")'
complete -c aimem -n "__fish_aimem_using_subcommand list" -s q -l quiet -d 'Print only warnings and errors'
complete -c aimem -n "__fish_aimem_using_subcommand list" -s v -l verbose -d 'Show each HTTP request on stderr (method, path, status, bytes, duration); -vv adds headers (the API key always hidden), -vvv the HTTP library\'s own messages'
complete -c aimem -n "__fish_aimem_using_subcommand list" -l no-progress -d 'Never draw progress bars (the same as --progress none)'
complete -c aimem -n "__fish_aimem_using_subcommand list" -s h -l help -d 'Print help'
complete -c aimem -n "__fish_aimem_using_subcommand diff-schema" -l collection -d 'Compare only this collection' -r -f
complete -c aimem -n "__fish_aimem_using_subcommand diff-schema" -l url -d 'Qdrant\'s full URL (http or https, optionally with USER:PASSWORD@, a `/`, `?`, `#` or `%` in them percent-encoded); overrides --host and --port' -r -f
complete -c aimem -n "__fish_aimem_using_subcommand diff-schema" -l host -d 'Qdrant host name or IP address (no user info, scheme, path or port)' -r -f -a "(__fish_print_hostnames)"
complete -c aimem -n "__fish_aimem_using_subcommand diff-schema" -l port -d 'Qdrant REST port' -r -f
complete -c aimem -n "__fish_aimem_using_subcommand diff-schema" -l request-timeout -d 'Seconds to wait for Qdrant\'s answer to an ordinary API call (snapshot creation, transfers and recovery have their own, longer timeouts)' -r -f
complete -c aimem -n "__fish_aimem_using_subcommand diff-schema" -l peer -d 'REST URL of a cluster peer (repeatable; QDRANT_PEERS: comma-separated); without it each peer is reached at its cluster host with the scheme and port of --url' -r -f
complete -c aimem -n "__fish_aimem_using_subcommand diff-schema" -l color -d 'When to use colour (NO_COLOR is honoured with `auto`)' -r -f -a "auto\t''
always\t''
never\t''"
complete -c aimem -n "__fish_aimem_using_subcommand diff-schema" -l progress -d 'How to show progress: `auto` draws bars on a terminal; `none` never does; `json` writes JSON lines on stderr (phases, bytes done and total, warnings, then a summary) instead of the lines for a person, for a wrapper or a GUI. --json on stdout is unchanged' -r -f -a "auto\t''
none\t''
json\t''"
complete -c aimem -n "__fish_aimem_using_subcommand diff-schema" -l json -d 'Print one JSON document on stdout (shape in the README, "JSON output")'
complete -c aimem -n "__fish_aimem_using_subcommand diff-schema" -s q -l quiet -d 'Print only warnings and errors'
complete -c aimem -n "__fish_aimem_using_subcommand diff-schema" -s v -l verbose -d 'Show each HTTP request on stderr (method, path, status, bytes, duration); -vv adds headers (the API key always hidden), -vvv the HTTP library\'s own messages'
complete -c aimem -n "__fish_aimem_using_subcommand diff-schema" -l no-progress -d 'Never draw progress bars (the same as --progress none)'
complete -c aimem -n "__fish_aimem_using_subcommand diff-schema" -s h -l help -d 'Print help'
complete -c aimem -n "__fish_aimem_using_subcommand prune" -l keep-last -d 'Keep the N most recent backups' -r -f
complete -c aimem -n "__fish_aimem_using_subcommand prune" -l keep-within -d 'Keep every backup taken within DURATION of the newest one (7d, 12h, 2w, 1d12h)' -r -f
complete -c aimem -n "__fish_aimem_using_subcommand prune" -l keep-daily -d 'Keep the newest backup of each of the last N days that have backups' -r -f
complete -c aimem -n "__fish_aimem_using_subcommand prune" -l keep-weekly -d 'Keep the newest backup of each of the last N ISO weeks that have backups' -r -f
complete -c aimem -n "__fish_aimem_using_subcommand prune" -l pushgateway -d 'Push how the run went to this Prometheus Pushgateway (job `aimem`): a URL, or host:port as AI Memory\'s PUSHGATEWAY_URL holds it. One short try; a failure is a warning, never the run\'s outcome' -r -f
complete -c aimem -n "__fish_aimem_using_subcommand prune" -l metrics-file -d 'Write how the run went into this file, in Prometheus text format, for node_exporter\'s textfile collector (the other operations\' series in it are kept)' -r -F
complete -c aimem -n "__fish_aimem_using_subcommand prune" -l color -d 'When to use colour (NO_COLOR is honoured with `auto`)' -r -f -a "auto\t''
always\t''
never\t''"
complete -c aimem -n "__fish_aimem_using_subcommand prune" -l progress -d 'How to show progress: `auto` draws bars on a terminal; `none` never does; `json` writes JSON lines on stderr (phases, bytes done and total, warnings, then a summary) instead of the lines for a person, for a wrapper or a GUI. --json on stdout is unchanged' -r -f -a "auto\t''
none\t''
json\t''"
complete -c aimem -n "__fish_aimem_using_subcommand prune" -l dry-run -d 'Show what would be kept and removed; change nothing'
complete -c aimem -n "__fish_aimem_using_subcommand prune" -l force -d 'Delete even when no backup that is kept passes verification'
complete -c aimem -n "__fish_aimem_using_subcommand prune" -l json -d 'Print one JSON document on stdout (shape in the README, "JSON output")'
complete -c aimem -n "__fish_aimem_using_subcommand prune" -s q -l quiet -d 'Print only warnings and errors'
complete -c aimem -n "__fish_aimem_using_subcommand prune" -s v -l verbose -d 'Show each HTTP request on stderr (method, path, status, bytes, duration); -vv adds headers (the API key always hidden), -vvv the HTTP library\'s own messages'
complete -c aimem -n "__fish_aimem_using_subcommand prune" -l no-progress -d 'Never draw progress bars (the same as --progress none)'
complete -c aimem -n "__fish_aimem_using_subcommand prune" -s h -l help -d 'Print help'
complete -c aimem -n "__fish_aimem_using_subcommand completions" -l color -d 'When to use colour (NO_COLOR is honoured with `auto`)' -r -f -a "auto\t''
always\t''
never\t''"
complete -c aimem -n "__fish_aimem_using_subcommand completions" -l progress -d 'How to show progress: `auto` draws bars on a terminal; `none` never does; `json` writes JSON lines on stderr (phases, bytes done and total, warnings, then a summary) instead of the lines for a person, for a wrapper or a GUI. --json on stdout is unchanged' -r -f -a "auto\t''
none\t''
json\t''"
complete -c aimem -n "__fish_aimem_using_subcommand completions" -s q -l quiet -d 'Print only warnings and errors'
complete -c aimem -n "__fish_aimem_using_subcommand completions" -s v -l verbose -d 'Show each HTTP request on stderr (method, path, status, bytes, duration); -vv adds headers (the API key always hidden), -vvv the HTTP library\'s own messages'
complete -c aimem -n "__fish_aimem_using_subcommand completions" -l no-progress -d 'Never draw progress bars (the same as --progress none)'
complete -c aimem -n "__fish_aimem_using_subcommand completions" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c aimem -n "__fish_aimem_using_subcommand help; and not __fish_seen_subcommand_from backup restore verify list diff-schema prune completions help" -f -a "backup" -d 'Snapshot collections, config files and (optionally) logs into a new backup folder'
complete -c aimem -n "__fish_aimem_using_subcommand help; and not __fish_seen_subcommand_from backup restore verify list diff-schema prune completions help" -f -a "restore" -d 'Restore a backup: collections (with rollback on failure) and, optionally, config files'
complete -c aimem -n "__fish_aimem_using_subcommand help; and not __fish_seen_subcommand_from backup restore verify list diff-schema prune completions help" -f -a "verify" -d 'Check a backup offline: manifest, checksums, and each snapshot\'s schema against it'
complete -c aimem -n "__fish_aimem_using_subcommand help; and not __fish_seen_subcommand_from backup restore verify list diff-schema prune completions help" -f -a "list" -d 'List the backups in the backup root, newest first, with their state'
complete -c aimem -n "__fish_aimem_using_subcommand help; and not __fish_seen_subcommand_from backup restore verify list diff-schema prune completions help" -f -a "diff-schema" -d 'Compare a backup\'s schemas with the live collections, or two backups with each other'
complete -c aimem -n "__fish_aimem_using_subcommand help; and not __fish_seen_subcommand_from backup restore verify list diff-schema prune completions help" -f -a "prune" -d 'Delete old backups by a retention policy, never the last one that verifies'
complete -c aimem -n "__fish_aimem_using_subcommand help; and not __fish_seen_subcommand_from backup restore verify list diff-schema prune completions help" -f -a "completions" -d 'Print a shell completion script to stdout'
complete -c aimem -n "__fish_aimem_using_subcommand help; and not __fish_seen_subcommand_from backup restore verify list diff-schema prune completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
