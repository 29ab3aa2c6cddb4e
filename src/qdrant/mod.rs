//! The Qdrant REST client: one shared, synchronous ureq agent.
//!
//! This layer knows HTTP, Qdrant's paths, its JSON envelope and its two kinds of error body
//! (JSON and plain text). It knows nothing about backups: it hands back the small types in
//! [`types`] and [`cluster`], or, for a collection's info, a `serde_json::Value` built within a
//! budget (see [`crate::json`]).
//!
//! Every answer is read as it arrives into a typed struct that keeps only what aimem uses: a
//! hostile answer costs its longest string at most, never a tree of its size.

pub mod aliases;
pub mod cluster;
mod collection_settings;
mod error;
mod identity;
pub(crate) mod metrics;
mod multipart;
mod page;
pub mod points;
mod ranged;
mod trace;
pub(crate) mod types;
pub mod upsert;
mod url;

use std::io::{BufReader, Read, Write};
use std::time::Duration;

use serde::de::{DeserializeOwned, IgnoredAny};
use serde_json::{Value, json};
use ureq::Agent;
use ureq::http::{Method, Request, Response};

pub use crate::secrets::{add_secret, hide_secrets};
pub use error::QdrantError;
use multipart::{LocalReadFailed, is_cancelled};
pub use ranged::{ResumeFrom, SnapshotBody};
use trace::Exchange;
use types::{CollectionList, Envelope, ErrorBody, Exists, PointCount};
pub use types::{ServerInfo, SnapshotDescription};
/// RFC 4648 base64, for what else sends HTTP Basic credentials or base64 in a URL.
pub(crate) use url::base64 as url_base64;
pub use url::{
    HostError, MIN_SECRET_LEN, Scheme, ServerUrl, UrlError, describe_stored, mask, parse_host,
    redact, shown_stored,
};

/// The error a transfer's sink or source returns to stop it (a signal arrived). It cannot be
/// `ErrorKind::Interrupted`: `write_all` and friends retry on that.
#[derive(Debug)]
pub struct Cancelled;

impl std::fmt::Display for Cancelled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stopped by a signal")
    }
}

impl std::error::Error for Cancelled {}

impl Cancelled {
    /// As an `io::Error`, for `Read`/`Write` implementations.
    pub fn io() -> std::io::Error {
        std::io::Error::other(Cancelled)
    }
}

/// How a snapshot recovery treats the shard's other replicas (Qdrant's `priority`).
///
/// `Snapshot` (Qdrant's default) makes the other replicas that are *Active* at that moment
/// Dead, to be refilled by a shard transfer; a replica in another state (still
/// `Initializing`, say) is left as it is and may later come up Active with other data.
/// `NoSync` changes no other replica: the caller recovers each replica itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoveryPriority {
    Snapshot,
    NoSync,
}

impl RecoveryPriority {
    pub fn as_str(self) -> &'static str {
        match self {
            RecoveryPriority::Snapshot => "snapshot",
            RecoveryPriority::NoSync => "no_sync",
        }
    }
}

/// Seconds an ordinary JSON call may take ([`Timeouts::request`]'s default). A JSON call that
/// gets no answer within this is a server that hangs: every call Qdrant answers at once
/// except the ones with their own timeout (snapshots, uploads, recovery).
pub const DEFAULT_REQUEST_TIMEOUT: u64 = 30;

/// How long each kind of exchange may take.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Opening the TCP (and TLS) connection.
    pub connect: Duration,
    /// Ordinary JSON calls.
    pub request: Duration,
    /// Waiting for `POST …/snapshots?wait=true` to answer (the server builds the archive meanwhile).
    pub snapshot_create: Duration,
    /// The longest a snapshot transfer may stall. A transfer that keeps moving is never cut off.
    pub transfer_stall: Duration,
    /// Waiting for an upload's answer once the body is sent: the server unpacks and recovers
    /// the snapshot before it answers (`wait=true`), with no time limit of its own.
    pub recover: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            request: Duration::from_secs(DEFAULT_REQUEST_TIMEOUT),
            snapshot_create: Duration::from_secs(300),
            transfer_stall: Duration::from_secs(300),
            recover: Duration::from_secs(3600),
        }
    }
}

/// A connection to one Qdrant server. Cheap to clone (the agent's pool is shared).
#[derive(Clone)]
pub struct Client {
    agent: Agent,
    /// Shown only redacted: messages can never carry its credentials.
    base_url: ServerUrl,
    api_key: Option<String>,
    timeouts: Timeouts,
}

impl std::fmt::Debug for Client {
    // Hand-written so that the API key can never end up in a log or panic message.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Size of the buffer snapshot bytes move through; memory use stays flat at about this.
const TRANSFER_BUFFER: usize = 256 * 1024;
/// Error bodies longer than this are cut: they are for people, not data.
const ERROR_BODY_LIMIT: u64 = 64 * 1024;
/// JSON answers are small (a real one is a few KiB); anything this large is not Qdrant
/// talking. Answers are parsed as they arrive, so this bounds the time spent and the longest
/// string, not a tree.
const JSON_BODY_LIMIT: u64 = 16 * 1024 * 1024;
/// The metrics text is scanned line by line as it arrives; a server with many collections
/// sends a few MiB.
const METRICS_BODY_LIMIT: u64 = 64 * 1024 * 1024;
/// A kept collection info may cost this much once parsed (a real one about 100 KiB).
const INFO_BUDGET: usize = crate::json::DEFAULT_BUDGET;

impl Client {
    /// A client for the server at `base_url` (scheme, host and port; a trailing slash is
    /// ignored), parsed as `--url` is.
    pub fn new(
        base_url: &str,
        api_key: Option<String>,
        timeouts: Timeouts,
    ) -> Result<Client, UrlError> {
        Ok(Client::for_url(
            &ServerUrl::parse(base_url)?,
            api_key,
            timeouts,
        ))
    }

    /// A client for the server at `base_url`.
    pub fn for_url(base_url: &ServerUrl, api_key: Option<String>, timeouts: Timeouts) -> Client {
        // No stall bound for the whole agent: a snapshot's creation can keep an answer silent for
        // minutes; transfers set their own (`transfer_stall`).
        let agent = crate::http::agent(timeouts.connect, timeouts.request, None);
        // `-v` logs never print these, whoever logs them.
        if let Some(key) = &api_key {
            add_secret(key);
        }
        // The user info as typed, and the user name and password alone, decoded and not.
        base_url.secrets().into_iter().for_each(add_secret);
        Client {
            agent,
            base_url: base_url.clone(),
            api_key: api_key.filter(|k| !k.is_empty()),
            timeouts,
        }
    }

    /// The server's address, for messages (credentials hidden, see [`redact`]).
    pub fn display_url(&self) -> &str {
        self.base_url.shown()
    }

    /// The server's address (shown redacted).
    pub fn url(&self) -> &ServerUrl {
        &self.base_url
    }

    /// `text` with this client's secrets (the API key, the URL's user info, user name and
    /// password) replaced by `***`. Every text that comes from the server or from the HTTP
    /// library passes here before it is put into a [`QdrantError`] or anything else aimem
    /// shows or stores: a server or proxy may quote the request's headers back.
    pub(crate) fn scrub(&self, text: &str) -> String {
        let mut secrets = self.base_url.secrets();
        if let Some(key) = &self.api_key {
            secrets.push(key);
        }
        mask(text, &secrets)
    }

    /// `GET /`: name and version. Needs no key on a real server.
    pub fn server_info(&self) -> Result<ServerInfo, QdrantError> {
        let mut info: ServerInfo = self.json(Method::GET, "/", None, None)?;
        // Shown, and recorded in the manifest.
        info.version = info.version.map(|v| self.scrub(&v));
        Ok(info)
    }

    /// Checks that the server answers an authenticated call: the cheapest way to test the key.
    pub fn list_collections(&self) -> Result<Vec<String>, QdrantError> {
        let result: Option<CollectionList> = self.result(Method::GET, "/collections", None)?;
        let names = result
            .and_then(|r| r.collections)
            .ok_or_else(|| self.invalid("/collections", "no `collections` list"))?
            .into_iter()
            .filter_map(|c| c.name.as_str().map(str::to_string))
            .collect();
        Ok(names)
    }

    /// `GET /collections/{name}`: the collection's info (`result`), as Qdrant sent it.
    /// The `Value` is built within [`INFO_BUDGET`]: a real info costs a few dozen KiB.
    pub fn collection_info(&self, name: &str) -> Result<Value, QdrantError> {
        let path = collection_path(name, "");
        let info = crate::json::within(&crate::json::Budget::new(INFO_BUDGET), || {
            self.result::<crate::json::Bounded>(Method::GET, &path, None)
        })?;
        Ok(info.map(|b| b.0).unwrap_or(Value::Null))
    }

    /// `GET /collections/{name}/cluster`: where the collection's shards live, seen from this
    /// peer (built within [`INFO_BUDGET`]).
    pub fn collection_cluster(&self, name: &str) -> Result<Value, QdrantError> {
        let path = collection_path(name, "/cluster");
        let placement = crate::json::within(&crate::json::Budget::new(INFO_BUDGET), || {
            self.result::<crate::json::Bounded>(Method::GET, &path, None)
        })?;
        Ok(placement.map(|b| b.0).unwrap_or(Value::Null))
    }

    /// `GET /collections/{name}/exists`.
    pub fn collection_exists(&self, name: &str) -> Result<bool, QdrantError> {
        let path = collection_path(name, "/exists");
        let result: Option<Exists> = self.result(Method::GET, &path, None)?;
        result
            .and_then(|r| r.exists.as_bool())
            .ok_or_else(|| self.invalid(&path, "no `exists` flag"))
    }

    /// The exact number of points (`points_count` in the info is only an estimate).
    pub fn count_exact(&self, name: &str) -> Result<u64, QdrantError> {
        self.count_at(name, "/points/count", json!({ "exact": true }))
    }

    /// The exact number of points counted on *every* replica of each shard, the smallest count
    /// of each shard's replicas summed (`?consistency=all`; Qdrant resolves the replicas'
    /// counts to their minimum). Equal to [`Client::count_exact`] only when no replica holds
    /// fewer points than the one an ordinary read lands on. It fails while a replica is
    /// neither Active nor Initializing.
    pub fn count_exact_on_every_replica(
        &self,
        name: &str,
        shard_key: Option<&cluster::ShardKey>,
    ) -> Result<u64, QdrantError> {
        let mut body = json!({ "exact": true });
        if let Some(key) = shard_key {
            body["shard_key"] = key.to_value();
        }
        self.count_at(name, "/points/count?consistency=all", body)
    }

    /// `POST /collections/{name}{rest}` with a count request body; the `count` it answers.
    pub(crate) fn count_at(&self, name: &str, rest: &str, body: Value) -> Result<u64, QdrantError> {
        let path = collection_path(name, rest);
        let result: Option<PointCount> = self.result(Method::POST, &path, Some(&body))?;
        result
            .and_then(|r| r.count.as_u64())
            .ok_or_else(|| self.invalid(&path, "no `count`"))
    }

    /// `PUT /collections/{name}` with a CreateCollection body.
    pub fn create_collection(&self, name: &str, body: &Value) -> Result<(), QdrantError> {
        self.call(Method::PUT, &collection_path(name, ""), Some(body))
    }

    /// `DELETE /collections/{name}`; true when it existed.
    pub fn delete_collection(&self, name: &str) -> Result<bool, QdrantError> {
        let result: Option<crate::json::Scalar> =
            self.result(Method::DELETE, &collection_path(name, ""), None)?;
        Ok(result.and_then(|r| r.as_bool()).unwrap_or(false))
    }

    /// `PUT /collections/{name}/index?wait=true` for one payload field.
    pub fn create_payload_index(
        &self,
        name: &str,
        field: &str,
        schema: &Value,
    ) -> Result<(), QdrantError> {
        let path = collection_path(name, "/index?wait=true");
        let body = json!({ "field_name": field, "field_schema": schema });
        self.call(Method::PUT, &path, Some(&body))
    }

    /// `PUT /collections/{name}/index?wait=false` for one payload field: queued on the server,
    /// answered `acknowledged` at once. A request Qdrant refuses outright (a bad schema, no
    /// such collection) still fails here; a build that fails later only shows as the index
    /// missing from the collection's `payload_schema` (docs/qdrant.md, "Payload indexes").
    pub fn queue_payload_index(
        &self,
        name: &str,
        field: &str,
        schema: &Value,
    ) -> Result<(), QdrantError> {
        let path = collection_path(name, "/index?wait=false");
        let body = json!({ "field_name": field, "field_schema": schema });
        self.call(Method::PUT, &path, Some(&body))
    }

    /// The limit for one ordinary JSON call.
    pub fn request_timeout(&self) -> Duration {
        self.timeouts.request
    }

    /// `POST /collections/{name}/snapshots?wait=true`: builds a snapshot on the server.
    pub fn create_snapshot(&self, name: &str) -> Result<SnapshotDescription, QdrantError> {
        // wait=false would hide every error behind a 202 (docs/qdrant.md, "Waiting for an
        // operation").
        let path = collection_path(name, "/snapshots?wait=true");
        let request = self.request(Method::POST, &path, Some(Vec::new()))?;
        let request = self
            .agent
            .configure_request(request)
            .timeout_recv_response(Some(self.timeouts.snapshot_create))
            .build();
        let answer: Envelope<SnapshotDescription> = self.exchange_json(
            Method::POST,
            &path,
            request,
            "creating the snapshot",
            self.timeouts.snapshot_create,
        )?;
        let description = answer
            .result
            .ok_or_else(|| self.invalid(&path, "no `result`"))?;
        // Real Qdrant always names the file and gives its size: without a name there is nothing
        // to download or delete, and the size is what bounds the download.
        if description.name.is_empty() {
            return Err(self.invalid(&path, "the snapshot has an empty `name`"));
        }
        if description.size.is_none() {
            return Err(self.invalid(&path, "the snapshot has no `size`"));
        }
        Ok(description)
    }

    /// `GET /collections/{name}/snapshots`.
    pub fn list_snapshots(&self, name: &str) -> Result<Vec<SnapshotDescription>, QdrantError> {
        let path = collection_path(name, "/snapshots");
        self.snapshot_list(&path)
    }

    /// A snapshot list (`GET …/snapshots`).
    ///
    /// A snapshot whose name is not a safe name is none of aimem's (it names its own after
    /// safe collection names): it is left out, so its name never reaches a URL or a path,
    /// and one such file (say, an upload by hand) does not spoil the list.
    fn snapshot_list(&self, path: &str) -> Result<Vec<SnapshotDescription>, QdrantError> {
        let listed: types::SnapshotList = self
            .result(Method::GET, path, None)?
            .ok_or_else(|| self.invalid(path, "no snapshot list"))?;
        listed
            .0
            .into_iter()
            .filter_map(|s| s.into_description().transpose())
            .collect::<Result<_, _>>()
            .map_err(|e| self.invalid(path, e))
    }

    /// `DELETE /collections/{name}/snapshots/{snapshot}?wait=true`.
    pub fn delete_snapshot(&self, name: &str, snapshot: &str) -> Result<(), QdrantError> {
        let path = collection_path(
            name,
            &format!("/snapshots/{}?wait=true", encode_segment(snapshot)),
        );
        self.call(Method::DELETE, &path, None)
    }

    /// Streams a snapshot file into `sink`, returning the number of bytes written.
    ///
    /// Asks for `Accept-Encoding: identity`: otherwise Qdrant compresses on the fly and the bytes
    /// would not be the ones its checksum covers. Fails if the body ends before `Content-Length`.
    /// Errors from `sink` come back as [`QdrantError::LocalWrite`], or as `Interrupted` when the
    /// sink fails with [`Cancelled`].
    pub fn download_snapshot(
        &self,
        name: &str,
        snapshot: &str,
        sink: &mut dyn Write,
    ) -> Result<u64, QdrantError> {
        self.open_snapshot(name, snapshot, None)?.receive(sink)
    }

    /// The body of a snapshot download, into `sink`; see [`Client::download_snapshot`].
    fn receive_snapshot(
        &self,
        response: Response<ureq::Body>,
        sink: &mut dyn Write,
        what: &str,
        stall: Duration,
    ) -> Result<u64, QdrantError> {
        let expected = response.body().content_length();
        let mut reader = response.into_body().into_reader();
        let mut buffer = vec![0u8; TRANSFER_BUFFER];
        let mut written: u64 = 0;
        loop {
            let n = match reader.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.body_error(what, e, stall)),
            };
            sink.write_all(&buffer[..n]).map_err(|e| {
                match e.get_ref().is_some_and(|inner| inner.is::<Cancelled>()) {
                    true => QdrantError::Interrupted,
                    false => QdrantError::LocalWrite(e),
                }
            })?;
            written += n as u64;
        }
        if let Some(expected) = expected {
            if written != expected {
                return Err(QdrantError::Transport {
                    what: what.to_string(),
                    detail: format!("the connection closed after {written} of {expected} bytes"),
                });
            }
        }
        Ok(written)
    }

    /// `POST /collections/{name}/snapshots/upload?wait=true&priority=snapshot&checksum=…`:
    /// streams the snapshot file at `path` as the multipart field `snapshot` named `file_name`,
    /// and returns once the server has recovered the collection from it.
    ///
    /// The body is prefix + file + suffix with an exact `Content-Length`, so memory stays flat
    /// and no chunked encoding is needed. `sha256` lets the server check what it received.
    /// `on_progress` sees each block read from the file; an `Err(Cancelled)` from it ends the
    /// upload with [`QdrantError::Interrupted`] (the server recovers nothing from a cut body).
    /// The server keeps the uploaded copy under `file_name`: delete it with
    /// [`Client::delete_snapshot`] afterwards.
    pub fn upload_snapshot(
        &self,
        name: &str,
        path: &std::path::Path,
        file_name: &str,
        sha256: &str,
        on_progress: &mut dyn FnMut(u64) -> Result<(), Cancelled>,
    ) -> Result<(), QdrantError> {
        let file = std::fs::File::open(path)
            .and_then(crate::manifest::files::Opened::file)
            .map_err(|e| QdrantError::LocalRead {
                path: path.display().to_string(),
                source: e,
            })?;
        let shown = path.display().to_string();
        self.upload_snapshot_file(
            name,
            file,
            &shown,
            file_name,
            sha256,
            RecoveryPriority::Snapshot,
            on_progress,
        )
    }

    /// [`Client::upload_snapshot`] from an already opened file (`shown` names it in errors):
    /// a backup's snapshot, opened inside its folder only (see [`crate::manifest::confined`])
    /// or read from its bucket.
    #[allow(clippy::too_many_arguments)]
    pub fn upload_snapshot_file(
        &self,
        name: &str,
        file: crate::manifest::files::Opened,
        shown: &str,
        file_name: &str,
        sha256: &str,
        priority: RecoveryPriority,
        on_progress: &mut dyn FnMut(u64) -> Result<(), Cancelled>,
    ) -> Result<(), QdrantError> {
        let base = collection_path(name, "");
        let target = UploadTarget {
            base: &base,
            collection: name,
            priority,
        };
        self.upload_snapshot_at(&target, file, shown, file_name, sha256, on_progress)
    }

    /// [`Client::upload_snapshot_file`] to the upload endpoint of `target`.
    fn upload_snapshot_at(
        &self,
        target: &UploadTarget<'_>,
        file: crate::manifest::files::Opened,
        shown: &str,
        file_name: &str,
        sha256: &str,
        on_progress: &mut dyn FnMut(u64) -> Result<(), Cancelled>,
    ) -> Result<(), QdrantError> {
        let file_len = file.len();
        let form = multipart::Form::new(file_name, sha256);
        let total = form.content_length(file_len);
        let query = format!(
            "/snapshots/upload?wait=true&priority={}&checksum={}",
            target.priority.as_str(),
            encode_segment(sha256)
        );
        let path_q = format!("{}{query}", target.base);
        let name = target.collection;
        let mut body = form.reader(file, file_len, on_progress);
        let request = self.request::<()>(Method::POST, &path_q, None)?;
        let (mut parts, ()) = request.into_parts();
        let header = |v: String| {
            ureq::http::HeaderValue::from_str(&v).map_err(|e| QdrantError::Transport {
                what: "preparing the upload".to_string(),
                detail: e.to_string(),
            })
        };
        parts
            .headers
            .insert("content-type", header(form.content_type())?);
        // An explicit length: ureq then sends the body as-is instead of chunking it.
        parts
            .headers
            .insert("content-length", header(total.to_string())?);
        let request = Request::from_parts(parts, ureq::SendBody::from_reader(&mut body));
        let stall = self.timeouts.transfer_stall;
        let request = self
            .agent
            .configure_request(request)
            .timeout_per_write(Some(stall))
            .timeout_recv_response(Some(self.timeouts.recover))
            // The answer (or error) body after the headers is small JSON or text.
            .timeout_recv_body(Some(self.timeouts.request))
            .build();
        let what = format!("uploading snapshot {file_name}");
        let exchange = Exchange::start(&Method::POST, &path_q, request.headers(), total);
        let response = self.agent.run(request);
        if let Err(e) = &response {
            exchange.failed(&self.scrub(&e.to_string()));
        }
        let response = match response {
            Ok(response) => {
                exchange.answered(response.status().as_u16(), response.headers());
                response
            }
            Err(ureq::Error::Io(e)) if is_cancelled(&e) => return Err(QdrantError::Interrupted),
            Err(ureq::Error::Timeout(ureq::Timeout::RecvResponse)) => {
                return Err(QdrantError::Timeout {
                    what: format!("waiting for Qdrant to recover `{name}` from {file_name}"),
                    after: self.timeouts.recover,
                    hint:
                        "Qdrant keeps recovering after aimem stops waiting. Check the collection's \
                           status and point count before trying again."
                            .to_string(),
                });
            }
            Err(e) => return Err(self.upload_error(&what, std::path::Path::new(shown), e, stall)),
        };
        // The body was cut short by aimem itself: the server cannot have recovered from it.
        if body.failed_locally() {
            return Err(QdrantError::LocalRead {
                path: shown.to_string(),
                source: std::io::Error::other(
                    "reading the backup's file failed while it was being sent (it changed, or its disk or bucket failed)",
                ),
            });
        }
        let response = self.check_status(Method::POST, &path_q, response, &exchange)?;
        let status = response.status().as_u16();
        // Drain the small JSON answer so the connection can be reused (nothing of it is kept).
        let mut answer = response
            .into_body()
            .into_with_config()
            .limit(JSON_BODY_LIMIT)
            .reader();
        let drained = std::io::copy(&mut answer, &mut std::io::sink()).unwrap_or(0);
        exchange.done(status, drained);
        Ok(())
    }

    fn upload_error(
        &self,
        what: &str,
        file: &std::path::Path,
        error: ureq::Error,
        stall: Duration,
    ) -> QdrantError {
        match error {
            ureq::Error::Timeout(_) => QdrantError::Timeout {
                what: what.to_string(),
                after: stall,
                hint: "The upload stopped moving. Check that Qdrant is healthy and has free disk \
                       space; raise SNAPSHOT_UPLOAD_TIMEOUT (seconds) for a slow link."
                    .to_string(),
            },
            // Reading the local file failed, so the body was cut short: nothing reached Qdrant whole.
            ureq::Error::Io(e) if e.get_ref().is_some_and(|i| i.is::<LocalReadFailed>()) => {
                QdrantError::LocalRead {
                    path: file.display().to_string(),
                    source: e,
                }
            }
            other => self.ureq_error(what, other, stall),
        }
    }

    /// Sends a JSON call and returns the envelope's `result`, typed (None when there is none).
    fn result<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Option<T>, QdrantError> {
        let envelope: Envelope<T> = self.json(method, path, body, None)?;
        Ok(envelope.result)
    }

    /// [`Client::result`] for an answer made of points, read whole before it is parsed (see
    /// [`read_json_whole`]), by `fast` when it can.
    fn points_result<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &Value,
        fast: Option<FastParse<Envelope<T>>>,
    ) -> Result<Option<T>, QdrantError> {
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        let mut request = self.request(method.clone(), path, Some(bytes))?;
        request.headers_mut().insert(
            "content-type",
            ureq::http::HeaderValue::from_static("application/json"),
        );
        let what = format!("{method} {}", strip_query(path));
        let envelope: Envelope<T> = self.exchange_json_parsed(
            method,
            path,
            request,
            &what,
            self.timeouts.request,
            Parse::Whole(fast),
        )?;
        Ok(envelope.result)
    }

    /// Sends a JSON call whose answer only matters by its status (its body is read unkept).
    fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<(), QdrantError> {
        self.result::<IgnoredAny>(method, path, body).map(drop)
    }

    /// Sends `body`, JSON already serialized (a large one need not become a `Value` first),
    /// and returns the whole answer, typed.
    fn json_bytes<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
    ) -> Result<T, QdrantError> {
        let mut request = self.request(method.clone(), path, Some(body))?;
        request.headers_mut().insert(
            "content-type",
            ureq::http::HeaderValue::from_static("application/json"),
        );
        let what = format!("{method} {}", strip_query(path));
        self.exchange_json(method, path, request, &what, self.timeouts.request)
    }

    /// Sends a JSON call and returns the whole body, typed.
    fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        what: Option<&str>,
    ) -> Result<T, QdrantError> {
        let bytes = body.map(|b| serde_json::to_vec(b).unwrap_or_default());
        let mut request = self.request(method.clone(), path, bytes)?;
        if body.is_some() {
            request.headers_mut().insert(
                "content-type",
                ureq::http::HeaderValue::from_static("application/json"),
            );
        }
        let what = what
            .map(str::to_string)
            .unwrap_or_else(|| format!("{method} {}", strip_query(path)));
        self.exchange_json(method, path, request, &what, self.timeouts.request)
    }

    /// Sends `request` and parses its answer as `T` while it arrives (see the module comment).
    fn exchange_json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        request: Request<Vec<u8>>,
        what: &str,
        timeout: Duration,
    ) -> Result<T, QdrantError> {
        self.exchange_json_parsed(method, path, request, what, timeout, Parse::Streamed)
    }

    /// [`Client::exchange_json`], its answer read as `parse` says.
    fn exchange_json_parsed<T: DeserializeOwned, B: ureq::AsSendBody + AsRef<[u8]>>(
        &self,
        method: Method,
        path: &str,
        request: Request<B>,
        what: &str,
        timeout: Duration,
        parse: Parse<T>,
    ) -> Result<T, QdrantError> {
        // The headers' wait is bounded by `timeout_recv_response`; the body's too: a server that
        // sends headers and then nothing (or a trickle) must not hold aimem forever.
        let request = self
            .agent
            .configure_request(request)
            .timeout_recv_body(Some(timeout))
            .build();
        let sent = request.body().as_ref().len() as u64;
        let (response, exchange) = self.send(path, request, what, timeout, sent)?;
        let response = self.check_status(method, path, response, &exchange)?;
        let status = response.status().as_u16();
        // A page's buffer sized once from the length the server declares (a declared length
        // is only a hint: the read is bounded either way), rather than doubled as it fills.
        let declared = response
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let mut body = Counted {
            inner: response
                .into_body()
                .into_with_config()
                .limit(JSON_BODY_LIMIT)
                .reader(),
            read: 0,
        };
        let parsed = match parse {
            Parse::Streamed => read_json::<T>(&mut body),
            Parse::Whole(fast) => read_json_whole::<T>(&mut body, declared, fast),
        };
        match parsed {
            Ok(value) => {
                exchange.done(status, body.read);
                Ok(value)
            }
            Err(e) if e.is_io() => {
                let error = self.json_body_error(path, what, e.into(), timeout);
                exchange.failed(&error);
                Err(error)
            }
            Err(e) => {
                exchange.done(status, body.read);
                Err(self.invalid(path, e))
            }
        }
    }

    /// A JSON answer that could not be read to its end: too long (not Qdrant), or the
    /// connection's own failure.
    fn json_body_error(
        &self,
        path: &str,
        what: &str,
        e: std::io::Error,
        timeout: Duration,
    ) -> QdrantError {
        let too_long = e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<ureq::Error>())
            .is_some_and(|inner| matches!(inner, ureq::Error::BodyExceedsLimit(_)));
        match too_long {
            true => QdrantError::AnswerTooLong {
                path: strip_query(path).to_string(),
                limit_mib: JSON_BODY_LIMIT >> 20,
            },
            false => self.body_error(what, e, timeout),
        }
    }

    /// Builds a request with the key attached. `body` None means no body at all.
    fn request<B: Default>(
        &self,
        method: Method,
        path: &str,
        body: Option<B>,
    ) -> Result<Request<B>, QdrantError> {
        // The URL without credentials: they go in their own header, so the HTTP library never
        // sees them (and ureq would send them percent-encoded as typed, not decoded).
        let mut builder =
            Request::builder()
                .method(method)
                .uri(format!("{}{}", self.base_url.base(), path));
        if let Some(key) = &self.api_key {
            builder = builder.header("api-key", key.as_str());
        }
        if let Some(basic) = self.base_url.authorization() {
            builder = builder.header("authorization", basic);
        }
        builder
            .body(body.unwrap_or_default())
            .map_err(|e| QdrantError::Unreachable {
                url: self.display_url().to_string(),
                detail: self.scrub(&format!("invalid URL ({e})")),
            })
    }

    /// Sends `request` (`sent` bytes of body) and returns the answer's head, with the
    /// [`Exchange`] that `-v` closes once the body is read.
    fn send<B: ureq::AsSendBody>(
        &self,
        path: &str,
        request: Request<B>,
        what: &str,
        timeout: Duration,
        sent: u64,
    ) -> Result<(Response<ureq::Body>, Exchange), QdrantError> {
        let exchange = Exchange::start(request.method(), path, request.headers(), sent);
        match self.agent.run(request) {
            Ok(response) => {
                exchange.answered(response.status().as_u16(), response.headers());
                Ok((response, exchange))
            }
            Err(e) => {
                let error = self.ureq_error(what, e, timeout);
                exchange.failed(&error);
                Err(error)
            }
        }
    }

    /// Turns a non-2xx answer into the matching error, with Qdrant's own message: the one
    /// place a server's error text (its body, a redirect's `Location`) enters aimem, and where
    /// it is scrubbed of the client's secrets ([`Client::scrub`]).
    fn check_status(
        &self,
        method: Method,
        path: &str,
        response: Response<ureq::Body>,
        exchange: &Exchange,
    ) -> Result<Response<ureq::Body>, QdrantError> {
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(response);
        }
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(redact);
        let text = response
            .into_body()
            .with_config()
            .limit(ERROR_BODY_LIMIT)
            .read_to_string()
            .unwrap_or_default();
        exchange.done(status, text.len() as u64);
        let message = match (status, location) {
            (300..=399, Some(location)) => format!(
                "redirected to {location}; aimem does not follow redirects (they would carry the API key \
                 elsewhere): point --url at Qdrant itself"
            ),
            _ => error_message(&text).unwrap_or_else(|| format!("HTTP {status}")),
        };
        let message = self.scrub(&message);
        let path = strip_query(path).to_string();
        Err(match status {
            401 => QdrantError::Unauthorized {
                url: self.display_url().to_string(),
                message,
                key_set: self.api_key.is_some(),
            },
            403 => QdrantError::Forbidden {
                method: method.to_string(),
                path,
                message,
            },
            _ => QdrantError::Api {
                method: method.to_string(),
                path,
                status,
                message,
            },
        })
    }

    fn ureq_error(&self, what: &str, error: ureq::Error, timeout: Duration) -> QdrantError {
        match error {
            ureq::Error::Timeout(_) => self.timeout(what, timeout),
            ureq::Error::HostNotFound | ureq::Error::ConnectionFailed => QdrantError::Unreachable {
                url: self.display_url().to_string(),
                detail: self.scrub(&error.to_string()),
            },
            ureq::Error::Io(e) => self.io_error(what, e, timeout),
            ureq::Error::Rustls(_) | ureq::Error::Tls(_) => QdrantError::Tls {
                url: self.display_url().to_string(),
                detail: self.scrub(&error.to_string()),
            },
            ureq::Error::BadUri(detail) => QdrantError::Unreachable {
                url: self.display_url().to_string(),
                detail: self.scrub(&format!("invalid URL: {detail}")),
            },
            other => QdrantError::Transport {
                what: what.to_string(),
                detail: self.scrub(&other.to_string()),
            },
        }
    }

    fn io_error(&self, what: &str, e: std::io::Error, timeout: Duration) -> QdrantError {
        use std::io::ErrorKind::*;
        match e.kind() {
            ConnectionRefused | AddrNotAvailable | NotFound | HostUnreachable
            | NetworkUnreachable => QdrantError::Unreachable {
                url: self.display_url().to_string(),
                detail: self.scrub(&e.to_string()),
            },
            TimedOut | WouldBlock => self.timeout(what, timeout),
            // rustls reports a failed handshake (an untrusted or mismatched certificate) as
            // invalid data on the socket.
            InvalidData if self.base_url.scheme() == Scheme::Https => QdrantError::Tls {
                url: self.display_url().to_string(),
                detail: self.scrub(&e.to_string()),
            },
            _ => QdrantError::Transport {
                what: what.to_string(),
                detail: self.scrub(&e.to_string()),
            },
        }
    }

    /// An error while reading a response body: ureq wraps its own errors in io::Error.
    fn body_error(&self, what: &str, e: std::io::Error, timeout: Duration) -> QdrantError {
        match e.into_inner() {
            Some(inner) => match inner.downcast::<ureq::Error>() {
                Ok(ureq_error) => self.ureq_error(what, *ureq_error, timeout),
                Err(other) => QdrantError::Transport {
                    what: what.to_string(),
                    detail: self.scrub(&other.to_string()),
                },
            },
            None => QdrantError::Transport {
                what: what.to_string(),
                detail: "the connection failed".to_string(),
            },
        }
    }

    fn timeout(&self, what: &str, after: Duration) -> QdrantError {
        QdrantError::Timeout {
            what: what.to_string(),
            after,
            hint: "Qdrant stopped answering. Check that it is healthy; for very large collections raise \
                   BACKUP_SNAPSHOT_CREATE_TIMEOUT / BACKUP_SNAPSHOT_DOWNLOAD_TIMEOUT, for a slow server \
                   QDRANT_REQUEST_TIMEOUT (seconds)."
                .to_string(),
        }
    }

    /// An answer aimem cannot use. `detail` may quote the answer (a JSON parser's error
    /// does), so it is scrubbed.
    fn invalid(&self, path: &str, detail: impl ToString) -> QdrantError {
        QdrantError::InvalidResponse {
            path: strip_query(path).to_string(),
            detail: self.scrub(&detail.to_string()),
        }
    }
}

/// Parses one JSON document from `reader` as it arrives, with nothing after it.
pub(crate) fn read_json<T: DeserializeOwned>(reader: impl Read) -> serde_json::Result<T> {
    let mut deserializer = serde_json::Deserializer::from_reader(BufReader::new(reader));
    let value = T::deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(value)
}

/// [`read_json`] for a page of points: an answer up to [`PARSED_WHOLE`] is read whole first,
/// since parsing from a slice is several times faster than from a reader and a page of points
/// is mostly numbers to parse; `fast` reads it when it can, else serde. A longer one is parsed
/// as it arrives, so memory stays bounded whatever a server sends. Every other answer is
/// parsed as it arrives (it is mostly skipped).
fn read_json_whole<T: DeserializeOwned>(
    mut reader: impl Read,
    declared: Option<usize>,
    fast: Option<FastParse<T>>,
) -> serde_json::Result<T> {
    // Each thread keeps its buffer from one page to the next (a range's reader reads many):
    // one allocation per thread rather than one of megabytes per page, which the allocator's
    // per-thread arenas would otherwise keep around.
    thread_local! {
        static BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let mut head = BUFFER.with(|b| std::mem::take(&mut *b.borrow_mut()));
    head.clear();
    head.reserve(declared.map_or(0, |n| n.min(PARSED_WHOLE)));
    let parsed = (&mut reader)
        .take(PARSED_WHOLE as u64 + 1)
        .read_to_end(&mut head)
        .map_err(serde_json::Error::io)
        .map(|_| head.len() <= PARSED_WHOLE);
    let parsed = match parsed {
        Ok(true) => match fast.and_then(|fast| fast(&head)) {
            Some(value) => Ok(value),
            None => {
                if fast.is_some() {
                    log::debug!("an answer the fast reader does not know: read by serde");
                }
                serde_json::from_slice(&head)
            }
        },
        Ok(false) => read_json(std::io::Cursor::new(&head).chain(reader)),
        Err(e) => Err(e),
    };
    BUFFER.with(|b| *b.borrow_mut() = head);
    parsed
}

/// The largest answer [`read_json_whole`] reads before it is parsed: a page of 256 points of
/// 768-d vectors is about 2 MiB of JSON.
const PARSED_WHOLE: usize = 4 * 1024 * 1024;

/// How an answer's JSON is read: as it arrives, or (pages of points) whole first, by a fast
/// reader of its own when it has one.
enum Parse<T> {
    Streamed,
    Whole(Option<FastParse<T>>),
}

/// A reader of one kind of answer that is faster than serde for the shapes it knows: it reads
/// the same value serde would, or answers `None` and leaves the answer to serde.
type FastParse<T> = fn(&[u8]) -> Option<T>;

/// A reader that counts what it hands on (for `-v`).
struct Counted<R> {
    inner: R,
    read: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

/// Qdrant's message from an error body: `{"status":{"error":"…"}}`, or the plain text itself.
pub(crate) fn error_message(body: &str) -> Option<String> {
    let body = body.trim();
    if body.is_empty() {
        return None;
    }
    if let Ok(ErrorBody {
        status: Some(status),
    }) = serde_json::from_str::<ErrorBody>(body)
    {
        if let Some(message) = status.error.as_str() {
            return Some(message.to_string());
        }
    }
    Some(body.to_string())
}

/// Where an upload goes: the collection's or a shard's path, the collection (for messages),
/// and how the recovery treats the shard's other replicas.
struct UploadTarget<'a> {
    base: &'a str,
    collection: &'a str,
    priority: RecoveryPriority,
}

/// `/collections/{name}{rest}` with the name percent-encoded.
pub fn collection_path(name: &str, rest: &str) -> String {
    format!("/collections/{}{}", encode_segment(name), rest)
}

fn strip_query(path: &str) -> &str {
    path.split('?').next().unwrap_or(path)
}

/// Percent-encodes one path segment (collection names may hold any character Qdrant allows).
pub fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_message_reads_json_envelopes_and_plain_text() {
        let json =
            r#"{"status":{"error":"Not found: Collection `nope` doesn't exist!"},"time":9.6e-6}"#;
        assert_eq!(
            error_message(json).as_deref(),
            Some("Not found: Collection `nope` doesn't exist!")
        );
        assert_eq!(
            error_message("Invalid API key or JWT").as_deref(),
            Some("Invalid API key or JWT")
        );
        assert_eq!(error_message("  "), None);
    }

    /// Every real answer captured from Qdrant reads into the typed struct its path is read as.
    #[test]
    fn every_real_answer_reads_typed() {
        use crate::json::Bounded;
        use cluster::{ClusterAnswer, CollectionClusterAnswer};
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/qdrant");
        let mut files = Vec::new();
        for dir in std::fs::read_dir(&root).unwrap() {
            let dir = dir.unwrap().path();
            if dir.is_dir() {
                files.extend(std::fs::read_dir(dir).unwrap().map(|f| f.unwrap().path()));
            }
        }
        let mut read = 0;
        for file in files
            .iter()
            .filter(|f| f.extension().is_some_and(|e| e == "json"))
        {
            let exchange: Value =
                serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
            let (method, path) = (
                exchange["request"]["method"].as_str().unwrap(),
                exchange["request"]["path"].as_str().unwrap(),
            );
            let status = exchange["response"]["status"].as_u64().unwrap();
            let body = &exchange["response"]["body"];
            let text = body.to_string();
            let bytes = text.as_bytes();
            let shown = file.display();
            if !(200..300).contains(&status) {
                if body.is_object() {
                    let message = error_message(&text).unwrap();
                    assert!(!message.starts_with('{'), "{shown}: {message}");
                }
                continue;
            }
            if !body.is_object() {
                continue;
            }
            let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
            match (method, segments.as_slice()) {
                ("GET", [""]) => {
                    let info: ServerInfo = read_json(bytes).unwrap();
                    assert!(info.version.is_some(), "{shown}");
                }
                ("GET", ["cluster"]) => {
                    let answer: Envelope<ClusterAnswer> = read_json(bytes).unwrap();
                    answer.result.unwrap().check().unwrap();
                }
                ("GET", ["collections"]) => {
                    let answer: Envelope<CollectionList> = read_json(bytes).unwrap();
                    let listed = answer.result.unwrap().collections.unwrap();
                    assert!(listed.iter().all(|c| c.name.as_str().is_some()), "{shown}");
                }
                ("GET", ["collections", _]) => {
                    let answer: Envelope<Bounded> = read_json(bytes).unwrap();
                    let info = answer.result.unwrap().0;
                    assert_eq!(info, body["result"], "{shown}");
                    crate::fingerprint::Fingerprint::from_collection_info(&info).unwrap();
                }
                ("GET", ["collections", _, "cluster"]) => {
                    let answer: Envelope<CollectionClusterAnswer> = read_json(bytes).unwrap();
                    answer.result.unwrap().check().unwrap();
                }
                ("GET", ["collections", _, "exists"]) => {
                    let answer: Envelope<Exists> = read_json(bytes).unwrap();
                    assert!(answer.result.unwrap().exists.as_bool().is_some(), "{shown}");
                }
                ("POST", ["collections", _, "points", "count"]) => {
                    let answer: Envelope<PointCount> = read_json(bytes).unwrap();
                    assert!(answer.result.unwrap().count.as_u64().is_some(), "{shown}");
                }
                ("GET", ["collections", _, "snapshots"]) => {
                    let answer: Envelope<types::SnapshotList> = read_json(bytes).unwrap();
                    let listed = answer.result.unwrap().0;
                    assert!(!listed.is_empty(), "{shown}");
                    for snapshot in listed {
                        assert!(snapshot.into_description().unwrap().is_some(), "{shown}");
                    }
                }
                ("POST", ["collections", _, "snapshots"]) if status == 200 => {
                    let answer: Envelope<SnapshotDescription> = read_json(bytes).unwrap();
                    assert!(answer.result.unwrap().size.is_some(), "{shown}");
                }
                _ => {
                    let _: Envelope<IgnoredAny> = read_json(bytes).unwrap();
                }
            }
            read += 1;
        }
        assert!(read >= 40, "only {read} answers read");
    }

    #[test]
    fn userinfo_never_reaches_a_message() {
        let client = Client::new("http://admin:hunter2@q:6333", None, Timeouts::default()).unwrap();
        assert!(!format!("{client:?}").contains("hunter2"));
        assert_eq!(client.display_url(), "http://***@q:6333");
    }

    #[test]
    fn every_error_that_quotes_the_server_is_scrubbed() {
        let client = Client::new(
            "http://admin:p%2Fss-word@q:6333",
            Some("the-api-key".into()),
            Timeouts::default(),
        )
        .unwrap();
        let text = "key the-api-key, password p/ss-word (p%2Fss-word), user info admin:p%2Fss-word";
        assert_eq!(
            client.scrub(text),
            "key ***, password *** (***), user info ***"
        );
        let QdrantError::InvalidResponse { detail, .. } = client.invalid("/x?k=v", text) else {
            panic!("InvalidResponse");
        };
        assert_eq!(detail, client.scrub(text));
    }

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(encode_segment("code-patterns"), "code-patterns");
        assert_eq!(encode_segment("a b/c"), "a%20b%2Fc");
        assert_eq!(encode_segment("é"), "%C3%A9");
    }

    #[test]
    fn debug_output_hides_the_key() {
        let client = Client::new(
            "http://localhost:6333/",
            Some("s3cret".into()),
            Timeouts::default(),
        )
        .unwrap();
        let shown = format!("{client:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert_eq!(client.display_url(), "http://localhost:6333");
    }
}
