//! The object-storage client: S3's REST API, signed by `rusty-s3` (which only builds signed
//! URLs and parses S3's XML) and sent by a ureq agent of its own, blocking like the rest.
//!
//! Every request is a presigned URL (the signature in the query string, the body unsigned),
//! so a streamed body needs no hash before it is sent. A signed URL is a credential for as
//! long as it is valid: it is never logged or put in an error; messages name the bucket and
//! the key. The secret key and session token are registered as secrets, so the `-v` log
//! masks them whoever writes them.
//!
//! Calls that may be repeated safely are retried on throttling (503 SlowDown), server errors
//! and dropped connections, with a growing pause; a refused connection or a host that does
//! not resolve fails at once.

pub mod config;
pub mod error;
pub mod location;
pub mod transfer;
mod xml;

use std::io::Read;
use std::time::{Duration, SystemTime};

use rusty_s3::actions::{CompleteMultipartUpload, CreateMultipartUpload, ListObjectsV2, S3Action};
use rusty_s3::{Bucket, Credentials, UrlStyle};
use ureq::Agent;
use ureq::http::{Method, Response};

pub use config::{ConfigError, Keys, S3Config};
pub use error::S3Error;
pub use location::{LocationError, S3Location};

/// How long a signed URL stays valid: only its start must fall in it, so an hour covers any
/// request, however slow its body.
const SIGNED_FOR: Duration = Duration::from_secs(3600);
/// Tries of a call that may be repeated: the first and seven more, 0.25 s apart at first and
/// twice as long each time up to 8 s (about 24 s in all, for throttling to pass); a call that
/// timed out is tried once more only (a silent endpoint must fail within about twice the
/// request timeout).
const ATTEMPTS: u32 = 8;
const TIMEOUT_ATTEMPTS: u32 = 2;
const FIRST_PAUSE: Duration = Duration::from_millis(250);
const LONGEST_PAUSE: Duration = Duration::from_secs(8);
/// The most listing pages read for one listing (a service answering token after token of
/// empty pages must not loop forever).
const MAX_LIST_PAGES: usize = 10_000;
/// The most of an error answer read (S3's are a few hundred bytes).
const MAX_ERROR_BODY: u64 = 64 * 1024;
/// The most of a listing or upload answer read (a listing page of 1,000 keys is ~300 KiB).
const MAX_XML_BODY: u64 = 8 * 1024 * 1024;
/// The most keys one listing gathers: far more than any root of backups holds.
const MAX_LISTED: usize = 1_000_000;

/// One object as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    /// Its whole key.
    pub key: String,
    pub size: u64,
    /// As the service wrote it (RFC 3339); None when it is not readable.
    pub modified: Option<SystemTime>,
    /// Its version tag (quotes included), when the service gives one.
    pub etag: Option<String>,
}

/// What is under a prefix: objects, and the "folders" a delimiter made.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Listing {
    pub objects: Vec<Object>,
    /// Whole prefixes, ending with `/`.
    pub prefixes: Vec<String>,
}

/// An object being read: its bytes as they arrive.
pub struct Download {
    pub reader: Box<dyn Read + Send>,
    /// The length of what `reader` gives.
    pub len: u64,
    /// The version served (its ETag), when the service says.
    pub etag: Option<String>,
}

/// A client for one bucket (cheap to clone: clones share their connections).
#[derive(Clone)]
pub struct S3Client {
    agent: Agent,
    bucket: Bucket,
    credentials: Option<Credentials>,
    endpoint: String,
    request_timeout: Duration,
}

impl S3Client {
    /// A client for `bucket` as `config` says to reach it. `request_timeout` bounds the wait
    /// for each answer, `connect_timeout` each connection.
    pub fn new(
        config: &S3Config,
        bucket: &str,
        connect_timeout: Duration,
        request_timeout: Duration,
    ) -> Result<S3Client, S3Error> {
        let style = match config.path_style {
            true => UrlStyle::Path,
            false => UrlStyle::VirtualHost,
        };
        let endpoint = shown_endpoint(&config.endpoint);
        let bucket = Bucket::new(
            config.endpoint.clone(),
            style,
            bucket.to_string(),
            config.region.clone(),
        )
        .map_err(|e| S3Error::Unreachable {
            endpoint: endpoint.clone(),
            why: e.to_string(),
        })?;
        let credentials = config.credentials.as_ref().map(|keys| {
            crate::secrets::add_secret(&keys.secret_access_key);
            if let Some(token) = &keys.session_token {
                crate::secrets::add_secret(token);
            }
            match &keys.session_token {
                Some(token) => Credentials::new_with_token(
                    keys.access_key_id.clone(),
                    keys.secret_access_key.clone(),
                    token.clone(),
                ),
                None => {
                    Credentials::new(keys.access_key_id.clone(), keys.secret_access_key.clone())
                }
            }
        });
        // A body that stops moving for as long as an answer may take fails (and is tried again
        // like any timeout) instead of hanging the run.
        let agent = crate::http::agent(connect_timeout, request_timeout, Some(request_timeout));
        Ok(S3Client {
            agent,
            bucket,
            credentials,
            endpoint,
            request_timeout,
        })
    }

    pub fn bucket(&self) -> &str {
        self.bucket.name()
    }

    /// Writes `body` as the object `key`. With `create_only`, never over an existing object
    /// (`If-None-Match: *`): `Exists` when there is one.
    pub fn put(&self, key: &str, body: &[u8], create_only: bool) -> Result<(), S3Error> {
        let what = self.what("writing", key);
        addressable(key, &what)?;
        let mut attempts = 0;
        let written = self.retried(&what, || {
            attempts += 1;
            let mut action = self.bucket.put_object(self.credentials.as_ref(), key);
            if create_only {
                action.headers_mut().insert("if-none-match", "*");
            }
            let url = action.sign(SIGNED_FOR);
            let mut request = self.agent.put(url.as_str());
            if create_only {
                request = request.header("if-none-match", "*");
            }
            let response = request.send(body).map_err(|e| self.transport(&what, e))?;
            self.expect_ok(&what, response).map(drop)
        });
        match written {
            // An earlier attempt may have landed before its answer was lost: the object
            // there is then this one, which is no refusal.
            Err(S3Error::Exists { .. })
                if create_only
                    && attempts > 1
                    && self
                        .get_small(key, body.len() as u64)
                        .is_ok_and(|b| b == body) =>
            {
                Ok(())
            }
            other => other,
        }
    }

    /// Reads the object `key` from byte `start` on (to its end). `NotFound` when it is not
    /// there.
    pub fn get(&self, key: &str, start: u64) -> Result<Download, S3Error> {
        self.get_version(key, start, None)
    }

    /// [`S3Client::get`] of the version whose ETag is `etag` (`If-Match`), when one is given:
    /// [`S3Error::Changed`] once the object is another.
    pub fn get_version(
        &self,
        key: &str,
        start: u64,
        etag: Option<&str>,
    ) -> Result<Download, S3Error> {
        let etag_wanted = etag;
        let what = self.what("reading", key);
        addressable(key, &what)?;
        self.retried(&what, || {
            let mut action = self.bucket.get_object(self.credentials.as_ref(), key);
            let range = format!("bytes={start}-");
            if start > 0 {
                action.headers_mut().insert("range", range.clone());
            }
            if let Some(etag) = etag {
                action.headers_mut().insert("if-match", etag.to_string());
            }
            let url = action.sign(SIGNED_FOR);
            let range = (start > 0).then_some(range.as_str());
            let response = self.send_signed(
                &what,
                Method::GET,
                &url,
                &[("range", range), ("if-match", etag)],
            )?;
            let response = match self.expect_ok(&what, response) {
                Err(S3Error::Exists { what }) if etag.is_some() => {
                    return Err(S3Error::Changed { what });
                }
                other => other?,
            };
            let len = content_length(&response).ok_or_else(|| S3Error::Invalid {
                what: what.clone(),
                why: "no Content-Length".into(),
            })?;
            if start > 0 && response.status().as_u16() != 206 {
                return Err(S3Error::Invalid {
                    what: what.clone(),
                    why: "the range asked for was not honoured".into(),
                });
            }
            let etag = header(&response, "etag");
            // A service that ignores `If-Match` still names what it serves.
            let unquoted = |tag: &str| tag.trim_start_matches("W/").trim_matches('"').to_string();
            if let (Some(wanted), Some(served)) = (etag_wanted, etag.as_deref())
                && unquoted(wanted) != unquoted(served)
            {
                return Err(S3Error::Changed { what: what.clone() });
            }
            let reader = response.into_body().into_reader();
            Ok(Download {
                reader: Box::new(reader),
                len,
                etag,
            })
        })
    }

    /// Reads a whole small object (at most `max` bytes).
    pub fn get_small(&self, key: &str, max: u64) -> Result<Vec<u8>, S3Error> {
        let download = self.get(key, 0)?;
        let what = self.what("reading", key);
        if download.len > max {
            return Err(S3Error::Invalid {
                what,
                why: format!("it is {} bytes, more than the {max} expected", download.len),
            });
        }
        let mut bytes = Vec::with_capacity(download.len as usize);
        download
            .reader
            .take(max + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| S3Error::Transfer {
                what: what.clone(),
                why: e.kind().to_string(),
            })?;
        if bytes.len() as u64 != download.len {
            return Err(S3Error::Transfer {
                what,
                why: "the answer ended early".into(),
            });
        }
        Ok(bytes)
    }

    /// The size and time of the object `key`; None when it is not there.
    pub fn head(&self, key: &str) -> Result<Option<Object>, S3Error> {
        let what = self.what("looking up", key);
        addressable(key, &what)?;
        self.retried(&what, || {
            let url = self
                .bucket
                .head_object(self.credentials.as_ref(), key)
                .sign(SIGNED_FOR);
            let response = self.send_empty(&what, Method::HEAD, &url, None)?;
            match self.expect_ok(&what, response) {
                Ok(response) => Ok(Some(Object {
                    key: key.to_string(),
                    size: content_length(&response).unwrap_or(0),
                    modified: header(&response, "last-modified").and_then(|t| http_date(&t)),
                    etag: header(&response, "etag"),
                })),
                Err(S3Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })
    }

    /// Every object under `prefix`; with `folders`, the keys past the next `/` are grouped
    /// into [`Listing::prefixes`] instead.
    pub fn list(&self, prefix: &str, folders: bool) -> Result<Listing, S3Error> {
        let what = format!(
            "listing s3://{}/{}",
            self.bucket(),
            crate::names::shown(prefix)
        );
        let mut listing = Listing::default();
        let mut token: Option<String> = None;
        for page_number in 1.. {
            if page_number > MAX_LIST_PAGES {
                return Err(S3Error::Invalid {
                    what,
                    why: format!("more than {MAX_LIST_PAGES} pages"),
                });
            }
            let page = self.retried(&what, || {
                let mut action = ListObjectsV2::new(&self.bucket, self.credentials.as_ref());
                action.with_prefix(prefix);
                if folders {
                    action.with_delimiter("/");
                }
                if let Some(token) = &token {
                    action.with_continuation_token(token.as_str());
                }
                let url = action.sign(SIGNED_FOR);
                let response = self.send_empty(&what, Method::GET, &url, None)?;
                let body = self.xml_body(&what, response)?;
                xml::list_page(&body).ok_or_else(|| S3Error::Invalid {
                    what: what.clone(),
                    why: "it is not a listing".into(),
                })
            })?;
            for listed in page.objects {
                listing.objects.push(Object {
                    key: url_decoded(&listed.key, &what)?,
                    size: listed.size,
                    modified: rfc3339(&listed.modified),
                    etag: (!listed.etag.is_empty()).then_some(listed.etag),
                });
            }
            for folder in page.prefixes {
                listing.prefixes.push(url_decoded(&folder, &what)?);
            }
            if listing.objects.len() + listing.prefixes.len() > MAX_LISTED {
                return Err(S3Error::Invalid {
                    what,
                    why: format!("more than {MAX_LISTED} keys"),
                });
            }
            match page.next {
                Some(next) if !next.is_empty() && Some(&next) != token.as_ref() => {
                    token = Some(next)
                }
                _ => break,
            }
        }
        // A service may list a key outside the prefix asked for: never act on one.
        listing.objects.retain(|o| o.key.starts_with(prefix));
        listing.prefixes.retain(|p| p.starts_with(prefix));
        Ok(listing)
    }

    /// Deletes the object `key`; one that is not there is no error.
    pub fn delete(&self, key: &str) -> Result<(), S3Error> {
        let what = self.what("deleting", key);
        addressable(key, &what)?;
        self.retried(&what, || {
            let url = self
                .bucket
                .delete_object(self.credentials.as_ref(), key)
                .sign(SIGNED_FOR);
            let response = self.send_empty(&what, Method::DELETE, &url, None)?;
            match self.expect_ok(&what, response) {
                Ok(_) | Err(S3Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(e),
            }
        })
    }

    /// Starts a multipart upload of `key`: its upload id.
    pub fn begin_upload(&self, key: &str) -> Result<String, S3Error> {
        let what = self.what("starting the upload of", key);
        addressable(key, &what)?;
        self.retried(&what, || {
            let url = CreateMultipartUpload::new(&self.bucket, self.credentials.as_ref(), key)
                .sign(SIGNED_FOR);
            let response = self
                .agent
                .post(url.as_str())
                .send_empty()
                .map_err(|e| self.transport(&what, e))?;
            let body = self.xml_body(&what, response)?;
            let parsed = CreateMultipartUpload::parse_response(body.as_bytes()).map_err(|e| {
                S3Error::Invalid {
                    what: what.clone(),
                    why: e.to_string(),
                }
            })?;
            Ok(parsed.upload_id().to_string())
        })
    }

    /// Uploads part `number` (1 to 10,000) of an upload: its ETag.
    pub fn upload_part(
        &self,
        key: &str,
        upload: &str,
        number: u16,
        body: &[u8],
    ) -> Result<String, S3Error> {
        let what = format!("part {number} of {}", self.what("", key).trim_start());
        self.retried(&what, || {
            let url = self
                .bucket
                .upload_part(self.credentials.as_ref(), key, number, upload)
                .sign(SIGNED_FOR);
            let response = self
                .agent
                .put(url.as_str())
                .send(body)
                .map_err(|e| self.transport(&what, e))?;
            let response = self.expect_ok(&what, response)?;
            header(&response, "etag").ok_or_else(|| S3Error::Invalid {
                what: what.clone(),
                why: "no ETag".into(),
            })
        })
    }

    /// Completes an upload from its parts' ETags, in order. With `create_only` (a service
    /// that honours it), never over an existing object.
    pub fn complete_upload(
        &self,
        key: &str,
        upload: &str,
        etags: &[String],
    ) -> Result<(), S3Error> {
        let what = self.what("completing the upload of", key);
        self.retried(&what, || {
            let action = CompleteMultipartUpload::new(
                &self.bucket,
                self.credentials.as_ref(),
                key,
                upload,
                etags.iter().map(String::as_str),
            );
            let url = action.sign(SIGNED_FOR);
            let body = action.body();
            let response = self
                .agent
                .post(url.as_str())
                .send(body.as_bytes())
                .map_err(|e| self.transport(&what, e))?;
            // S3 may answer 200 with an error in the body when the completion failed late;
            // an internal error or throttling there is worth another try, as a 500 or 503 is.
            let body = self.xml_body(&what, response)?;
            let (code, message) = xml::code_and_message(&body);
            let status = match code.as_str() {
                "" => return Ok(()),
                "InternalError" => 500,
                "SlowDown" | "ServiceUnavailable" => 503,
                _ => 200,
            };
            Err(S3Error::Server {
                what: what.clone(),
                status,
                code,
                message,
            })
        })
    }

    /// Aborts an upload (its parts are freed); one already gone is no error.
    pub fn abort_upload(&self, key: &str, upload: &str) -> Result<(), S3Error> {
        let what = self.what("aborting the upload of", key);
        addressable(key, &what)?;
        self.retried(&what, || {
            let url = self
                .bucket
                .abort_multipart_upload(self.credentials.as_ref(), key, upload)
                .sign(SIGNED_FOR);
            let response = self.send_empty(&what, Method::DELETE, &url, None)?;
            match self.expect_ok(&what, response) {
                Ok(_) | Err(S3Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(e),
            }
        })
    }

    fn what(&self, doing: &str, key: &str) -> String {
        format!(
            "{doing} s3://{}/{}",
            self.bucket(),
            crate::names::shown(key)
        )
    }

    /// Sends a request without a body to a signed URL (with a `Range` header when given): the
    /// answer, whatever its status.
    fn send_empty(
        &self,
        what: &str,
        method: Method,
        url: &url::Url,
        range: Option<&str>,
    ) -> Result<Response<ureq::Body>, S3Error> {
        self.send_signed(what, method, url, &[("range", range)])
    }

    /// A request without a body to a signed URL, with the headers that were signed (each
    /// sent when it has a value).
    fn send_signed(
        &self,
        what: &str,
        method: Method,
        url: &url::Url,
        headers: &[(&str, Option<&str>)],
    ) -> Result<Response<ureq::Body>, S3Error> {
        let mut request = ureq::http::Request::builder()
            .method(method)
            .uri(url.as_str());
        for (name, value) in headers {
            if let Some(value) = value {
                request = request.header(*name, *value);
            }
        }
        let request = request.body(()).map_err(|_| S3Error::Invalid {
            what: what.to_string(),
            why: "the signed URL or a header is not valid in a request".into(),
        })?;
        self.agent.run(request).map_err(|e| self.transport(what, e))
    }

    /// Runs `call` until it succeeds, fails for good, or [`ATTEMPTS`] are spent.
    fn retried<T>(
        &self,
        what: &str,
        mut call: impl FnMut() -> Result<T, S3Error>,
    ) -> Result<T, S3Error> {
        let mut pause = FIRST_PAUSE;
        let mut attempt = 1;
        loop {
            match call() {
                Err(e)
                    if e.is_transient()
                        && attempt
                            < match e {
                                S3Error::Timeout { .. } => TIMEOUT_ATTEMPTS,
                                _ => ATTEMPTS,
                            } =>
                {
                    log::debug!("{what}: {e}; trying again in {} ms", pause.as_millis());
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(LONGEST_PAUSE);
                    attempt += 1;
                }
                Err(S3Error::Server {
                    status, code, what, ..
                }) if attempt >= ATTEMPTS && matches!(status, 500 | 502 | 503 | 504) => {
                    return Err(S3Error::Unavailable {
                        what,
                        status,
                        code,
                        attempts: attempt,
                    });
                }
                other => return other,
            }
        }
    }

    /// The response when its status is a success, else the error its status and body say.
    fn expect_ok(
        &self,
        what: &str,
        mut response: Response<ureq::Body>,
    ) -> Result<Response<ureq::Body>, S3Error> {
        let status = response.status().as_u16();
        log::debug!("S3 {what}: HTTP {status}");
        if (200..300).contains(&status) {
            return Ok(response);
        }
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_ERROR_BODY)
            .read_to_string()
            .unwrap_or_default();
        let (code, message) = xml::code_and_message(&crate::secrets::hide_secrets(&body));
        let what = what.to_string();
        Err(match (status, code.as_str()) {
            (_, "RequestTimeTooSkewed") => S3Error::ClockSkew { what },
            (
                _,
                "InvalidAccessKeyId"
                | "SignatureDoesNotMatch"
                | "ExpiredToken"
                | "InvalidToken"
                | "TokenRefreshRequired"
                | "AuthorizationHeaderMalformed",
            ) => S3Error::Credentials { what, code },
            (_, "NoSuchBucket") => S3Error::NoBucket {
                bucket: self.bucket().to_string(),
                endpoint: self.endpoint.clone(),
            },
            // Refused while no credentials were found at all: say that, not "may not do this".
            (403, _) if self.credentials.is_none() => S3Error::Credentials {
                what,
                code: "no credentials were found".into(),
            },
            (403, _) => S3Error::Denied { what },
            (404, _) => S3Error::NotFound { what },
            (412, _) => S3Error::Exists { what },
            (status, _) => S3Error::Server {
                what,
                status,
                code,
                message,
            },
        })
    }

    /// The body of a successful answer that is XML to parse.
    fn xml_body(&self, what: &str, response: Response<ureq::Body>) -> Result<String, S3Error> {
        let mut response = self.expect_ok(what, response)?;
        response
            .body_mut()
            .with_config()
            .limit(MAX_XML_BODY)
            .read_to_string()
            .map_err(|e| match e {
                // A body that stopped moving (a completion AWS keeps open with whitespace
                // while it works, then stalls): tried again like any timeout.
                ureq::Error::Timeout(_) => S3Error::Timeout {
                    what: what.to_string(),
                    after: self.request_timeout,
                },
                ureq::Error::BodyExceedsLimit(_) => S3Error::Invalid {
                    what: what.to_string(),
                    why: format!("it is larger than {MAX_XML_BODY} bytes"),
                },
                _ => S3Error::Invalid {
                    what: what.to_string(),
                    why: "it could not be read".into(),
                },
            })
    }

    /// A transport failure, described without the URL (it is signed).
    fn transport(&self, what: &str, error: ureq::Error) -> S3Error {
        let what = what.to_string();
        match error {
            ureq::Error::Timeout(_) => S3Error::Timeout {
                what,
                after: self.request_timeout,
            },
            ureq::Error::HostNotFound => S3Error::Unreachable {
                endpoint: self.endpoint.clone(),
                why: "its host name does not resolve".into(),
            },
            ureq::Error::ConnectionFailed => S3Error::Unreachable {
                endpoint: self.endpoint.clone(),
                why: "the connection was refused".into(),
            },
            ureq::Error::Io(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                S3Error::Unreachable {
                    endpoint: self.endpoint.clone(),
                    why: "the connection was refused".into(),
                }
            }
            ureq::Error::Io(e) => S3Error::Transfer {
                what,
                why: e.kind().to_string(),
            },
            ureq::Error::Tls(_) | ureq::Error::Rustls(_) => S3Error::Unreachable {
                endpoint: self.endpoint.clone(),
                why: "the TLS handshake failed (certificate or protocol)".into(),
            },
            _ => S3Error::Transfer {
                what,
                why: "the HTTP exchange failed".into(),
            },
        }
    }
}

/// An S3 failure as an `io::Error` (for what writes and reads through `std::io`), its kind
/// kept where one fits and the [`S3Error`] inside, for messages and exit statuses.
pub fn io_error(error: S3Error) -> std::io::Error {
    use std::io::ErrorKind;
    let kind = match &error {
        S3Error::NotFound { .. } | S3Error::NoBucket { .. } => ErrorKind::NotFound,
        S3Error::Denied { .. } | S3Error::Credentials { .. } => ErrorKind::PermissionDenied,
        S3Error::Exists { .. } => ErrorKind::AlreadyExists,
        S3Error::Timeout { .. } => ErrorKind::TimedOut,
        S3Error::Interrupted => ErrorKind::Interrupted,
        _ => ErrorKind::Other,
    };
    std::io::Error::new(kind, error)
}

/// Whether `key` can be sent as it is: a URL resolves `.` and `..` parts (and HTTP stacks
/// may fold `//`), so a key with such a part, or an empty one, would address another object
/// than itself. aimem never makes
/// one; a listed one is never acted on.
pub fn is_addressable(key: &str) -> bool {
    key.split('/')
        .all(|part| !part.is_empty() && part != "." && part != "..")
}

fn addressable(key: &str, what: &str) -> Result<(), S3Error> {
    match is_addressable(key) {
        true => Ok(()),
        false => Err(S3Error::Invalid {
            what: what.to_string(),
            why: "the key has an empty, `.` or `..` part, which would address another object"
                .into(),
        }),
    }
}

/// The endpoint as messages show it: scheme, host and port, nothing else.
fn shown_endpoint(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or("?");
    match url.port() {
        Some(port) => format!("{}://{host}:{port}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    }
}

fn header(response: &Response<ureq::Body>, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn content_length(response: &Response<ureq::Body>) -> Option<u64> {
    header(response, "content-length").and_then(|v| v.parse().ok())
}

/// A key from a listing made with `encoding-type=url`: percent-decoded (and `+` as a space,
/// as S3 writes it), valid UTF-8.
fn url_decoded(key: &str, what: &str) -> Result<String, S3Error> {
    let bad = || S3Error::Invalid {
        what: what.to_string(),
        why: format!(
            "the listed key {} is not well encoded",
            crate::names::shown(key)
        ),
    };
    let mut bytes = Vec::with_capacity(key.len());
    let mut rest = key.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        match b {
            b'%' => {
                let hex = tail.get(..2).ok_or_else(bad)?;
                let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
                bytes.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
                rest = &tail[2..];
            }
            b'+' => {
                bytes.push(b' ');
                rest = tail;
            }
            _ => {
                bytes.push(b);
                rest = tail;
            }
        }
    }
    String::from_utf8(bytes).map_err(|_| bad())
}

fn rfc3339(text: &str) -> Option<SystemTime> {
    let parsed =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    Some(parsed.into())
}

fn http_date(text: &str) -> Option<SystemTime> {
    let parsed =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc2822).ok()?;
    Some(parsed.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_keys_that_address_themselves_are_sent() {
        for good in [
            "a",
            "a/b.c/d",
            "r/2026-12-07_100000/.aimem-run.json",
            "a..b/c",
        ] {
            assert!(is_addressable(good), "{good}");
        }
        for bad in ["", "/a", "a/", "a//b", "a/./b", "a/../b", "..", "."] {
            assert!(!is_addressable(bad), "{bad}");
        }
    }

    #[test]
    fn listed_keys_are_decoded_strictly() {
        assert_eq!(url_decoded("a%2Fb+c%2B", "x").unwrap(), "a/b c+");
        assert_eq!(url_decoded("caf%C3%A9", "x").unwrap(), "café");
        for bad in ["%", "%4", "%zz", "%FF"] {
            assert!(url_decoded(bad, "x").is_err(), "{bad}");
        }
    }

    #[test]
    fn dates_of_both_kinds_are_read() {
        assert!(rfc3339("2026-12-07T10:00:00.000Z").is_some());
        assert!(http_date("Mon, 07 Dec 2026 10:00:00 GMT").is_some());
        assert!(rfc3339("yesterday").is_none());
    }
}
