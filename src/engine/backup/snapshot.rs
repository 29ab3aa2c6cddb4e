//! One site's snapshot download: stream it to disk while hashing, resuming a broken
//! transfer, and check it against what Qdrant reported.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use camino::Utf8Path;

use super::dest::Dest;
use super::resume::{KeptPrefix, Partial};
use super::site::Site;
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

    #[error(
        "Qdrant announced {announced} bytes for snapshot {snapshot} and sent more than the {limit} aimem accepts: the download was stopped"
    )]
    #[diagnostic(
        code(aimem::backup::oversized),
        help(
            "Qdrant sends exactly the size it reports. Something else may be answering at this address (a proxy, \
             another server): check --url / QDRANT_URL."
        )
    )]
    Oversized {
        snapshot: String,
        announced: u64,
        limit: u64,
    },

    /// The server answered the first request for a shard's stream with a 404 that is not
    /// about the shard or its collection: it has no such endpoint (releases before it).
    #[error("the server does not stream shard snapshots (404 for a shard it reports)")]
    #[diagnostic(
        code(aimem::backup::not_streamed),
        help(
            "Take the backup with --no-stream: Qdrant then builds each snapshot on its disk first."
        )
    )]
    NotStreamed,

    #[error("cannot write the snapshot to {path}: {source}")]
    #[diagnostic(
        code(aimem::backup::write),
        help(
            "Check that the backup folder is writable and its disk is not full (for a bucket: the message says what the storage service answered)."
        )
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
            // A file streamed into object storage fails as a write: throttling or a dropped
            // connection there is a bad moment too.
            DownloadError::Write { source, .. }
            | DownloadError::Qdrant(QdrantError::LocalWrite(source)) => storage_hiccup(source),
            DownloadError::Oversized { .. } | DownloadError::NotStreamed => false,
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

/// A write error that is object storage's passing trouble (throttling, a server error, a
/// dropped connection), worth another attempt.
fn storage_hiccup(error: &std::io::Error) -> bool {
    error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<crate::s3::S3Error>())
        .is_some_and(|e| e.is_transient() || matches!(e, crate::s3::S3Error::Unavailable { .. }))
}

impl DownloadError {
    /// The disk (or the user's quota) is full: the documented disk-space exit, not a failure of
    /// the server.
    pub fn is_out_of_space(&self) -> bool {
        match self {
            DownloadError::Write { source, .. }
            | DownloadError::Qdrant(QdrantError::LocalWrite(source)) => {
                super::disk::is_out_of_space(source)
            }
            _ => false,
        }
    }
}

/// How far past the size Qdrant announced a download may run before it is cut: the bytes must
/// match exactly in the end anyway; this only decides when to stop writing.
const OVERSIZE_MARGIN: u64 = 1024 * 1024;

/// Downloads `snapshot` of `site` into `target`, retrying `retries` times.
///
/// The bytes go to a hidden temporary file next to `target`, kept across attempts: a retry
/// after a broken transfer resumes from the bytes already there when the server allows it
/// (see [`crate::qdrant::Client::open_snapshot`]), re-hashing them once from the disk, and
/// otherwise starts over in the same file. Only a complete, verified file is renamed to
/// `target`; the temporary file is removed in every other case.
/// `label` names the progress bar (`download github`, `pre-restore copy of github`).
#[allow(clippy::too_many_arguments)]
pub fn download_verified(
    client: &Client,
    site: Site<&str>,
    snapshot: &SnapshotDescription,
    target: &Utf8Path,
    retries: u32,
    label: &str,
    ui: &Ui,
    stop: &StopFlag,
) -> Result<Downloaded, DownloadError> {
    let target = Dest::Folder(target.to_owned());
    let download = Download {
        client,
        site,
        snapshot,
        target: &target,
        label,
        ui,
        stop,
    };
    download_with_retries(&download, retries, Durability::SyncedNow)
}

/// One snapshot download: what [`download_verified`] takes.
pub struct Download<'a> {
    pub client: &'a Client,
    pub site: Site<&'a str>,
    pub snapshot: &'a SnapshotDescription,
    pub target: &'a Dest,
    pub label: &'a str,
    pub ui: &'a Ui,
    pub stop: &'a StopFlag,
}

/// When the downloaded file reaches the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Synced before the download returns.
    SyncedNow,
    /// Left to the caller, who must sync it before relying on it (a backup syncs its files on
    /// another thread while the next transfer runs, and before the folder is published).
    CallerSyncs,
}

/// [`download_verified`], with the sync of the finished file left to `durability` (a file
/// streamed into a staging area by name is durable once written).
pub fn download_with_retries(
    download: &Download,
    retries: u32,
    durability: Durability,
) -> Result<Downloaded, DownloadError> {
    match download.target {
        Dest::Folder(path) => download_into_folder(download, path, retries, durability),
        Dest::Named { .. } => with_retries(download.ui, download.stop, retries, |made| {
            again(download.target, made)?;
            download_named(download)
        })
        .map_err(|(e, _)| e),
    }
}

/// Before attempt `made` into a staging area that takes files by name: a retry removes what
/// the failed attempt left (a local staging folder never writes over a file), so the file is
/// written again from its first byte. A first attempt removes nothing: a file already there
/// then is another's, and its creation fails.
fn again(target: &Dest, made: u32) -> Result<(), DownloadError> {
    if made == 0 {
        return Ok(());
    }
    target.remove_file().map_err(|source| DownloadError::Write {
        path: target.shown(),
        source,
    })
}

/// Runs `attempt` until it succeeds, fails for good, or `retries` more attempts failed
/// transiently (with a pause between them, and a warning for each). The first attempt is
/// told 0. The error comes with how many attempts were made.
fn with_retries<T>(
    ui: &Ui,
    stop: &StopFlag,
    retries: u32,
    mut attempt: impl FnMut(u32) -> Result<T, DownloadError>,
) -> Result<T, (DownloadError, u32)> {
    let mut made = 0;
    loop {
        match attempt(made) {
            Ok(done) => return Ok(done),
            Err(e) if made < retries && e.is_transient() && stop.requested().is_none() => {
                made += 1;
                ui.warn(&format!("transfer failed ({e}); retry {made} of {retries}"));
                std::thread::sleep(backoff(made));
            }
            Err(e) => return Err((e, made)),
        }
    }
}

/// One attempt into a staging area that takes files by name: the whole snapshot streamed
/// into a new file, which a failure drops (its upload aborted).
fn download_named(download: &Download) -> Result<Downloaded, DownloadError> {
    let (snapshot, target) = (download.snapshot, download.target);
    let write_error = |source| DownloadError::Write {
        path: target.shown(),
        source,
    };
    let body = download.site.open(download.client, &snapshot.name, None)?;
    let bar = download.ui.transfer_bar(
        download.label,
        Some(download.site.collection()),
        snapshot.size,
    );
    let limit = snapshot
        .size
        .map(|size| size.saturating_add(OVERSIZE_MARGIN));
    let mut sink = Sink {
        inner: HashingWriter::new(target.create_of(snapshot.size).map_err(write_error)?),
        bar: &bar,
        stop: download.stop,
        limit,
        written: 0,
    };
    let result = body.receive(&mut sink);
    bar.finish_and_clear();
    match result {
        Err(QdrantError::LocalWrite(e)) if e.get_ref().is_some_and(|i| i.is::<PastLimit>()) => {
            return Err(DownloadError::Oversized {
                snapshot: snapshot.name.clone(),
                announced: snapshot.size.unwrap_or_default(),
                limit: limit.unwrap_or_default(),
            });
        }
        other => other?,
    };
    let (sha256, size, file) = sink.inner.finish();
    check_reported(snapshot, &sha256, size)?;
    file.finish().map_err(write_error)?;
    Ok(Downloaded { sha256, size })
}

/// The snapshot arrived as Qdrant described it: its size and SHA-256, where it said them.
fn check_reported(
    snapshot: &SnapshotDescription,
    sha256: &str,
    size: u64,
) -> Result<(), DownloadError> {
    if let Some(expected) = snapshot.size.filter(|&s| s != size) {
        return Err(DownloadError::Mismatch {
            detail: format!("Qdrant reported {expected} bytes, {size} arrived"),
        });
    }
    if let Some(expected) = snapshot
        .checksum
        .as_deref()
        .filter(|c| !c.eq_ignore_ascii_case(sha256))
    {
        return Err(DownloadError::Mismatch {
            detail: format!("Qdrant reported SHA-256 {expected}, the file has {sha256}"),
        });
    }
    Ok(())
}

/// A download into the local staging folder, through a partial file a retry resumes.
fn download_into_folder(
    download: &Download,
    target: &Utf8Path,
    retries: u32,
    durability: Durability,
) -> Result<Downloaded, DownloadError> {
    let (ui, stop) = (download.ui, download.stop);
    let dir = target.parent().unwrap_or(Utf8Path::new("."));
    let write_error = |source| DownloadError::Write {
        path: target.to_string(),
        source,
    };
    let mut partial = Partial::create(dir).map_err(write_error)?;
    let mut attempt = 0;
    loop {
        match download_once(download, target, &mut partial, durability) {
            Ok(done) => {
                // Never over an existing file: each download has a path of its own, and one
                // already there (a pre-restore copy, say) is the only copy of something.
                partial.persist(target).map_err(write_error)?;
                return Ok(done);
            }
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

/// One attempt: into `partial`, from where the last attempt stopped when the server honours
/// that; on success the file is complete, verified and (unless the caller syncs it) synced.
fn download_once(
    download: &Download,
    target: &Utf8Path,
    partial: &mut Partial,
    durability: Durability,
) -> Result<Downloaded, DownloadError> {
    let (snapshot, stop) = (download.snapshot, download.stop);
    let write_error = |source| DownloadError::Write {
        path: target.to_string(),
        source,
    };
    let resume = partial.resume_point(snapshot.size);
    let body = download
        .site
        .open(download.client, &snapshot.name, resume.as_ref())?;
    let kept = body.start();
    partial.set_etag(body.resume_tag());
    if kept > 0 {
        log::info!("resuming the download of {} at byte {kept}", snapshot.name);
    }
    let bar = download.ui.transfer_bar(
        download.label,
        Some(download.site.collection()),
        snapshot.size,
    );
    bar.set_position(kept);
    let limit = snapshot
        .size
        .map(|size| size.saturating_add(OVERSIZE_MARGIN));
    let mut hashing = HashingWriter::new(partial.continue_at(kept).map_err(write_error)?);
    // The kept prefix, read once from the disk: the SHA-256 covers the whole file.
    KeptPrefix::replay_into(&mut hashing, partial.file(), kept).map_err(write_error)?;
    let mut sink = Sink {
        inner: hashing,
        bar: &bar,
        stop,
        limit,
        written: kept,
    };
    let result = body.receive(&mut sink);
    bar.finish_and_clear();
    match result {
        Err(QdrantError::LocalWrite(e)) if e.get_ref().is_some_and(|i| i.is::<PastLimit>()) => {
            partial.forget();
            return Err(DownloadError::Oversized {
                snapshot: snapshot.name.clone(),
                announced: snapshot.size.unwrap_or_default(),
                limit: limit.unwrap_or_default(),
            });
        }
        other => other?,
    };
    let (sha256, size, _) = sink.inner.finish();
    if let Err(mismatch) = check_reported(snapshot, &sha256, size) {
        partial.forget();
        return Err(mismatch);
    }
    if durability == Durability::SyncedNow {
        partial.file().sync_all().map_err(write_error)?;
    }
    Ok(Downloaded { sha256, size })
}

/// One streamed shard snapshot: what [`stream_with_retries`] takes.
pub struct Stream<'a> {
    pub client: &'a Client,
    pub collection: &'a str,
    pub shard: u32,
    pub target: &'a Dest,
    pub label: &'a str,
    pub ui: &'a Ui,
    pub stop: &'a StopFlag,
}

/// Receives the shard snapshot Qdrant streams as it builds it (nothing is stored on the
/// server) into `target`, hashed on the way, retrying `retries` times. A stream cannot be
/// resumed: each retry starts it again from its first byte, in the same hidden temporary
/// file, which only a complete archive leaves (renamed to `target`). A 404 is returned as is:
/// the caller knows whether the shard exists, and so whether the server lacks the endpoint.
pub fn stream_with_retries(
    stream: &Stream,
    retries: u32,
    durability: Durability,
) -> Result<Downloaded, DownloadError> {
    let target = match stream.target {
        Dest::Folder(path) => path,
        Dest::Named { .. } => {
            let streamed = with_retries(stream.ui, stream.stop, retries, |made| {
                again(stream.target, made)?;
                stream_named(stream)
            });
            return match streamed {
                // Only the first answer tells: a 404 after a stream was served is about the
                // shard.
                Err((DownloadError::Qdrant(e), 0)) if is_missing_endpoint(&e) => {
                    Err(DownloadError::NotStreamed)
                }
                other => other.map_err(|(e, _)| e),
            };
        }
    };
    let (ui, stop) = (stream.ui, stream.stop);
    let dir = target.parent().unwrap_or(Utf8Path::new("."));
    let write_error = |source| DownloadError::Write {
        path: target.to_string(),
        source,
    };
    let mut partial = Partial::create(dir).map_err(write_error)?;
    let mut attempt = 0;
    loop {
        match stream_once(stream, target, &mut partial, durability) {
            Ok(done) => {
                partial.persist(target).map_err(write_error)?;
                return Ok(done);
            }
            // Only the first answer tells: a 404 after a stream was served is about the shard.
            Err(DownloadError::Qdrant(e)) if attempt == 0 && is_missing_endpoint(&e) => {
                return Err(DownloadError::NotStreamed);
            }
            Err(e) if attempt < retries && e.is_transient() && stop.requested().is_none() => {
                attempt += 1;
                ui.warn(&format!(
                    "streaming shard {} of `{}` failed ({e}); starting it again, retry {attempt} of {retries}",
                    stream.shard, stream.collection
                ));
                std::thread::sleep(backoff(attempt));
            }
            Err(e) => return Err(e),
        }
    }
}

/// A 404 that says the stream endpoint itself is unknown. The shard is one the server
/// reports, yet it may have moved or its collection gone meanwhile: Qdrant says so in words
/// (`Not found: shard 3 not found`, ``Not found: Collection `c` doesn't exist!``). A server
/// without the route answers a 404 with another body (actix's is empty).
fn is_missing_endpoint(error: &QdrantError) -> bool {
    match error {
        QdrantError::Api {
            status: 404,
            message,
            ..
        } => !(message.starts_with("Not found: shard ") || message.contains("Collection `")),
        _ => false,
    }
}

/// One attempt from the first byte. Qdrant sends no size and no checksum for a stream, and a
/// failure while it builds the archive can show only as a body that ends early: the bytes
/// must end as a whole tar archive does (512-byte blocks, the last two zero).
fn stream_once(
    stream: &Stream,
    target: &Utf8Path,
    partial: &mut Partial,
    durability: Durability,
) -> Result<Downloaded, DownloadError> {
    let write_error = |source| DownloadError::Write {
        path: target.to_string(),
        source,
    };
    let dir = target.parent().unwrap_or(Utf8Path::new("."));
    let (sha256, size, _) = receive_archive(stream, || {
        Ok(KeepFree::new(
            partial.continue_at(0).map_err(write_error)?,
            Some(dir),
        ))
    })?;
    if durability == Durability::SyncedNow {
        partial.file().sync_all().map_err(write_error)?;
    }
    Ok(Downloaded { sha256, size })
}

/// One attempt of a stream into a staging area that takes files by name (a bucket, or an
/// encrypted backup's local folder, whose free space is kept as a plain one's is); a failure
/// drops the file (its upload aborted).
fn stream_named(stream: &Stream) -> Result<Downloaded, DownloadError> {
    let write_error = |source| DownloadError::Write {
        path: stream.target.shown(),
        source,
    };
    let local = stream.target.local_folder();
    let (sha256, size, file) = receive_archive(stream, || {
        Ok(KeepFree::new(
            stream.target.create().map_err(write_error)?,
            local,
        ))
    })?;
    file.inner.finish().map_err(write_error)?;
    Ok(Downloaded { sha256, size })
}

/// Receives a shard's stream into the file `open` gives (opened once the server answered),
/// through the SHA-256 and the check that it ends as a whole tar archive: its hash, its size
/// and the file.
fn receive_archive<W: Write>(
    stream: &Stream,
    open: impl FnOnce() -> Result<W, DownloadError>,
) -> Result<(String, u64, W), DownloadError> {
    let body = stream
        .client
        .open_streamed_shard_snapshot(stream.collection, stream.shard)?;
    let bar = stream
        .ui
        .transfer_bar(stream.label, Some(stream.collection), None);
    let mut sink = Sink {
        inner: HashingWriter::new(TarEnd::new(open()?)),
        bar: &bar,
        stop: stream.stop,
        limit: None,
        written: 0,
    };
    let result = body.receive(&mut sink);
    bar.finish_and_clear();
    result?;
    let (sha256, size, tar) = sink.inner.finish();
    check_whole_archive(stream.shard, &tar, size)?;
    Ok((sha256, size, tar.inner))
}

/// The streamed bytes end as a whole tar archive does.
fn check_whole_archive<W: Write>(
    shard: u32,
    tar: &TarEnd<W>,
    size: u64,
) -> Result<(), DownloadError> {
    if tar.unreadable {
        return Err(DownloadError::Mismatch {
            detail: format!(
                "the streamed archive of shard {} is not a tar archive aimem can follow (a header does not check out)",
                shard
            ),
        });
    }
    if !tar.is_whole_archive() {
        return Err(DownloadError::Mismatch {
            detail: format!(
                "the streamed archive of shard {} ended after {size} bytes, before the end of a tar archive",
                shard
            ),
        });
    }
    Ok(())
}

/// A writer that stops a stream before it leaves its file system with less than
/// [`KEEP_FREE`] bytes: a stream announces no size, and one that never ends (a broken or
/// hostile server) must not fill the disk the backups and the user's other files live on.
/// The free space is looked at every [`FREE_SPACE_EVERY`] bytes that all of the process's
/// streams wrote together ([`WRITTEN_SINCE_LOOK`]), so streams running at once cannot write
/// past the margin between two looks.
struct KeepFree<'d, W> {
    inner: W,
    /// None: the bytes go to no local disk (a bucket).
    dir: Option<&'d Utf8Path>,
}

const KEEP_FREE: u64 = 64 * 1024 * 1024;
const FREE_SPACE_EVERY: u64 = 16 * 1024 * 1024;

/// Bytes every stream of this process wrote since the free space was last looked at.
static WRITTEN_SINCE_LOOK: AtomicU64 = AtomicU64::new(0);

impl<'d, W: Write> KeepFree<'d, W> {
    fn new(inner: W, dir: Option<&'d Utf8Path>) -> Self {
        KeepFree { inner, dir }
    }
}

impl<W: Write> Write for KeepFree<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // One stream looks once the total passed the step; the others go on meanwhile.
        if let Some(dir) = self.dir
            && WRITTEN_SINCE_LOOK.load(Ordering::SeqCst) >= FREE_SPACE_EVERY
            && WRITTEN_SINCE_LOOK.swap(0, Ordering::SeqCst) >= FREE_SPACE_EVERY
        {
            // A file system that cannot say is not a reason to stop: writes still fail when
            // it is full.
            let free = super::disk::free_space(dir).unwrap_or(u64::MAX);
            if free < KEEP_FREE {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::StorageFull,
                    format!(
                        "less than {} would stay free on the backup's disk ({} free): the stream was stopped",
                        crate::ui::human_size(KEEP_FREE),
                        crate::ui::human_size(free)
                    ),
                ));
            }
        }
        let n = self.inner.write(buf)?;
        WRITTEN_SINCE_LOOK.fetch_add(n as u64, Ordering::SeqCst);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A writer that follows the tar archive written through it, header by header (each header
/// gives the size of the data after it; a GNU sparse entry may add extension blocks, a pax
/// header may give the next entry's size), and tells whether it reached the archive's end:
/// two zero blocks where a header is due, then nothing but zeros. Qdrant's segment files hold
/// long runs of zeros, so looking at the last bytes alone could take a stream cut inside one
/// for a whole archive; a header whose checksum does not add up is not followed either.
struct TarEnd<W> {
    inner: W,
    written: u64,
    /// Where the next header starts.
    next_header: u64,
    /// The bytes of that header received so far.
    header: Vec<u8>,
    /// Zero blocks in a row where headers were due.
    zero_blocks: u8,
    /// Reading a GNU sparse file's extension blocks: the size of its data, which follows them.
    sparse_data: Option<u64>,
    /// Reading a pax header's records: where they end, what came so far, and whether the
    /// header is a global one.
    pax: Option<(u64, Vec<u8>, bool)>,
    /// The size a pax header gave the next entry.
    pax_size: Option<u64>,
    ended: bool,
    /// A header that cannot be followed: not an archive aimem can check.
    unreadable: bool,
}

const BLOCK: u64 = 512;
/// The most a pax header's records may take (real ones: a few hundred bytes).
const MAX_PAX: u64 = 64 * 1024;

impl<W: Write> TarEnd<W> {
    fn new(inner: W) -> Self {
        TarEnd {
            inner,
            written: 0,
            next_header: 0,
            header: Vec::with_capacity(BLOCK as usize),
            zero_blocks: 0,
            sparse_data: None,
            pax: None,
            pax_size: None,
            ended: false,
            unreadable: false,
        }
    }

    fn is_whole_archive(&self) -> bool {
        self.ended && !self.unreadable
    }

    /// Follows `bytes`, which start at offset `at` of the archive.
    fn follow(&mut self, mut at: u64, mut bytes: &[u8]) {
        while !bytes.is_empty() && !self.unreadable {
            if self.ended {
                // Only zeros may follow the end marker (a record's padding).
                self.unreadable = bytes.iter().any(|&b| b != 0);
                return;
            }
            if at < self.next_header {
                let skip = (self.next_header - at).min(bytes.len() as u64);
                if let Some((end, records, _)) = &mut self.pax
                    && at < *end
                {
                    let take = (*end - at).min(skip) as usize;
                    records.extend_from_slice(&bytes[..take]);
                }
                at += skip;
                bytes = &bytes[skip as usize..];
                if self.pax.as_ref().is_some_and(|(end, _, _)| at >= *end) {
                    self.pax_complete();
                }
                continue;
            }
            let wanted = BLOCK as usize - self.header.len();
            let take = wanted.min(bytes.len());
            self.header.extend_from_slice(&bytes[..take]);
            at += take as u64;
            bytes = &bytes[take..];
            if self.header.len() == BLOCK as usize {
                self.header_complete();
            }
        }
    }

    fn header_complete(&mut self) {
        let header = std::mem::take(&mut self.header);
        let padded = |size: u64| size.div_ceil(BLOCK).saturating_mul(BLOCK);
        if let Some(data) = self.sparse_data {
            // An extension block: another follows while its `isextended` byte is set.
            self.next_header = self.next_header.saturating_add(BLOCK);
            if header[504] == 0 {
                self.sparse_data = None;
                self.next_header = self.next_header.saturating_add(padded(data));
            }
            return;
        }
        if header.iter().all(|&b| b == 0) {
            self.zero_blocks += 1;
            self.ended = self.zero_blocks == 2;
            self.next_header = self.next_header.saturating_add(BLOCK);
            return;
        }
        // A lone zero block before a header: tar readers (Qdrant's among them) stop at it,
        // so what follows would not be restored.
        if self.zero_blocks > 0 {
            self.unreadable = true;
            return;
        }
        let (Some(size), true) = (entry_size(&header[124..136]), checksum_holds(&header)) else {
            self.unreadable = true;
            return;
        };
        let data_start = self.next_header.saturating_add(BLOCK);
        self.next_header = data_start;
        match header[156] {
            // A pax header: its records (read as they pass) may give the next entry's size.
            b'x' | b'g' => {
                if size > MAX_PAX {
                    self.unreadable = true;
                    return;
                }
                let global = header[156] == b'g';
                self.pax = Some((data_start.saturating_add(size), Vec::new(), global));
                self.next_header = data_start.saturating_add(padded(size));
                if size == 0 {
                    self.pax_complete();
                }
            }
            // An old-GNU sparse file ('S') with more holes than its header lists: extension
            // blocks come between the header and the data.
            b'S' if header[482] != 0 => self.sparse_data = Some(size),
            _ => {
                let size = self.pax_size.take().unwrap_or(size);
                self.next_header = self.next_header.saturating_add(padded(size));
            }
        }
    }

    /// A pax header's records are in: a `size` record is the next entry's size. A global
    /// header that sets sizes for every entry after it is not followed.
    fn pax_complete(&mut self) {
        let Some((_, records, global)) = self.pax.take() else {
            return;
        };
        match (pax_size(&records), global) {
            (Ok(None), _) => {}
            (Ok(size), false) => self.pax_size = size,
            (Ok(Some(_)), true) | (Err(()), _) => self.unreadable = true,
        }
    }
}

/// The `size` a pax header's records give, if any (`"<len> <key>=<value>\n"` each).
fn pax_size(records: &[u8]) -> Result<Option<u64>, ()> {
    let mut size = None;
    let mut rest = records;
    while !rest.is_empty() {
        let space = rest.iter().position(|&b| b == b' ').ok_or(())?;
        let len: usize = std::str::from_utf8(&rest[..space])
            .ok()
            .and_then(|l| l.parse().ok())
            .ok_or(())?;
        if len <= space || len > rest.len() {
            return Err(());
        }
        let record = &rest[space + 1..len];
        let record = record.strip_suffix(b"\n").ok_or(())?;
        if let Some(value) = record.strip_prefix(b"size=") {
            size = Some(
                std::str::from_utf8(value)
                    .ok()
                    .and_then(|v| v.parse::<u64>().ok())
                    .ok_or(())?,
            );
        }
        rest = &rest[len..];
    }
    Ok(size)
}

/// A tar header's checksum: the sum of its bytes, the checksum field itself counted as
/// spaces, written in octal in that field.
fn checksum_holds(header: &[u8]) -> bool {
    let sum: u64 = header
        .iter()
        .enumerate()
        .map(|(i, &b)| match i {
            148..156 => u64::from(b' '),
            _ => u64::from(b),
        })
        .sum();
    entry_size(&header[148..156]) == Some(sum)
}

/// A tar header's size field: octal digits (space or NUL padded), or GNU's base-256 form
/// (high bit set) for large entries.
fn entry_size(field: &[u8]) -> Option<u64> {
    if field[0] & 0x80 != 0 {
        return field[1..]
            .iter()
            .try_fold(u64::from(field[0] & 0x7f), |n, &b| {
                n.checked_mul(256).map(|n| n | u64::from(b))
            });
    }
    let digits: Vec<u8> = field
        .iter()
        .copied()
        .skip_while(|&b| b == b' ')
        .take_while(|&b| b != 0 && b != b' ')
        .collect();
    if digits.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(std::str::from_utf8(&digits).ok()?, 8).ok()
}

impl<W: Write> Write for TarEnd<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.follow(self.written, &buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Where downloaded bytes go: the hashing file writer, the progress bar, a stop check (a
/// signal turns the next write into [`Cancelled`], which ends the transfer) and a bound (a
/// write past `limit` fails with [`PastLimit`] before it reaches the disk).
struct Sink<'a, W: Write> {
    inner: HashingWriter<W>,
    bar: &'a crate::ui::Meter,
    stop: &'a StopFlag,
    limit: Option<u64>,
    written: u64,
}

/// The error a [`Sink`] fails with when the server sends more than it announced.
#[derive(Debug)]
struct PastLimit;

impl std::fmt::Display for PastLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the server sent more bytes than it announced")
    }
}

impl std::error::Error for PastLimit {}

impl<W: Write> Write for Sink<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.stop.requested().is_some() {
            return Err(Cancelled::io());
        }
        let after = self.written.saturating_add(buf.len() as u64);
        if self.limit.is_some_and(|limit| after > limit) {
            return Err(std::io::Error::other(PastLimit));
        }
        let n = self.inner.write(buf)?;
        self.written += n as u64;
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

    /// A real ENOSPC in the middle of a real download (the sink is /dev/full) is recognised
    /// as a full disk, which the commands turn into the disk-space exit.
    #[test]
    fn a_full_disk_during_a_download_is_out_of_space() {
        let Ok(mut full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
            return;
        };
        let double = qdrant_double::Double::start(qdrant_double::Config::default());
        double.seed_ai_memory();
        let client = Client::new(&double.url(), None, crate::qdrant::Timeouts::default()).unwrap();
        let description = client.create_snapshot("conventions").unwrap();
        let error = client
            .download_snapshot("conventions", &description.name, &mut full)
            .unwrap_err();
        assert!(
            DownloadError::Qdrant(error).is_out_of_space(),
            "ENOSPC must read as a full disk"
        );
        let elsewhere = DownloadError::Write {
            path: "x".into(),
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        };
        assert!(!elsewhere.is_out_of_space());
    }

    /// A whole tar archive ends as one; cut anywhere (even at a block boundary, as a server
    /// that closes its chunked answer cleanly after a failure would, or inside a run of zeros
    /// in a file), it does not.
    #[test]
    fn only_a_whole_tar_archive_passes_the_end_check() {
        let mut archive = tar::Builder::new(Vec::new());
        for (name, size, byte) in [
            ("segments/a", 3000usize, 7u8),
            ("zeros", 4096, 0),
            ("wal/1", 700, 7),
        ] {
            let mut header = tar::Header::new_gnu();
            header.set_size(size as u64);
            header.set_mode(0o644);
            header.set_cksum();
            archive
                .append_data(&mut header, name, vec![byte; size].as_slice())
                .unwrap();
        }
        // A sparse file with more holes than a header lists: extension blocks follow it.
        let dir = tempfile::tempdir().unwrap();
        let holes = dir.path().join("holes");
        let mut file = std::fs::File::create(&holes).unwrap();
        for i in 0..12u64 {
            std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(i * 1024 * 1024)).unwrap();
            file.write_all(&[9u8; 4096]).unwrap();
        }
        drop(file);
        archive.sparse(true);
        archive
            .append_path_with_name(&holes, "segments/holes")
            .unwrap();
        let whole = archive.into_inner().unwrap();
        let sparse = whole
            .chunks(512)
            .any(|block| block.len() == 512 && block[156] == b'S' && block[482] != 0);
        assert!(
            sparse,
            "the archive has a sparse entry with extension blocks"
        );
        let ends = |bytes: &[u8], chunk: usize| {
            let mut end = TarEnd::new(Vec::new());
            for piece in bytes.chunks(chunk) {
                end.write_all(piece).unwrap();
            }
            end.is_whole_archive()
        };
        for chunk in [1, 100, 512, 4096, whole.len()] {
            assert!(ends(&whole, chunk), "whole, in chunks of {chunk}");
        }
        // 3584: after the first entry; 5120 and 7680: inside and at the end of the zeros.
        for cut in [
            0,
            512,
            1024,
            3584,
            5120,
            7680,
            whole.len() - 512,
            whole.len() - 1,
        ] {
            assert!(!ends(&whole[..cut], 512), "cut at {cut}");
        }
    }

    fn ends_whole(bytes: &[u8]) -> bool {
        let mut end = TarEnd::new(Vec::new());
        for piece in bytes.chunks(333) {
            end.write_all(piece).unwrap();
        }
        end.is_whole_archive()
    }

    /// A pax header that gives the next entry its size (the entry's own header says 0): the
    /// entry's data, all zeros here, is followed as data, not taken for the end marker.
    #[test]
    fn a_pax_size_is_followed_and_a_cut_inside_its_data_is_not_whole() {
        let mut archive = tar::Builder::new(Vec::new());
        archive
            .append_pax_extensions([("size", b"4096".as_slice())])
            .unwrap();
        let mut header = tar::Header::new_ustar();
        header.set_path("segments/big").unwrap();
        header.set_size(0);
        header.set_mode(0o644);
        header.set_cksum();
        // Before `into_inner`, which would write the end marker.
        let mut bytes = archive.get_ref().clone();
        let entry_at = bytes.len();
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(&[0u8; 4096]);
        bytes.extend_from_slice(&[0u8; 1024]);
        assert!(ends_whole(&bytes));
        assert!(!ends_whole(&bytes[..entry_at + 512 + 2048]));
    }

    #[test]
    fn a_bad_header_checksum_or_bytes_after_the_end_are_not_whole() {
        let mut archive = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(10);
        header.set_mode(0o644);
        header.set_cksum();
        archive
            .append_data(&mut header, "a", [1u8; 10].as_slice())
            .unwrap();
        let whole = archive.into_inner().unwrap();
        assert!(ends_whole(&whole));
        let mut damaged = whole.clone();
        damaged[0] ^= 1;
        assert!(!ends_whole(&damaged));
        let mut trailing = whole.clone();
        trailing.extend_from_slice(&[0u8; 512]);
        assert!(ends_whole(&trailing), "zero padding after the end is fine");
        trailing.push(7);
        assert!(!ends_whole(&trailing));
        // A lone zero block, then more entries: readers stop at it.
        let header_end = 512 + 512;
        let mut lone = whole[..header_end].to_vec();
        lone.extend_from_slice(&[0u8; 512]);
        lone.extend_from_slice(&whole[..]);
        assert!(!ends_whole(&lone));
    }

    #[test]
    fn sizes_in_base_256_are_read() {
        let mut field = [0u8; 12];
        field[0] = 0x80;
        field[10] = 0x10;
        assert_eq!(entry_size(&field), Some(0x1000));
        assert_eq!(entry_size(b"00000001000\0"), Some(512));
        assert_eq!(entry_size(b"0000000100x\0"), None);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(2));
        assert_eq!(backoff(30), Duration::from_secs(10));
    }
}
