//! A `multipart/form-data` body with one file field, streamed from a backup's file (on disk or
//! in a bucket) with a known length.
//!
//! ureq's own multipart support is behind an unstable feature; this is the few lines the upload
//! needs: a prefix (boundary and part headers), the file's bytes, and a suffix (the closing
//! boundary). Knowing all three lengths up front gives an exact `Content-Length`.

use std::io::Read;

use super::Cancelled;
use crate::manifest::files::Opened;

/// The form for one snapshot upload.
pub struct Form {
    boundary: String,
    prefix: Vec<u8>,
    suffix: Vec<u8>,
}

impl Form {
    /// A form whose `snapshot` field carries a file named `file_name`. The boundary mixes the
    /// file's SHA-256 with the time and process id, so it cannot plausibly occur in the file.
    pub fn new(file_name: &str, sha256: &str) -> Form {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let salt: String = sha256.chars().take(24).collect();
        let boundary = format!("aimem-{salt}-{nanos:x}-{}", std::process::id());
        // Quotes and line breaks would end the header early; Qdrant keeps only the base name.
        let safe_name: String = file_name
            .chars()
            .map(|c| if c == '"' || c.is_control() { '_' } else { c })
            .collect();
        let prefix = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"snapshot\"; filename=\"{safe_name}\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
        .into_bytes();
        let suffix = format!("\r\n--{boundary}--\r\n").into_bytes();
        Form {
            boundary,
            prefix,
            suffix,
        }
    }

    pub fn content_type(&self) -> String {
        format!("multipart/form-data; boundary={}", self.boundary)
    }

    /// The whole body's length for a file of `file_len` bytes.
    pub fn content_length(&self, file_len: u64) -> u64 {
        self.prefix.len() as u64 + file_len + self.suffix.len() as u64
    }

    /// The body as a reader: prefix, exactly the first `file_len` bytes of `file`, suffix.
    ///
    /// The file is read at explicit offsets from its start, never through its shared cursor:
    /// handles cloned from one open file (the same backup file going to several replicas at
    /// once) each send the whole file.
    pub fn reader<'a>(
        &'a self,
        file: Opened,
        file_len: u64,
        on_progress: &'a mut dyn FnMut(u64) -> Result<(), Cancelled>,
    ) -> BodyReader<'a> {
        BodyReader {
            prefix: &self.prefix,
            file,
            file_pos: 0,
            file_left: file_len,
            suffix: &self.suffix,
            on_progress,
            failed: false,
        }
    }
}

/// Reads the form body; see [`Form::reader`].
pub struct BodyReader<'a> {
    prefix: &'a [u8],
    file: Opened,
    /// The next offset to read from.
    file_pos: u64,
    file_left: u64,
    suffix: &'a [u8],
    on_progress: &'a mut dyn FnMut(u64) -> Result<(), Cancelled>,
    failed: bool,
}

impl BodyReader<'_> {
    /// True when the file ended early or could not be read: the body sent was incomplete.
    pub fn failed_locally(&self) -> bool {
        self.failed
    }
}

/// The file shrank or failed while it was being sent (the declared length cannot be met).
#[derive(Debug)]
pub struct LocalReadFailed(pub String);

impl std::fmt::Display for LocalReadFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "reading the snapshot file failed: {}", self.0)
    }
}

impl std::error::Error for LocalReadFailed {}

/// True when an I/O error is the [`Cancelled`] marker (possibly wrapped by ureq).
pub fn is_cancelled(e: &std::io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<Cancelled>())
}

fn take_from(part: &mut &[u8], buf: &mut [u8]) -> usize {
    let n = part.len().min(buf.len());
    buf[..n].copy_from_slice(&part[..n]);
    *part = &part[n..];
    n
}

impl Read for BodyReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if !self.prefix.is_empty() {
            return Ok(take_from(&mut self.prefix, buf));
        }
        if self.file_left > 0 {
            (self.on_progress)(0).map_err(|_| Cancelled::io())?;
            let want = buf
                .len()
                .min(usize::try_from(self.file_left).unwrap_or(usize::MAX));
            let n = match self.file.read_at(&mut buf[..want], self.file_pos) {
                Ok(0) => {
                    self.failed = true;
                    return Err(std::io::Error::other(LocalReadFailed(format!(
                        "the file ended {} bytes early",
                        self.file_left
                    ))));
                }
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => return Err(e),
                Err(e) => {
                    self.failed = true;
                    return Err(std::io::Error::other(LocalReadFailed(e.to_string())));
                }
            };
            self.file_left -= n as u64;
            self.file_pos += n as u64;
            (self.on_progress)(n as u64).map_err(|_| Cancelled::io())?;
            return Ok(n);
        }
        Ok(take_from(&mut self.suffix, buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opened(path: &std::path::Path) -> Opened {
        Opened::file(std::fs::File::open(path).unwrap()).unwrap()
    }

    #[test]
    fn the_body_is_prefix_file_suffix_with_the_announced_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.snapshot");
        std::fs::write(&path, b"tar bytes").unwrap();
        let form = Form::new("a\"b.snapshot", &"0".repeat(64));
        let mut seen = 0;
        let mut progress = |n: u64| {
            seen += n;
            Ok(())
        };
        let mut body = Vec::new();
        form.reader(opened(&path), 9, &mut progress)
            .read_to_end(&mut body)
            .unwrap();
        assert_eq!(body.len() as u64, form.content_length(9));
        let text = String::from_utf8(body).unwrap();
        assert!(text.contains("name=\"snapshot\"; filename=\"a_b.snapshot\""));
        assert!(text.contains("\r\n\r\ntar bytes\r\n--aimem-"));
        assert!(text.ends_with("--\r\n"));
        assert!(
            form.content_type()
                .starts_with("multipart/form-data; boundary=aimem-")
        );
        assert_eq!(seen, 9);
    }

    #[test]
    fn handles_sharing_one_cursor_each_send_the_whole_file_from_its_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.snapshot");
        let content: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &content).unwrap();
        let mut opened = opened(&path);
        // Moved on already, as a file that was hashed is.
        std::io::Seek::seek(&mut opened, std::io::SeekFrom::End(0)).unwrap();
        let form = Form::new("a.snapshot", "x");
        let (mut one, mut two) = (|_| Ok(()), |_| Ok(()));
        let mut first = form.reader(opened.clone(), 100_000, &mut one);
        let mut second = form.reader(opened.clone(), 100_000, &mut two);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        // Interleaved, as two upload threads read.
        let mut buf = [0u8; 4096];
        loop {
            let n = first.read(&mut buf).unwrap();
            a.extend_from_slice(&buf[..n]);
            let m = second.read(&mut buf).unwrap();
            b.extend_from_slice(&buf[..m]);
            if n == 0 && m == 0 {
                break;
            }
        }
        assert_eq!(a, b);
        assert_eq!(a.len() as u64, form.content_length(100_000));
        assert!(a.windows(content.len()).any(|w| w == content.as_slice()));
    }

    #[test]
    fn a_shrunken_file_fails_instead_of_sending_a_short_body() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.snapshot");
        std::fs::write(&path, b"short").unwrap();
        let form = Form::new("a.snapshot", "x");
        let mut progress = |_| Ok(());
        let mut reader = form.reader(opened(&path), 50, &mut progress);
        let mut body = Vec::new();
        assert!(reader.read_to_end(&mut body).is_err());
        assert!(reader.failed_locally());
    }

    #[test]
    fn cancelling_stops_the_body() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.snapshot");
        std::fs::write(&path, b"bytes").unwrap();
        let form = Form::new("a.snapshot", "x");
        let mut progress = |_| Err(Cancelled);
        let mut body = Vec::new();
        let err = form
            .reader(opened(&path), 5, &mut progress)
            .read_to_end(&mut body)
            .unwrap_err();
        assert!(is_cancelled(&err));
    }
}
