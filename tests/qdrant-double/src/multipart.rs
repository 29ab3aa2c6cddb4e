//! Streaming `multipart/form-data` parser: copies one field's content to a writer without
//! holding the body in memory.

use std::io::{self, Read, Write};

const BUF: usize = 256 * 1024;
const MAX_HEADER_LINE: usize = 16 * 1024;

#[derive(Debug)]
pub enum MultipartError {
    /// The wanted field is not in the form.
    MissingField,
    Malformed(String),
    Io(io::Error),
}

impl From<io::Error> for MultipartError {
    fn from(e: io::Error) -> Self {
        MultipartError::Io(e)
    }
}

/// The field that was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The client's file name, if any.
    pub filename: Option<String>,
    pub size: u64,
}

/// The boundary of a `multipart/form-data; boundary=…` content type.
pub fn boundary(content_type: &str) -> Option<String> {
    let mut parts = content_type.split(';');
    let mime = parts.next()?.trim();
    if !mime.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    parts.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

struct Scanner<R> {
    inner: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
}

impl<R: Read> Scanner<R> {
    /// Reads more; returns false at end of input.
    fn fill(&mut self) -> io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            self.buf.resize(self.buf.len() * 2, 0);
        }
        let n = self.inner.read(&mut self.buf[self.end..])?;
        if n == 0 {
            self.eof = true;
            return Ok(false);
        }
        self.end += n;
        Ok(true)
    }

    fn available(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Ensures at least `n` bytes are buffered (false if the input ends first).
    fn want(&mut self, n: usize) -> io::Result<bool> {
        while self.end - self.start < n {
            if !self.fill()? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn read_line(&mut self) -> Result<String, MultipartError> {
        loop {
            if let Some(i) = find(self.available(), b"\r\n") {
                let line = String::from_utf8_lossy(&self.available()[..i]).into_owned();
                self.start += i + 2;
                return Ok(line);
            }
            if self.end - self.start > MAX_HEADER_LINE {
                return Err(MultipartError::Malformed("header line too long".into()));
            }
            if !self.fill()? {
                return Err(MultipartError::Malformed(
                    "Multipart stream is incomplete".into(),
                ));
            }
        }
    }

    /// Passes everything up to `delim` to `sink` and consumes the delimiter.
    fn copy_until(
        &mut self,
        delim: &[u8],
        sink: &mut dyn FnMut(&[u8]) -> io::Result<()>,
    ) -> Result<(), MultipartError> {
        loop {
            if let Some(i) = find(self.available(), delim) {
                sink(&self.available()[..i])?;
                self.start += i + delim.len();
                return Ok(());
            }
            let keep = delim.len() - 1;
            let len = self.end - self.start;
            if len > keep {
                sink(&self.available()[..len - keep])?;
                self.start += len - keep;
            }
            if !self.fill()? {
                return Err(MultipartError::Malformed(
                    "Multipart stream is incomplete".into(),
                ));
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let first = *needle.first()?;
    let mut from = 0;
    while from + needle.len() <= haystack.len() {
        let i = from + haystack[from..].iter().position(|&b| b == first)?;
        if haystack.get(i..i + needle.len())? == needle {
            return Some(i);
        }
        from = i + 1;
    }
    None
}

/// `name` and `filename` of a `Content-Disposition: form-data; …` header value.
fn disposition(value: &str) -> (Option<String>, Option<String>) {
    let mut name = None;
    let mut filename = None;
    for part in value.split(';').skip(1) {
        if let Some((k, v)) = part.split_once('=') {
            let v = v.trim().trim_matches('"').to_string();
            match k.trim().to_ascii_lowercase().as_str() {
                "name" => name = Some(v),
                "filename" => filename = Some(v),
                _ => {}
            }
        }
    }
    (name, filename)
}

/// Copies the content of the first form field called `wanted` into `dest`; other fields are
/// skipped. Stops reading after the closing delimiter.
pub fn extract_field(
    body: impl Read,
    boundary: &str,
    wanted: &str,
    dest: &mut dyn Write,
) -> Result<Field, MultipartError> {
    let mut s = Scanner {
        inner: body,
        buf: vec![0u8; BUF],
        start: 0,
        end: 2,
        eof: false,
    };
    // A virtual CRLF so that the first delimiter looks like all the others.
    s.buf[..2].copy_from_slice(b"\r\n");
    let delim = format!("\r\n--{boundary}").into_bytes();
    s.copy_until(&delim, &mut |_| Ok(()))?;
    let mut found: Option<Field> = None;
    loop {
        if !s.want(2)? {
            return Err(MultipartError::Malformed(
                "Multipart stream is incomplete".into(),
            ));
        }
        if s.available().starts_with(b"--") {
            break;
        }
        // Transport padding, then CRLF.
        let rest = s.read_line()?;
        if !rest.trim().is_empty() {
            return Err(MultipartError::Malformed("bad multipart delimiter".into()));
        }
        let mut name = None;
        let mut filename = None;
        loop {
            let line = s.read_line()?;
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.trim().eq_ignore_ascii_case("content-disposition")
            {
                (name, filename) = disposition(v.trim());
            }
        }
        if found.is_none() && name.as_deref() == Some(wanted) {
            let mut size = 0u64;
            s.copy_until(&delim, &mut |data| {
                size += data.len() as u64;
                dest.write_all(data)
            })?;
            found = Some(Field { filename, size });
        } else {
            s.copy_until(&delim, &mut |_| Ok(()))?;
        }
    }
    found.ok_or(MultipartError::MissingField)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(boundary: &str, parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, filename, data) in parts {
            out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
            let fname = filename
                .map(|f| format!("; filename=\"{f}\""))
                .unwrap_or_default();
            out.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"{fname}\r\n").as_bytes(),
            );
            out.extend_from_slice(b"Content-Type: application/octet-stream\r\n\r\n");
            out.extend_from_slice(data);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        out
    }

    /// Feeds the parser a few bytes at a time.
    struct Trickle<'a>(&'a [u8], usize);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.1.min(buf.len()).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn extracts_the_snapshot_field() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let mut tricky = data.clone();
        tricky.extend_from_slice(b"\r\n--boun"); // almost a delimiter
        let body = form(
            "bound",
            &[
                ("other", None, b"x"),
                ("snapshot", Some("a.snapshot"), &tricky),
                ("snapshot", Some("b.snapshot"), b"ignored"),
            ],
        );
        assert_eq!(
            boundary("multipart/form-data; boundary=bound").as_deref(),
            Some("bound")
        );
        for step in [1, 7, 4096, 1 << 20] {
            let mut out = Vec::new();
            let field =
                extract_field(Trickle(&body, step), "bound", "snapshot", &mut out).expect("field");
            assert_eq!(field.filename.as_deref(), Some("a.snapshot"));
            assert_eq!(out, tricky);
        }
        let body = form("b", &[("file", Some("x"), b"data")]);
        assert!(matches!(
            extract_field(&body[..], "b", "snapshot", &mut Vec::new()),
            Err(MultipartError::MissingField)
        ));
        assert!(matches!(
            extract_field(&body[..20], "b", "snapshot", &mut Vec::new()),
            Err(MultipartError::Malformed(_))
        ));
    }
}
