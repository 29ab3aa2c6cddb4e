//! Fault injection: what can go wrong, and which requests it hits.

use std::time::Duration;

/// A fault that hits the next `times` requests whose method matches `method` (any method when
/// `None`, compared case-insensitively) and whose path (as sent, without the query) contains
/// `path_contains`. When several faults match, the one injected first wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub method: Option<String>,
    pub path_contains: String,
    pub kind: FaultKind,
    /// How many matching requests it hits; `usize::MAX` = forever.
    pub times: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultKind {
    /// JSON error envelope with this status and message.
    Status { code: u16, message: String },
    /// `text/plain` error body.
    PlainStatus { code: u16, body: String },
    /// Close the socket without any response (after reading the request head).
    DropConnection,
    /// Send the headers (with the full Content-Length) and only this many body bytes, then close.
    /// A chunked (streamed) body: this many body bytes (chunk framing not counted), then the
    /// connection closes without the terminating `0` chunk, as when a real server's stream
    /// fails half-way.
    TruncateBody { after_bytes: u64 },
    /// Send this many body bytes, then sleep `stall` before sending the rest (chunked bodies
    /// too, counting body bytes, not the chunk framing).
    StallBody { after_bytes: u64, stall: Duration },
    /// Sleep before answering normally.
    Delay(Duration),
    /// Snapshot create/list report a checksum that does not match the file.
    WrongChecksum,
    /// On upload into an existing collection: clear its points, then answer
    /// 500 `Service internal error: …` (the real server's destructive failure mode).
    UploadFailAfterClear,
    /// On upload: read the whole body, then recover for `takes` (the
    /// `snapshot_recovery_running{id="c"}` gauge of `GET /metrics` reads 1 meanwhile) and only
    /// then replace the data, like the real server's spawned task, which keeps running after
    /// the client is gone (docs/qdrant.md, "Uploads and recovery"). The client gets `answer`.
    SlowRecovery { takes: Duration, answer: LateAnswer },
    /// Snapshot creation answers with this name instead of the file's real one (a lying
    /// server: `..`, a path…). The file itself is kept under its real name.
    SnapshotNamed(String),
    /// Read the request head, then never answer (the connection stays open until the double
    /// stops): a server that accepts connections but hangs.
    Blackhole,
    /// The server dies: it stops listening (new connections are refused) and closes every open
    /// connection, this one included, without an answer.
    Die,
    /// Answer `code` with a body that never ends: no Content-Length, bytes until the client
    /// goes away (the end of the body would be the end of the connection).
    EndlessBody { code: u16 },
    /// Answer `code` with this JSON body instead of the real answer (a server that lies, e.g.
    /// `{"result":{},"status":"ok"}` to a snapshot creation).
    RawJson { code: u16, body: String },
    /// Adds a payload index on `field` (`schema`, e.g. `"keyword"`) to the collection named in
    /// the path, then handles the request normally: a schema change racing the request (a
    /// snapshot creation, say).
    AddPayloadIndex { field: String, schema: String },
    /// Send the headers (with the full Content-Length) and only this percentage of the body,
    /// then close: a cut at a known fraction of a file whose exact size the caller does not know.
    /// A streamed body is made once more beforehand to learn its length.
    TruncateBodyAtPercent { percent: u8 },
    /// A snapshot download ignores `Range` (and `If-Match`): 200 with the whole file, like a
    /// server or proxy without range support.
    IgnoreRange,
    /// A snapshot download sees its file as changed since the client last saw it: the ETag
    /// differs, so `If-Match` with the old one gets 412.
    ChangedEtag,
    /// A ranged snapshot download answers 206 from `back` bytes before the requested start,
    /// with a truthful `Content-Range` (a range the client did not ask for).
    ShiftedRange { back: u64 },
    /// A payload index request is answered as usual (`acknowledged` with `wait=false`), but
    /// the index never appears: a failure in the server's operation queue, which a client
    /// that did not wait only sees as the index missing from `payload_schema`.
    IndexNeverApplied,
    /// Multi-peer mode: adds a payload index on `field` (`schema`) to the cluster collection
    /// named in the path (the state every peer answers `GET /collections/{c}` from), then
    /// handles the request normally: a schema change racing a shard snapshot, say.
    AddClusterPayloadIndex { field: String, schema: String },
    /// Multi-peer mode: adds point `id` to every replica of its shard (auto sharding) of the
    /// cluster collection named in the path, then handles the request normally: a write
    /// racing a shard snapshot, say.
    AddClusterPoint { id: u64 },
    /// Multi-peer mode: a shard upload is handled normally, and `after` later this peer's
    /// replica of the shard is `Initializing` again with no points, then `Active` and empty
    /// once the init delay is over: a replica that loses what was recovered into it after the
    /// answer, as a late change in the cluster could (a real restore that recovered one replica
    /// while another initialized ended with exactly such an empty `Active` replica).
    LateReplicaReset { after: Duration },
    /// Multi-peer mode: the request (any) is answered normally, and right after the answer
    /// was made this peer's replica of its lowest local shard of the collection named in the
    /// path is `Initializing` again with no points, then `Active` and empty once the init
    /// delay is over: a change that lands between two requests of the client.
    ResetLocalReplicaAfterAnswer,
}

/// What the client of a [`FaultKind::SlowRecovery`] upload sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LateAnswer {
    /// The normal answer, once the recovery is done (`wait=true`).
    Wait,
    /// The connection closes as soon as the body is read (a lost connection; the recovery
    /// goes on).
    Drop,
    /// A reverse proxy's `text/plain` answer (say nginx's 504) as soon as the body is read,
    /// while the server behind it goes on recovering.
    Gateway { code: u16, body: String },
}

impl Fault {
    /// A fault that hits the first matching request only.
    pub fn new(method: Option<&str>, path_contains: &str, kind: FaultKind) -> Fault {
        Fault {
            method: method.map(str::to_string),
            path_contains: path_contains.to_string(),
            kind,
            times: 1,
        }
    }

    /// A fault that hits every matching request until `Double::clear_faults`.
    pub fn always(method: Option<&str>, path_contains: &str, kind: FaultKind) -> Fault {
        Fault {
            times: usize::MAX,
            ..Fault::new(method, path_contains, kind)
        }
    }

    /// The same fault, hitting `times` matching requests.
    pub fn times(self, times: usize) -> Fault {
        Fault { times, ..self }
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        self.times > 0
            && self
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && path.contains(&self.path_contains)
    }
}

/// Finds the first fault matching the request, uses one of its hits, and returns its kind.
pub(crate) fn take(faults: &mut Vec<Fault>, method: &str, path: &str) -> Option<FaultKind> {
    let idx = faults.iter().position(|f| f.matches(method, path))?;
    let fault = &mut faults[idx];
    let kind = fault.kind.clone();
    if fault.times != usize::MAX {
        fault.times -= 1;
        if fault.times == 0 {
            faults.remove(idx);
        }
    }
    Some(kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_are_used_up_in_order() {
        let mut faults = vec![
            Fault::new(Some("get"), "/snapshots", FaultKind::DropConnection).times(2),
            Fault::always(None, "/collections", FaultKind::WrongChecksum),
        ];
        assert_eq!(take(&mut faults, "POST", "/"), None);
        assert_eq!(
            take(&mut faults, "GET", "/collections/a/snapshots/x"),
            Some(FaultKind::DropConnection)
        );
        assert_eq!(
            take(&mut faults, "POST", "/collections/a/snapshots"),
            Some(FaultKind::WrongChecksum)
        );
        assert_eq!(
            take(&mut faults, "GET", "/collections/a/snapshots/x"),
            Some(FaultKind::DropConnection)
        );
        assert_eq!(
            take(&mut faults, "GET", "/collections/a/snapshots/x"),
            Some(FaultKind::WrongChecksum)
        );
        assert_eq!(faults.len(), 1);
    }
}
