//! One collection's snapshot: create it on the server, stream it to disk while hashing,
//! check it against what Qdrant reported, and delete the server's copy.

use std::io::Write;
use std::time::Duration;

use camino::Utf8Path;
use indicatif::ProgressBar;

use crate::manifest::checksums::HashingWriter;
use crate::qdrant::{Cancelled, Client, QdrantError, SnapshotDescription};
use crate::signals::StopFlag;
use crate::ui::Ui;

/// A snapshot safely on disk.
#[derive(Debug, Clone)]
pub struct Downloaded {
    pub sha256: String,
    pub size: u64,
}

/// Why one download attempt failed.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum DownloadError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Qdrant(#[from] QdrantError),

    #[error("the downloaded snapshot does not match what Qdrant reported: {detail}")]
    #[diagnostic(
        code(aimem::backup::mismatch),
        help(
            "The file was damaged in transit or on the server. Run the backup again (--retry N re-attempts the download)."
        )
    )]
    Mismatch { detail: String },

    #[error("cannot write the snapshot to {path}: {source}")]
    #[diagnostic(
        code(aimem::backup::write),
        help("Check that the backup folder is writable and its disk is not full.")
    )]
    Write {
        path: String,
        source: std::io::Error,
    },
}

impl DownloadError {
    /// Worth another attempt: the network or the server had a bad moment.
    pub fn is_transient(&self) -> bool {
        match self {
            DownloadError::Mismatch { .. } => true,
            DownloadError::Write { .. } => false,
            DownloadError::Qdrant(e) => match e {
                QdrantError::Transport { .. } | QdrantError::Timeout { .. } => true,
                QdrantError::Api { status, .. } => {
                    *status >= 500 || *status == 429 || *status == 408
                }
                _ => false,
            },
        }
    }
}

/// Downloads `snapshot` of `collection` into `target`, retrying `retries` times.
///
/// Every attempt writes a fresh hidden temporary file next to `target`, so partial data from
/// a failed attempt is discarded; only a complete, verified file is renamed to `target`.
pub fn download_verified(
    client: &Client,
    collection: &str,
    snapshot: &SnapshotDescription,
    target: &Utf8Path,
    retries: u32,
    ui: &Ui,
    stop: &StopFlag,
) -> Result<Downloaded, DownloadError> {
    let mut attempt = 0;
    loop {
        match download_once(client, collection, snapshot, target, ui, stop) {
            Ok(done) => return Ok(done),
            Err(e) if attempt < retries && e.is_transient() && stop.requested().is_none() => {
                attempt += 1;
                ui.warn(&format!(
                    "download failed ({e}); retry {attempt} of {retries}"
                ));
                std::thread::sleep(backoff(attempt));
            }
            Err(e) => return Err(e),
        }
    }
}

/// 0.5 s, 1 s, 2 s … capped at 10 s between attempts.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1 << attempt.saturating_sub(1).min(5)))
        .min(Duration::from_secs(10))
}

fn download_once(
    client: &Client,
    collection: &str,
    snapshot: &SnapshotDescription,
    target: &Utf8Path,
    ui: &Ui,
    stop: &StopFlag,
) -> Result<Downloaded, DownloadError> {
    let dir = target.parent().unwrap_or(Utf8Path::new("."));
    let write_error = |source| DownloadError::Write {
        path: target.to_string(),
        source,
    };
    let partial = tempfile::Builder::new()
        .prefix(".partial-")
        .suffix(".snapshot")
        .tempfile_in(dir)
        .map_err(write_error)?;
    let bar = ui.transfer_bar(snapshot.size);
    let mut sink = Sink {
        inner: HashingWriter::new(partial.as_file()),
        bar: &bar,
        stop,
    };
    let result = client.download_snapshot(collection, &snapshot.name, &mut sink);
    bar.finish_and_clear();
    result?;
    let (sha256, size, _) = sink.inner.finish();
    if let Some(expected) = snapshot.size.filter(|&s| s != size) {
        return Err(DownloadError::Mismatch {
            detail: format!("Qdrant reported {expected} bytes, {size} arrived"),
        });
    }
    if let Some(expected) = snapshot
        .checksum
        .as_deref()
        .filter(|c| !c.eq_ignore_ascii_case(&sha256))
    {
        return Err(DownloadError::Mismatch {
            detail: format!("Qdrant reported SHA-256 {expected}, the file has {sha256}"),
        });
    }
    partial.as_file().sync_all().map_err(write_error)?;
    partial.persist(target).map_err(|e| write_error(e.error))?;
    Ok(Downloaded { sha256, size })
}

/// Where downloaded bytes go: the hashing file writer, the progress bar, and a stop check
/// (a signal turns the next write into [`Cancelled`], which ends the transfer).
struct Sink<'a, W: Write> {
    inner: HashingWriter<W>,
    bar: &'a ProgressBar,
    stop: &'a StopFlag,
}

impl<W: Write> Write for Sink<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.stop.requested().is_some() {
            return Err(Cancelled::io());
        }
        let n = self.inner.write(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(2));
        assert_eq!(backoff(30), Duration::from_secs(10));
    }
}
