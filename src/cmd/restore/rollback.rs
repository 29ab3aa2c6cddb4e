//! The end of a failed restore: the rollback, worded, and when it fails too, the commands that
//! put each collection back by hand.

use camino::Utf8Path;

use crate::engine::restore::rollback::{self, Copies, ShardCopies, Undo, Unrestored};
use crate::engine::restore::{act, recovery, report};
use crate::qdrant::{collection_path, encode_segment};
use crate::shell::{self, CommandLine};

use super::error::{RestoreError, Signal};

/// Replays the undo log after `cause`, and words the outcome.
pub(super) fn roll_back(
    cx: &act::Context,
    watch: &recovery::Watch,
    url: &str,
    undo: &mut Undo,
    cause: act::StepError,
    outcome: &mut Option<report::Rollback>,
) -> RestoreError {
    let touched = report::Rollback::before(undo);
    cx.ui.blank();
    if cause.is_prerestore() && undo.changed_nothing() {
        // Only the pre-restore snapshot itself is to clean up: the restore is refused before
        // any change, like any other refusal.
        undo.discard_saved(cx.client, cx.ui);
        return RestoreError::NotSaved {
            cause,
            signal: Signal::requested(cx.stop),
        };
    }
    cx.ui.warn(&format!("restore failed: {cause}"));
    for (collection, path) in undo.kept() {
        cx.ui
            .warn(&format!("pre-restore snapshot of `{collection}`: {path}"));
    }
    cx.ui.step("Rolling back...");
    let mut settle = |unclear: &rollback::Unclear| recovery::wait_until_recovered(watch, unclear);
    let rolled = undo.rollback(cx.client, cx.ui, &cx.stamp, &mut settle);
    let lines = |items: &[String]| {
        items
            .iter()
            .map(|d| format!("  {d}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let failure = match rolled.ok() {
        true => {
            let rolled_back = match rolled.done.is_empty() {
                true => "  nothing had been changed yet".to_string(),
                false => lines(&rolled.done),
            };
            RestoreError::RolledBack {
                rolled_back,
                cause,
                // A signal during the rollback counts too.
                signal: Signal::requested(cx.stop),
            }
        }
        false => {
            let mut failures = rolled
                .failed
                .iter()
                .map(|Unrestored { what, why }| format!("  {what}: {why}"))
                .collect::<Vec<_>>()
                .join("\n");
            if !rolled.done.is_empty() {
                failures.push_str(&format!("\nput back:\n{}", lines(&rolled.done)));
            }
            RestoreError::RollbackFailed {
                failures,
                recovery: recovery_help(url, undo),
                cause,
            }
        }
    };
    *outcome = Some(report::Rollback::of(&rolled, undo, touched));
    failure
}

/// Where each kept pre-restore snapshot is and the one command that puts it back.
///
/// Every command is built by [`CommandLine`] (names and paths shell-quoted, names
/// percent-encoded in URLs) and stands on a line of its own: the report is never wrapped.
fn recovery_help(shown_url: &str, undo: &Undo) -> String {
    // The URL as shown hides its credentials (`***@`): the commands leave them out and say how
    // to give them, rather than print a URL that cannot work.
    let peer_hides_credentials = undo.saved.iter().any(|saved| match &saved.copies {
        Copies::Shards(copies) => copies
            .shards
            .iter()
            .any(|shard| copies.holder_urls(shard).iter().any(|u| u.contains("***@"))),
        Copies::Collection { .. } => false,
    });
    let credentials_note = match shown_url.contains("***@") || peer_hides_credentials {
        true => {
            "The server's URL holds a user and password, left out of these commands: add \
             `-u USER:PASSWORD` to each.\n"
        }
        false => "",
    };
    let url = without_shown_credentials(shown_url);
    let url = url.as_str();
    let kept = undo.kept();
    let mut text = String::from(credentials_note);
    if !undo.unsettled.is_empty() {
        text.push_str(
            "Qdrant may still be recovering from the backup's upload; anything done before it ends is \
             undone by it. Wait until this prints 0 for each collection named:",
        );
        for unclear in &undo.unsettled {
            let gauge = format!(
                "snapshot_recovery_running{{id=\"{}\"}}",
                prometheus_label(&unclear.collection)
            );
            let command = curl(None)
                .arg(&format!("{url}/metrics"))
                .pipe(CommandLine::new("grep").arg("-F").arg(&gauge));
            text.push_str(&format!("\n  {command}"));
        }
        text.push_str("\nthen:");
        for unclear in &undo.unsettled {
            let c = &unclear.collection;
            if undo.created.contains(c) {
                let command = curl(Some("DELETE")).arg(&format!("{url}{}", collection_path(c, "")));
                text.push_str(&format!(
                    "\n  delete `{c}`, which this restore created:\n    {command}"
                ));
            }
            let command = curl(Some("DELETE")).arg(&format!(
                "{url}{}",
                collection_path(
                    c,
                    &format!("/snapshots/{}", encode_segment(&unclear.upload))
                )
            ));
            text.push_str(&format!(
                "\n  delete the uploaded copy of `{c}`:\n    {command}"
            ));
        }
        if !kept.is_empty() {
            text.push('\n');
        }
    }
    if kept.is_empty() {
        if text.is_empty() {
            return "No existing collection had been touched; check the collections named above by hand."
                .to_string();
        }
        return text;
    }
    text.push_str(
        "The pre-restore snapshots are kept (aimem will not delete them). To put a collection back as it was, run:",
    );
    for saved in &undo.saved {
        match &saved.copies {
            Copies::Collection { local, .. } => {
                text.push_str(&put_back_collection(url, &saved.collection, local));
            }
            Copies::Shards(copies) => {
                text.push_str(&put_back_shards(&saved.collection, copies));
            }
        }
    }
    text
}

/// The command that puts a collection back from its pre-restore snapshot `path`.
fn put_back_collection(url: &str, collection: &str, path: &Utf8Path) -> String {
    let command = curl(Some("POST"))
        .arg("-F")
        .arg(&shell::curl_form_file("snapshot", path.as_str()))
        .arg(&format!(
            "{url}{}",
            collection_path(collection, "/snapshots/upload?wait=true&priority=snapshot")
        ));
    format!("\n  {collection} ({path}):\n    {command}")
}

/// The commands that put a cluster collection back shard by shard, each shard's copy onto
/// every replica (priority=no_sync, as the restore itself does: see replicas.rs).
fn put_back_shards(collection: &str, copies: &ShardCopies) -> String {
    let mut text = String::new();
    for shard in &copies.shards {
        let path = &shard.local;
        text.push_str(&format!(
            "\n  {collection} shard {} ({path}), on every peer that holds it:",
            shard.shard_id
        ));
        for peer in copies.holder_urls(shard) {
            let peer = without_shown_credentials(peer);
            let command = curl(Some("POST"))
                .arg("-F")
                .arg(&shell::curl_form_file("snapshot", path.as_str()))
                .arg(&format!(
                    "{peer}{}",
                    collection_path(
                        collection,
                        &format!(
                            "/shards/{}/snapshots/upload?wait=true&priority=no_sync",
                            shard.shard_id
                        )
                    )
                ));
            text.push_str(&format!("\n    {command}"));
        }
    }
    text
}

/// A URL as shown (credentials as `***@`) without them: the commands say to add `-u`.
fn without_shown_credentials(shown: &str) -> String {
    match shown.split_once("***@") {
        Some((scheme, host)) => format!("{scheme}{host}"),
        None => shown.to_string(),
    }
}

/// `curl -fsS` with the API key header (expanded by the shell from the environment, so the
/// key itself is never printed).
fn curl(method: Option<&str>) -> CommandLine {
    let command = CommandLine::new("curl").arg("-fsS");
    let command = match method {
        Some(method) => command.arg("-X").arg(method),
        None => command,
    };
    command.raw("-H \"api-key: $QDRANT_API_KEY\"")
}

/// A label value as Prometheus' text format writes it (`\`, `"` and line breaks escaped).
fn prometheus_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::restore::rollback::Unclear;

    #[test]
    fn recovery_commands_leave_hidden_credentials_out_and_say_so() {
        let undo = Undo {
            created: vec!["github".into()],
            unsettled: vec![Unclear {
                collection: "github".into(),
                upload: "aimem-restore-github.snapshot".into(),
                size: 1,
            }],
            ..Undo::default()
        };
        let text = recovery_help("http://***@qdrant.example:6333", &undo);
        assert!(!text.contains("***"), "{text}");
        assert!(
            text.contains("http://qdrant.example:6333/metrics"),
            "{text}"
        );
        assert!(text.contains("-u USER:PASSWORD"), "{text}");
        let plain = recovery_help("http://qdrant.example:6333", &undo);
        assert!(!plain.contains("USER:PASSWORD"), "{plain}");
    }
}
