//! Moving whole objects: an object read at any offset through one ranged stream that is
//! reopened where a read wants it (or where a dropped connection left it), and an object
//! written as a stream, in parts uploaded while the next ones fill.

use std::io::{self, Read, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::{S3Client, S3Error};
use crate::memory::PartBuffer;

/// aimem's part unless the object is known to be big: a little over S3's smallest (5 MiB,
/// all parts but the last), the size the memory budget pools.
pub const MIN_PART: usize = crate::memory::PART;
/// S3's most parts in one upload.
pub const MAX_PARTS: u64 = 10_000;
/// Parts uploaded at once by one object, besides the one filling. Every part, filling or in
/// flight, of every object, comes out of the run's memory budget (`crate::memory`).
const PARTS_IN_FLIGHT: usize = 2;
/// Times a read reopens its stream after the connection dropped, before it gives up.
const REOPENS: u32 = 3;
/// How far ahead of an open stream a read goes by reading through rather than asking again.
const SKIP_AHEAD: u64 = 256 * 1024;

/// The part size for an object expected to be about `expected` bytes: the smallest that fits
/// it in [`MAX_PARTS`] with room to grow by a quarter, whole MiB, at least [`MIN_PART`].
pub fn part_size(expected: Option<u64>) -> usize {
    let Some(expected) = expected else {
        return MIN_PART;
    };
    let wanted = expected.saturating_add(expected / 4).div_ceil(MAX_PARTS);
    let mib = 1024 * 1024;
    // Each part is held in memory while it is uploaded: a reported size (which the server
    // says, and may lie about) never makes one bigger than MAX_PART.
    (wanted.div_ceil(mib).saturating_mul(mib)).clamp(MIN_PART as u64, MAX_PART as u64) as usize
}

/// The largest part: 10,000 of them hold 640 GiB.
pub const MAX_PART: usize = 64 * 1024 * 1024;

/// An object open for reading at any offset.
///
/// It keeps a few ranged streams open (`Range: bytes=N-`), each where its last read ended: a
/// read continues the stream that stands at its offset (or a little way before it), else
/// opens a new one, closing the one used longest ago when [`STREAMS`] are open. So a reader
/// that goes through the object in order costs one request, and so do several that go
/// through it side by side (Parquet's column chunks, read page by page in turn), each
/// continuing its own stream.
pub struct ObjectReader {
    client: S3Client,
    key: String,
    len: u64,
    /// The version read (its ETag), as listed or as the first answer named it, shared by
    /// every reader of the object: every request asks for it, so an object replaced meanwhile
    /// fails instead of mixing two versions.
    version: Version,
    /// The open streams and where each stands, the one used last at the end.
    streams: Mutex<Vec<(u64, Box<dyn Read + Send>)>>,
}

/// The version of an object its readers read: the ETag the first answer named, shared by
/// clones (every reader of the object in one run asks for that one).
#[derive(Debug, Clone, Default)]
pub struct Version(Arc<Mutex<Option<String>>>);

impl Version {
    fn get(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Keeps the first version named (quoted, as `If-Match` wants it); false when another
    /// was known already. An answer that names none pins nothing.
    fn learn(&self, etag: Option<String>) -> bool {
        let Some(etag) = etag else {
            return true;
        };
        let etag = match etag.starts_with('"') || etag.starts_with("W/") {
            true => etag,
            false => format!("\"{etag}\""),
        };
        let mut known = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match known.as_ref() {
            None => {
                *known = Some(etag);
                true
            }
            Some(first) => *first == etag,
        }
    }
}

/// Streams an object keeps open at once: more than the columns of a points file.
const STREAMS: usize = 16;

impl ObjectReader {
    /// Opens `key`, whose length is `len` (from a listing or a HEAD).
    pub fn new(client: S3Client, key: String, len: u64) -> ObjectReader {
        ObjectReader {
            client,
            key,
            len,
            version: Version::default(),
            streams: Mutex::new(Vec::new()),
        }
    }

    /// Opens `key` (`len` bytes long) pinned to `version`: the one given, else the first one
    /// served, which every reader sharing `version` then asks for.
    pub fn pinned(client: S3Client, key: String, len: u64, version: Version) -> ObjectReader {
        ObjectReader {
            version,
            ..ObjectReader::new(client, key, len)
        }
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Reads up to `buf.len()` bytes at `offset` (0 at the object's end).
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        if offset >= self.len || buf.is_empty() {
            return Ok(0);
        }
        // The stream at the offset, or a little way before it (a small tar entry skipped):
        // taken out of the pool, so that no lock is held while the network is read (readers
        // of the same object, such as uploads to several replicas, go side by side).
        let mut current = self.take_stream(offset);
        if let Some((pos, reader)) = current.as_mut()
            && *pos < offset
        {
            let gap = offset - *pos;
            match io::copy(&mut Read::by_ref(reader).take(gap), &mut io::sink()) {
                Ok(skipped) if skipped == gap => *pos = offset,
                _ => current = None,
            }
        }
        let mut reopened = 0;
        loop {
            let (pos, reader) = match current.as_mut() {
                Some(open) => open,
                None => current.insert((offset, self.open_at(offset)?)),
            };
            match reader.read(buf) {
                Ok(0) => {
                    // The answer ended before the object did: the connection dropped.
                    current = None;
                    if reopened == REOPENS {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("{} ended early", self.key),
                        ));
                    }
                }
                Ok(n) => {
                    *pos += n as u64;
                    // Kept, the one used last, unless it reached the end.
                    if let Some(open) = current.filter(|(pos, _)| *pos < self.len) {
                        self.keep_stream(open);
                    }
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    current = None;
                    if reopened == REOPENS {
                        return Err(e);
                    }
                }
            }
            reopened += 1;
        }
    }

    /// The open stream nearest behind `offset` (within [`SKIP_AHEAD`]), out of the pool.
    fn take_stream(&self, offset: u64) -> Option<(u64, Box<dyn Read + Send>)> {
        let mut streams = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        let found = streams
            .iter()
            .enumerate()
            .filter(|(_, (pos, _))| *pos <= offset && offset - *pos <= SKIP_AHEAD)
            .max_by_key(|(_, (pos, _))| *pos)
            .map(|(index, _)| index)?;
        Some(streams.remove(found))
    }

    /// Puts a stream back into the pool, as the one used last; the one used longest ago goes
    /// when the pool is full.
    fn keep_stream(&self, stream: (u64, Box<dyn Read + Send>)) {
        let mut streams = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        if streams.len() >= STREAMS {
            streams.remove(0);
        }
        streams.push(stream);
    }

    /// A new stream from `offset` on, of the version read so far (the first one served fixes
    /// it for every reader sharing [`Version`]).
    fn open_at(&self, offset: u64) -> io::Result<Box<dyn Read + Send>> {
        let wanted = self.version.get();
        let download = self
            .client
            .get_version(&self.key, offset, wanted.as_deref())
            .map_err(crate::s3::io_error)?;
        if wanted.is_none() && !self.version.learn(download.etag) {
            // Another reader's first answer named another version meanwhile.
            return Err(crate::s3::io_error(S3Error::Changed {
                what: format!("reading {}", self.key),
            }));
        }
        Ok(download.reader)
    }
}

/// Objects are read at offsets by the audit of a backup in a bucket, in place.
impl crate::manifest::files::ReadAt for ObjectReader {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        ObjectReader::read_at(self, buf, offset)
    }
}

/// An object read from its first byte to its last, as a stream: a dropped connection is
/// picked up where it stopped (a ranged request), a few times, by [`ObjectReader::read_at`].
pub struct ObjectStream {
    object: ObjectReader,
    position: u64,
}

impl ObjectStream {
    pub fn new(object: ObjectReader) -> ObjectStream {
        ObjectStream {
            object,
            position: 0,
        }
    }
}

impl Read for ObjectStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.object.read_at(buf, self.position)?;
        self.position += read as u64;
        Ok(read)
    }
}

/// Told the key and upload id of each multipart upload as it starts.
pub type OnUploadStart = Arc<dyn Fn(&str, &str) -> io::Result<()> + Send + Sync>;

/// An object being written: bytes go into a part; a full part goes to the uploaders while the
/// next fills. An object smaller than one part is written with one PUT at [`Self::finish`].
/// Dropped without `finish`, the upload is aborted (its parts freed).
pub struct ObjectWriter {
    client: S3Client,
    key: String,
    part_size: usize,
    /// The part being filled (taken from the memory budget at its first byte).
    filling: Option<PartBuffer>,
    upload: Option<Uploading>,
    /// Told each upload id as its upload starts (so a journal can abort it after a crash).
    on_start: OnUploadStart,
}

struct Uploading {
    id: String,
    next_part: u16,
    parts: Option<SyncSender<(u16, PartBuffer)>>,
    done: Receiver<Result<(u16, String), S3Error>>,
    workers: Vec<JoinHandle<()>>,
    etags: Vec<(u16, String)>,
}

impl ObjectWriter {
    pub fn new(
        client: S3Client,
        key: String,
        part_size: usize,
        on_start: OnUploadStart,
    ) -> ObjectWriter {
        ObjectWriter {
            client,
            key,
            part_size: part_size.max(MIN_PART),
            filling: None,
            upload: None,
            on_start,
        }
    }

    /// Sends the part that is full.
    fn send_part(&mut self) -> io::Result<()> {
        if self.upload.is_none() {
            let id = self
                .client
                .begin_upload(&self.key)
                .map_err(crate::s3::io_error)?;
            (self.on_start)(&self.key, &id)?;
            self.upload = Some(self.start_workers(id));
        }
        let Some(upload) = self.upload.as_mut() else {
            unreachable!("the upload was just started");
        };
        if u64::from(upload.next_part) > MAX_PARTS {
            return Err(io::Error::other(format!(
                "{} needs more than {MAX_PARTS} parts of {} bytes",
                self.key, self.part_size
            )));
        }
        let Some(part) = self.filling.take() else {
            return Ok(());
        };
        let number = upload.next_part;
        upload.next_part += 1;
        // Results of parts already sent: an error stops the writer at once.
        while let Ok(result) = upload.done.try_recv() {
            upload.etags.push(result.map_err(crate::s3::io_error)?);
        }
        let sent = upload.parts.as_ref().map(|p| p.send((number, part)));
        if !matches!(sent, Some(Ok(()))) {
            // Every uploader stopped: one of them failed, and says why.
            return Err(collect_failure(upload));
        }
        Ok(())
    }

    fn start_workers(&self, id: String) -> Uploading {
        // A rendezvous channel: a part waits in the writer until an uploader is free, so at
        // most PARTS_IN_FLIGHT parts are held besides the one filling.
        let (parts, incoming) = sync_channel::<(u16, PartBuffer)>(0);
        let (report, done) = sync_channel(MAX_PARTS as usize);
        let incoming = Arc::new(Mutex::new(incoming));
        let workers = (0..PARTS_IN_FLIGHT)
            .map(|_| {
                let incoming = Arc::clone(&incoming);
                let report = report.clone();
                let client = self.client.clone();
                let key = self.key.clone();
                let id = id.clone();
                std::thread::spawn(move || {
                    loop {
                        let next = incoming.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        let Ok((number, bytes)) = next else {
                            return;
                        };
                        let result = client
                            .upload_part(&key, &id, number, &bytes)
                            .map(|etag| (number, etag));
                        // The part's memory is free for another.
                        drop(bytes);
                        let failed = result.is_err();
                        if report.send(result).is_err() || failed {
                            return;
                        }
                    }
                })
            })
            .collect();
        Uploading {
            id,
            next_part: 1,
            parts: Some(parts),
            done,
            workers,
            etags: Vec::new(),
        }
    }

    /// Writes what is left and makes the object whole: one PUT for a small object, else the
    /// last part and the completion.
    pub fn finish(mut self) -> io::Result<()> {
        if self.upload.is_none() {
            let body = self.filling.take();
            let body = body.as_ref().map_or(&[][..], |part| &part[..]);
            return self
                .client
                .put(&self.key, body, false)
                .map_err(crate::s3::io_error);
        }
        if self.filling.as_ref().is_some_and(|part| !part.is_empty()) {
            self.send_part()?;
        }
        let Some(mut upload) = self.upload.take() else {
            unreachable!("started above");
        };
        upload.parts = None;
        for worker in upload.workers.drain(..) {
            let _ = worker.join();
        }
        while let Ok(result) = upload.done.try_recv() {
            match result {
                Ok(done) => upload.etags.push(done),
                Err(e) => {
                    let _ = self.client.abort_upload(&self.key, &upload.id);
                    return Err(crate::s3::io_error(e));
                }
            }
        }
        upload.etags.sort_by_key(|(number, _)| *number);
        let complete = upload.etags.len() == usize::from(upload.next_part - 1);
        let result = match complete {
            true => {
                let etags: Vec<String> = upload.etags.iter().map(|(_, e)| e.clone()).collect();
                self.client.complete_upload(&self.key, &upload.id, &etags)
            }
            false => Err(S3Error::Transfer {
                what: format!("the upload of {}", self.key),
                why: "a part was lost".into(),
            }),
        };
        if result.is_err() {
            let _ = self.client.abort_upload(&self.key, &upload.id);
        }
        result.map_err(crate::s3::io_error)
    }
}

/// The first failure an uploader reported (after the channel closed on it).
fn collect_failure(upload: &mut Uploading) -> io::Error {
    for result in upload.done.try_iter() {
        if let Err(e) = result {
            return crate::s3::io_error(e);
        }
    }
    io::Error::other("the part uploaders stopped")
}

impl Write for ObjectWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let part_size = self.part_size;
        let filling = self
            .filling
            .get_or_insert_with(|| crate::memory::part_buffer(part_size));
        let taken = (part_size - filling.len()).min(buf.len());
        filling.extend_from_slice(&buf[..taken]);
        if filling.len() == part_size {
            self.send_part()?;
        }
        Ok(taken)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for ObjectWriter {
    fn drop(&mut self) {
        // The part being filled goes back to the pool first: the uploaders may take a while.
        drop(self.filling.take());
        if let Some(mut upload) = self.upload.take() {
            upload.parts = None;
            for worker in upload.workers.drain(..) {
                let _ = worker.join();
            }
            let _ = self.client.abort_upload(&self.key, &upload.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_is_the_first_one_named_quoted_and_never_another() {
        let version = Version::default();
        assert!(
            version.learn(None),
            "an answer without an ETag pins nothing"
        );
        assert_eq!(version.get(), None);
        assert!(version.learn(Some("abc".into())));
        assert_eq!(version.get().as_deref(), Some("\"abc\""));
        assert!(version.learn(Some("\"abc\"".into())));
        assert!(!version.learn(Some("\"def\"".into())));
        assert_eq!(version.get().as_deref(), Some("\"abc\""));
        let shared = version.clone();
        assert_eq!(shared.get(), version.get());
    }

    #[test]
    fn parts_fit_the_expected_size_in_ten_thousand() {
        assert_eq!(part_size(None), MIN_PART);
        assert_eq!(part_size(Some(1_000)), MIN_PART);
        let big = 500 * 1024 * 1024 * 1024u64;
        let part = part_size(Some(big)) as u64;
        assert!(part * MAX_PARTS >= big + big / 4);
        assert_eq!(part % (1024 * 1024), 0);
        assert_eq!(
            part_size(Some(u64::MAX)),
            MAX_PART,
            "a lying size is capped"
        );
    }
}
