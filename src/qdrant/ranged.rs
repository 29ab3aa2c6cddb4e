//! Snapshot downloads that can pick up where a broken one stopped: `Range: bytes=<offset>-`
//! with `If-Match: <etag>` (Qdrant honours `If-Match` but not `If-Range`; docs/qdrant.md,
//! "Snapshot downloads").
//!
//! A server that does not honour the range exactly (a 200 with the whole file, a 412 because
//! the file changed, a 416, or a 206 for some other range) gets a download from the start:
//! the caller learns which from [`SnapshotBody::start`], so it never splices unrelated bytes.

use std::io::Write;
use std::time::Duration;

use ureq::http::{HeaderValue, Method, Response};

use super::trace::Exchange;
use super::{Client, QdrantError, collection_path, encode_segment};

/// Where a resumed download picks up: the bytes before `offset` are already on disk and came
/// from the file whose ETag was `etag`; `total` is the size Qdrant reported for the file.
#[derive(Debug, Clone)]
pub struct ResumeFrom {
    pub offset: u64,
    pub etag: String,
    pub total: u64,
}

/// An answered snapshot download whose body has not been read yet.
pub struct SnapshotBody<'c> {
    client: &'c Client,
    response: Response<ureq::Body>,
    exchange: Exchange,
    what: String,
    stall: Duration,
    start: u64,
    etag: Option<String>,
}

impl SnapshotBody<'_> {
    /// The file offset of the body's first byte: the requested offset when the server honoured
    /// the range, 0 when it sends the whole file.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// The file name the server gives the body (`Content-Disposition: attachment;
    /// filename="…"`), when it gives a short printable one: for messages only, never a path.
    pub fn file_name(&self) -> Option<String> {
        let value = header(&self.response, "content-disposition")?;
        let (_, rest) = value.split_once("filename=\"")?;
        let (name, _) = rest.split_once('"')?;
        let printable = !name.is_empty()
            && name.len() <= 255
            && name
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'/' && b != b'\\');
        printable.then(|| name.to_string())
    }

    /// The ETag to resume this file with later, when the server offers byte ranges and a
    /// strong ETag that can be sent back as it is.
    pub fn resume_tag(&self) -> Option<&str> {
        self.etag.as_deref()
    }

    /// Streams the body into `sink`, returning the number of bytes written; fails like
    /// [`Client::download_snapshot`] (a short body, a stall, a failing sink).
    pub fn receive(self, sink: &mut dyn Write) -> Result<u64, QdrantError> {
        let status = self.response.status().as_u16();
        let result = self
            .client
            .receive_snapshot(self.response, sink, &self.what, self.stall);
        match &result {
            Ok(written) => self.exchange.done(status, *written),
            Err(e) => self.exchange.failed(e),
        }
        result
    }
}

impl Client {
    /// `GET /collections/{name}/snapshots/{snapshot}` with `Accept-Encoding: identity`, from
    /// `resume.offset` when `resume` is given and the server honours it, else from the start.
    pub fn open_snapshot(
        &self,
        name: &str,
        snapshot: &str,
        resume: Option<&ResumeFrom>,
    ) -> Result<SnapshotBody<'_>, QdrantError> {
        self.open_snapshot_at(&collection_path(name, ""), snapshot, resume)
    }

    /// [`Client::open_snapshot`] for the snapshots under `base` (a collection's or a shard's path).
    pub(super) fn open_snapshot_at(
        &self,
        base: &str,
        snapshot: &str,
        resume: Option<&ResumeFrom>,
    ) -> Result<SnapshotBody<'_>, QdrantError> {
        let path = format!("{base}/snapshots/{}", encode_segment(snapshot));
        let what = format!("downloading snapshot {snapshot}");
        let stall = self.timeouts.transfer_stall;
        if let Some(resume) = resume
            && let Ok(tag) = HeaderValue::from_str(&resume.etag)
        {
            let range = HeaderValue::from_str(&format!("bytes={}-", resume.offset))
                .map_err(|e| self.invalid(&path, e))?;
            let headers = [("range", range), ("if-match", tag)];
            let (response, exchange) = self.send_download(&path, &what, stall, headers)?;
            let status = response.status().as_u16();
            match status {
                206 => match not_honoured(&response, resume) {
                    None => {
                        return Ok(self.body(response, exchange, what, stall, resume.offset));
                    }
                    Some(why) => restart(&exchange, status, &why),
                },
                // The whole file, fresh: a download from the start, in this very answer.
                200 => return Ok(self.body(response, exchange, what, stall, 0)),
                412 => restart(&exchange, status, "the file changed on the server"),
                416 => restart(&exchange, status, "the range is not satisfiable"),
                _ => {
                    self.check_status(Method::GET, &path, response, &exchange)?;
                    restart(&exchange, status, "unexpected answer to a range request");
                }
            }
        }
        let (response, exchange) = self.send_download(&path, &what, stall, [])?;
        let response = self.check_status(Method::GET, &path, response, &exchange)?;
        Ok(self.body(response, exchange, what, stall, 0))
    }

    fn send_download<const N: usize>(
        &self,
        path: &str,
        what: &str,
        stall: Duration,
        extra: [(&'static str, HeaderValue); N],
    ) -> Result<(Response<ureq::Body>, Exchange), QdrantError> {
        let mut request = self.request::<Vec<u8>>(Method::GET, path, None)?;
        let headers = request.headers_mut();
        headers.insert("accept-encoding", HeaderValue::from_static("identity"));
        for (header, value) in extra {
            headers.insert(header, value);
        }
        let request = self
            .agent
            .configure_request(request)
            .timeout_recv_response(Some(stall))
            .timeout_per_read(Some(stall))
            .build();
        self.send(path, request, what, stall, 0)
    }

    /// `GET {path}` for a snapshot Qdrant builds and streams into the answer (a chunked body
    /// without `Content-Length`, no ranges, no checksum), with `Accept-Encoding: identity`.
    /// Its body cannot be resumed: a broken one is asked for again from the start.
    pub(super) fn open_streamed(&self, path: &str) -> Result<SnapshotBody<'_>, QdrantError> {
        let what = format!("streaming {path}");
        let stall = self.timeouts.transfer_stall;
        let (response, exchange) = self.send_download(path, &what, stall, [])?;
        let response = self.check_status(Method::GET, path, response, &exchange)?;
        let mut body = self.body(response, exchange, what, stall, 0);
        // Not resumable, whatever the headers say.
        body.etag = None;
        Ok(body)
    }

    fn body(
        &self,
        response: Response<ureq::Body>,
        exchange: Exchange,
        what: String,
        stall: Duration,
        start: u64,
    ) -> SnapshotBody<'_> {
        let etag = resume_tag(&response);
        SnapshotBody {
            client: self,
            response,
            exchange,
            what,
            stall,
            start,
            etag,
        }
    }
}

/// Closes the log line of a ranged answer that is not used (its body is dropped unread).
fn restart(exchange: &Exchange, status: u16, why: &str) {
    log::info!("not resuming the download ({why}): starting it again from the first byte");
    exchange.done(status, 0);
}

fn header<'r>(response: &'r Response<ureq::Body>, name: &str) -> Option<&'r str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

/// The ETag a later resume may send back: only a strong one (`If-Match` compares strongly),
/// only from a server that says it serves byte ranges, and only a short printable one.
fn resume_tag(response: &Response<ureq::Body>) -> Option<String> {
    let ranges = header(response, "accept-ranges")?
        .split(',')
        .any(|unit| unit.trim().eq_ignore_ascii_case("bytes"));
    let tag = header(response, "etag")?.trim();
    let usable = ranges
        && tag.len() >= 2
        && tag.len() <= 256
        && tag.starts_with('"')
        && tag.ends_with('"')
        && tag.bytes().all(|b| b.is_ascii_graphic());
    usable.then(|| tag.to_string())
}

/// Why a 206 is not the rest of the file asked for, if it is not: it must cover exactly
/// `offset..total` of the same file, uncompressed.
fn not_honoured(response: &Response<ureq::Body>, resume: &ResumeFrom) -> Option<String> {
    let Some(range) = header(response, "content-range") else {
        return Some("a partial answer without Content-Range".into());
    };
    let Some((start, end, total)) = parse_content_range(range) else {
        return Some(format!("an unreadable Content-Range `{range}`"));
    };
    if start != resume.offset || total != resume.total || end.checked_add(1) != Some(total) {
        return Some(format!(
            "asked for bytes {}-{} of {}, got `{range}`",
            resume.offset,
            resume.total.saturating_sub(1),
            resume.total
        ));
    }
    if let Some(length) = response.body().content_length()
        && Some(length) != total.checked_sub(start)
    {
        return Some(format!("a Content-Length of {length} for `{range}`"));
    }
    if let Some(tag) = header(response, "etag")
        && tag.trim() != resume.etag
    {
        return Some("the file's ETag changed".into());
    }
    if let Some(encoding) = header(response, "content-encoding")
        && !encoding.trim().eq_ignore_ascii_case("identity")
    {
        return Some(format!("a {encoding}-encoded range"));
    }
    None
}

/// `bytes START-END/TOTAL` (RFC 9110 §14.4); `None` for anything else (`*` included).
fn parse_content_range(value: &str) -> Option<(u64, u64, u64)> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    let (span, total) = rest.split_once('/')?;
    let (start, end) = span.trim().split_once('-')?;
    let number = |s: &str| {
        let s = s.trim();
        match !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            true => s.parse::<u64>().ok(),
            false => None,
        }
    };
    let (start, end, total) = (number(start)?, number(end)?, number(total)?);
    (start <= end && end < total).then_some((start, end, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges_are_read_strictly() {
        assert_eq!(
            parse_content_range("bytes 100-199/760832"),
            Some((100, 199, 760832))
        );
        assert_eq!(parse_content_range("bytes 0-0/1"), Some((0, 0, 1)));
        assert_eq!(parse_content_range("bytes */760832"), None);
        assert_eq!(parse_content_range("bytes 5-4/10"), None);
        assert_eq!(parse_content_range("bytes 5-10/10"), None);
        assert_eq!(parse_content_range("bytes -5-9/10"), None);
        assert_eq!(parse_content_range("bytes +5-9/10"), None);
        assert_eq!(parse_content_range("items 1-2/3"), None);
        assert_eq!(parse_content_range("bytes 1-2/*"), None);
    }
}
