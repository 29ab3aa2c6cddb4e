//! Minimal HTTP/1.1: request-head parsing, request bodies (Content-Length or chunked),
//! and response writing (in-memory bodies, file ranges streamed from disk, or bodies made
//! while they are sent, with chunked transfer encoding).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::TcpStream;
use std::num::NonZeroU64;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const MAX_LINE: u64 = 16 * 1024;
const MAX_HEADERS: usize = 200;

/// A parsed request head.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// The path as sent, without the query string.
    pub raw_path: String,
    /// Percent-decoded, non-empty path segments (so trailing and doubled slashes are ignored).
    pub segments: Vec<String>,
    pub query: BTreeMap<String, String>,
    /// Lower-case names; repeated headers are joined with ", ".
    pub headers: BTreeMap<String, String>,
    pub http10: bool,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    pub fn query(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }

    /// `wait` query parameter, with a default.
    pub fn wait(&self, default: bool) -> bool {
        match self.query("wait") {
            Some(v) => v.eq_ignore_ascii_case("true") || v == "1",
            None => default,
        }
    }

    pub fn wants_close(&self) -> bool {
        let conn = self.header("connection").unwrap_or("").to_ascii_lowercase();
        if self.http10 {
            !conn.contains("keep-alive")
        } else {
            conn.contains("close")
        }
    }

    pub fn expects_continue(&self) -> bool {
        self.header("expect")
            .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
    }

    pub fn body_kind(&self) -> Result<BodyKind, String> {
        if let Some(te) = self.header("transfer-encoding") {
            if te.to_ascii_lowercase().contains("chunked") {
                return Ok(BodyKind::Chunked);
            }
            return Err(format!("unsupported transfer-encoding {te}"));
        }
        match self.header("content-length") {
            Some(v) => v
                .trim()
                .parse::<u64>()
                .map(BodyKind::Length)
                .map_err(|_| format!("invalid content-length {v}")),
            None => Ok(BodyKind::Length(0)),
        }
    }
}

/// Reads one request head. `Ok(None)` means the peer closed the connection cleanly.
pub fn read_head(reader: &mut impl BufRead) -> io::Result<Option<Request>> {
    let mut line = Vec::new();
    // Skip stray empty lines between requests (RFC 9112 §2.2).
    loop {
        line.clear();
        let n = reader
            .by_ref()
            .take(MAX_LINE)
            .read_until(b'\n', &mut line)?;
        if n == 0 {
            return Ok(None);
        }
        if !trim_crlf(&line).is_empty() {
            break;
        }
    }
    let request_line = String::from_utf8_lossy(trim_crlf(&line)).into_owned();
    let mut parts = request_line.split_whitespace();
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(bad_data(format!("malformed request line {request_line:?}")));
    };
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    for _ in 0..MAX_HEADERS {
        line.clear();
        let n = reader
            .by_ref()
            .take(MAX_LINE)
            .read_until(b'\n', &mut line)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed inside the request head",
            ));
        }
        let text = String::from_utf8_lossy(trim_crlf(&line)).into_owned();
        if text.is_empty() {
            let (path, query) = match target.split_once('?') {
                Some((p, q)) => (p, parse_query(q)),
                None => (target, BTreeMap::new()),
            };
            let segments = path
                .split('/')
                .filter(|s| !s.is_empty())
                .map(percent_decode)
                .collect();
            return Ok(Some(Request {
                method: method.to_string(),
                raw_path: path.to_string(),
                segments,
                query,
                headers,
                http10: version.eq_ignore_ascii_case("HTTP/1.0"),
            }));
        }
        let Some((name, value)) = text.split_once(':') else {
            return Err(bad_data(format!("malformed header line {text:?}")));
        };
        let name = name.trim().to_ascii_lowercase();
        let value = value.trim().to_string();
        headers
            .entry(name)
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert(value);
    }
    Err(bad_data("too many headers".to_string()))
}

fn bad_data(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

fn trim_crlf(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

pub fn parse_query(q: &str) -> BTreeMap<String, String> {
    q.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (
                percent_decode(&k.replace('+', " ")),
                percent_decode(&v.replace('+', " ")),
            )
        })
        .collect()
}

pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    Length(u64),
    Chunked,
}

/// The request body as a stream. Sends `100 Continue` on first read when the client asked for it.
pub struct BodyReader<'a> {
    reader: &'a mut BufReader<TcpStream>,
    kind: BodyKind,
    /// Remaining bytes of the current chunk (chunked) or of the body (length).
    remaining: u64,
    chunk_started: bool,
    done: bool,
    continue_pending: bool,
}

impl<'a> BodyReader<'a> {
    pub fn new(
        reader: &'a mut BufReader<TcpStream>,
        kind: BodyKind,
        expect_continue: bool,
    ) -> Self {
        let (remaining, done) = match kind {
            BodyKind::Length(n) => (n, n == 0),
            BodyKind::Chunked => (0, false),
        };
        BodyReader {
            reader,
            kind,
            remaining,
            chunk_started: false,
            done,
            continue_pending: expect_continue && !done,
        }
    }

    /// Reads the whole body into memory (for small JSON bodies).
    pub fn read_all(&mut self, limit: u64) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.by_ref().take(limit).read_to_end(&mut out)?;
        Ok(out)
    }

    /// Consumes what is left of the body so the connection can be reused.
    /// Returns false when the connection must be closed instead (the client is waiting for
    /// `100 Continue` that was never sent, or the body is broken).
    pub fn drain(&mut self) -> bool {
        if self.done {
            return true;
        }
        if self.continue_pending {
            return false;
        }
        io::copy(self, &mut io::sink()).is_ok() && self.done
    }

    fn send_continue(&mut self) -> io::Result<()> {
        if self.continue_pending {
            self.continue_pending = false;
            let mut w = self.reader.get_ref();
            w.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
            w.flush()?;
        }
        Ok(())
    }

    fn read_chunk_line(&mut self) -> io::Result<String> {
        let mut line = Vec::new();
        let n = self
            .reader
            .by_ref()
            .take(MAX_LINE)
            .read_until(b'\n', &mut line)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed inside a chunked body",
            ));
        }
        Ok(String::from_utf8_lossy(trim_crlf(&line)).into_owned())
    }
}

impl Read for BodyReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        self.send_continue()?;
        if self.kind == BodyKind::Chunked && self.remaining == 0 {
            if self.chunk_started {
                // CRLF after the previous chunk's data.
                let line = self.read_chunk_line()?;
                if !line.is_empty() {
                    return Err(bad_data("missing CRLF after chunk".into()));
                }
            }
            let line = self.read_chunk_line()?;
            let size_text = line.split(';').next().unwrap_or("").trim();
            let size = u64::from_str_radix(size_text, 16)
                .map_err(|_| bad_data(format!("bad chunk size {line:?}")))?;
            self.chunk_started = true;
            if size == 0 {
                // Trailers, up to the empty line.
                while !self.read_chunk_line()?.is_empty() {}
                self.done = true;
                return Ok(0);
            }
            self.remaining = size;
        }
        let want = (buf.len() as u64).min(self.remaining) as usize;
        let n = self.reader.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed inside the request body",
            ));
        }
        self.remaining -= n as u64;
        if self.kind != BodyKind::Chunked && self.remaining == 0 {
            self.done = true;
        }
        Ok(n)
    }
}

/// A response body.
#[derive(Debug)]
pub enum ResponseBody {
    Bytes(Vec<u8>),
    /// `len` bytes of the file starting at `start`, streamed in chunks.
    File {
        path: PathBuf,
        start: u64,
        len: u64,
    },
    /// Made while it is sent: `transfer-encoding: chunked`, no content-length.
    Stream(BodyStream),
}

/// Writes a body to the writer it is given (a tar archive, say). Called once to send the
/// body; once more into a counter only when its length is wanted ([`Response::body_len`]).
pub type BodyWriter = Box<dyn Fn(&mut dyn Write) -> io::Result<()> + Send + Sync>;

/// A body sent as it is made, with chunked transfer encoding.
pub struct BodyStream {
    write: BodyWriter,
    /// Paced: the body bytes go out no faster than this (bytes per second).
    rate: Option<NonZeroU64>,
}

impl BodyStream {
    pub fn new(write: BodyWriter, rate: Option<NonZeroU64>) -> Self {
        BodyStream { write, rate }
    }

    /// How long the body is, by making it into a counter.
    pub fn measure(&self) -> io::Result<u64> {
        let mut counter = Counter(0);
        (self.write)(&mut counter)?;
        Ok(counter.0)
    }
}

impl std::fmt::Debug for BodyStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodyStream")
            .field("rate", &self.rate)
            .finish_non_exhaustive()
    }
}

struct Counter(u64);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: ResponseBody,
}

impl Response {
    pub fn new(status: u16, content_type: Option<&str>, body: Vec<u8>) -> Self {
        let mut headers = Vec::new();
        if let Some(ct) = content_type {
            headers.push(("content-type".to_string(), ct.to_string()));
        }
        Response {
            status,
            headers,
            body: ResponseBody::Bytes(body),
        }
    }

    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        Self::new(
            status,
            Some("application/json"),
            serde_json::to_vec(value).unwrap_or_default(),
        )
    }

    pub fn plain(status: u16, text: &str) -> Self {
        Self::new(
            status,
            Some("text/plain; charset=utf-8"),
            text.as_bytes().to_vec(),
        )
    }

    /// No answer at all: the connection is closed instead (see [`Response::is_dropped`]).
    pub fn dropped() -> Self {
        Self::new(0, None, Vec::new())
    }

    pub fn is_dropped(&self) -> bool {
        self.status == 0
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// A streamed body's length is found by making it once without sending it.
    pub fn body_len(&self) -> u64 {
        match &self.body {
            ResponseBody::Bytes(b) => b.len() as u64,
            ResponseBody::File { len, .. } => *len,
            ResponseBody::Stream(s) => s.measure().unwrap_or(0),
        }
    }
}

/// What to do to a response body (fault injection).
#[derive(Debug, Clone, Copy)]
pub enum BodyFault {
    Truncate(u64),
    Stall(u64, Duration),
}

pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        202 => "Accepted",
        206 => "Partial Content",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        412 => "Precondition Failed",
        413 => "Payload Too Large",
        416 => "Range Not Satisfiable",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

/// Writes a response. Returns `Ok(false)` when the body was cut short on purpose (the caller
/// must then close the connection).
pub fn write_response(
    stream: &TcpStream,
    resp: &Response,
    close: bool,
    fault: Option<BodyFault>,
) -> io::Result<bool> {
    write_response_counted(stream, resp, close, fault, &mut 0)
}

/// [`write_response`], adding the body bytes handed to the socket to `served` as they go (so
/// the count holds even when the client goes away mid-body).
pub fn write_response_counted(
    stream: &TcpStream,
    resp: &Response,
    close: bool,
    fault: Option<BodyFault>,
    served: &mut u64,
) -> io::Result<bool> {
    let mut w = io::BufWriter::with_capacity(64 * 1024, stream);
    write!(w, "HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status))?;
    for (name, value) in &resp.headers {
        write!(w, "{name}: {value}\r\n")?;
    }
    if let ResponseBody::Stream(stream) = &resp.body {
        w.write_all(b"transfer-encoding: chunked\r\n")?;
        if close {
            w.write_all(b"connection: close\r\n")?;
        }
        w.write_all(b"\r\n")?;
        return write_chunked(w, stream, fault, served);
    }
    write!(w, "content-length: {}\r\n", resp.body_len())?;
    if close {
        w.write_all(b"connection: close\r\n")?;
    }
    w.write_all(b"\r\n")?;

    let mut sent: u64 = 0;
    let mut send = |w: &mut io::BufWriter<&TcpStream>, mut data: &[u8]| -> io::Result<bool> {
        while !data.is_empty() {
            let n = match fault {
                Some(BodyFault::Truncate(after)) | Some(BodyFault::Stall(after, _))
                    if sent < after =>
                {
                    ((after - sent) as usize).min(data.len())
                }
                Some(BodyFault::Truncate(_)) => {
                    w.flush()?;
                    return Ok(false);
                }
                Some(BodyFault::Stall(after, stall)) if sent == after => {
                    w.flush()?;
                    std::thread::sleep(stall);
                    sent += 1; // past the stall point: never stall again
                    *served += 1;
                    w.write_all(&data[..1])?;
                    data = &data[1..];
                    continue;
                }
                _ => data.len(),
            };
            *served += n as u64;
            w.write_all(&data[..n])?;
            sent += n as u64;
            data = &data[n..];
        }
        Ok(true)
    };

    match &resp.body {
        ResponseBody::Bytes(b) => {
            if !send(&mut w, b)? {
                return Ok(false);
            }
        }
        ResponseBody::File { path, start, len } => {
            let mut file = File::open(path)?;
            file.seek(SeekFrom::Start(*start))?;
            let mut file = file.take(*len);
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = file.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                if !send(&mut w, &buf[..n])? {
                    return Ok(false);
                }
            }
        }
        ResponseBody::Stream(_) => unreachable!("streamed bodies are sent chunked above"),
    }
    // A Truncate fault at exactly the body length (or beyond) still closes the connection.
    if let Some(BodyFault::Truncate(_)) = fault {
        w.flush()?;
        return Ok(false);
    }
    w.flush()?;
    Ok(true)
}

/// The chunked body of a streamed response, made straight into the socket. Faults count the
/// body's bytes (not the chunk framing): [`BodyFault::Truncate`] sends that many, then stops
/// without the terminating `0` chunk (the caller closes the connection: a stream that failed
/// half-way, as a real server ends it); [`BodyFault::Stall`] sends that many, then waits.
fn write_chunked(
    mut w: io::BufWriter<&TcpStream>,
    stream: &BodyStream,
    fault: Option<BodyFault>,
    served: &mut u64,
) -> io::Result<bool> {
    let mut chunks = Chunks {
        w: &mut w,
        fault,
        sent: 0,
        served,
        cut: false,
        stalled: false,
        rate: stream.rate,
        started: Instant::now(),
    };
    let made = {
        // Chunks of up to 64 KiB, whatever sizes the body is written in.
        let mut buffered = io::BufWriter::with_capacity(64 * 1024, &mut chunks);
        (stream.write)(&mut buffered).and_then(|()| buffered.flush())
    };
    let cut = chunks.cut;
    match made {
        Err(_) if cut => {
            w.flush()?;
            return Ok(false);
        }
        Err(e) => return Err(e),
        Ok(()) => {}
    }
    if let Some(BodyFault::Truncate(_)) = fault {
        // Cut at (or beyond) the body's end: still no terminating chunk.
        w.flush()?;
        return Ok(false);
    }
    w.write_all(b"0\r\n\r\n")?;
    w.flush()?;
    Ok(true)
}

/// Writes each piece as one chunk, applying a body fault and the pacing.
struct Chunks<'a, 'b> {
    w: &'a mut io::BufWriter<&'b TcpStream>,
    fault: Option<BodyFault>,
    sent: u64,
    served: &'a mut u64,
    cut: bool,
    stalled: bool,
    rate: Option<NonZeroU64>,
    started: Instant,
}

impl Write for Chunks<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let mut n = buf.len();
        match self.fault {
            Some(BodyFault::Truncate(after)) => {
                if self.sent >= after {
                    self.cut = true;
                    return Err(io::Error::other("body cut short (injected fault)"));
                }
                n = n.min((after - self.sent) as usize);
            }
            Some(BodyFault::Stall(after, stall)) => {
                if self.sent < after {
                    n = n.min((after - self.sent) as usize);
                } else if !self.stalled {
                    self.stalled = true;
                    self.w.flush()?;
                    std::thread::sleep(stall);
                }
            }
            None => {}
        }
        write!(self.w, "{n:x}\r\n")?;
        self.w.write_all(&buf[..n])?;
        self.w.write_all(b"\r\n")?;
        self.sent += n as u64;
        *self.served += n as u64;
        if self.rate.is_some() {
            self.w.flush()?;
            crate::pace::stretch(self.started, self.sent, self.rate);
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}

/// Decodes a chunked body (what follows the response head); `true` when it ended with the
/// terminating `0` chunk, `false` when the bytes ran out first.
#[cfg(test)]
pub(crate) fn decode_chunked(mut raw: &[u8]) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    loop {
        let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") else {
            return (out, false);
        };
        let size_text = String::from_utf8_lossy(&raw[..eol]).into_owned();
        let size = usize::from_str_radix(size_text.trim(), 16).expect("chunk size");
        raw = &raw[eol + 2..];
        if size == 0 {
            return (out, raw.starts_with(b"\r\n"));
        }
        if raw.len() < size + 2 {
            out.extend_from_slice(&raw[..size.min(raw.len())]);
            return (out, false);
        }
        assert_eq!(&raw[size..size + 2], b"\r\n", "CRLF after a chunk");
        out.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_percent_and_query() {
        assert_eq!(percent_decode("a%20b%2Fc"), "a b/c");
        assert_eq!(percent_decode("bad%zz%"), "bad%zz%");
        let q = parse_query("wait=true&checksum=ab&x");
        assert_eq!(q.get("wait").map(String::as_str), Some("true"));
        assert_eq!(q.get("x").map(String::as_str), Some(""));
    }
}
