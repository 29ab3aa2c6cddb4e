//! Accept loop and per-connection request loop (HTTP/1.1 keep-alive, one thread per connection).

use std::collections::HashMap;
use std::io::BufReader;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use crate::faults::{self, Fault, FaultKind};
use crate::http::{self, BodyFault, BodyReader, Response};
use crate::routes::{self, Flags};
use crate::state::State;
use crate::{Config, RecordedRequest};

/// Everything the connection threads share.
pub(crate) struct Shared {
    pub config: Config,
    pub state: Mutex<State>,
    pub faults: Mutex<Vec<Fault>>,
    pub requests: Mutex<Vec<RecordedRequest>>,
    pub conns: Mutex<HashMap<u64, TcpStream>>,
    pub stopping: AtomicBool,
    pub next_id: AtomicU64,
    /// Root of the double's temp storage.
    pub storage: PathBuf,
    /// Response body bytes written per request (method, path as sent, bytes), in order.
    pub served: Mutex<Vec<(String, String, u64)>>,
    /// Set when this double is one peer of a [`crate::Cluster`].
    pub cluster: Option<Arc<crate::cluster::PeerLink>>,
    /// What `GET /telemetry` calls this server process (a new one for each double).
    pub process_id: String,
    /// Cluster mode: held while this peer's view is rebuilt from the cluster, and across an
    /// index creation (refresh, create, copy back), so a concurrent refresh cannot drop an
    /// index between its creation and its copy into the cluster.
    pub peer_sync: Mutex<()>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub fn snapshots_root(&self) -> PathBuf {
        self.storage.join("snapshots")
    }

    pub fn snapshot_dir(&self, collection: &str) -> PathBuf {
        self.snapshots_root().join(collection)
    }

    pub fn tmp_dir(&self) -> PathBuf {
        self.storage.join("tmp")
    }

    pub fn upload_dir(&self) -> PathBuf {
        self.tmp_dir().join("upload")
    }

    pub fn unique(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }
}

pub(crate) fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    for stream in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        let _ = stream.set_nodelay(true);
        let id = shared.unique();
        if let Ok(clone) = stream.try_clone() {
            lock(&shared.conns).insert(id, clone);
        }
        let shared = Arc::clone(&shared);
        let spawned = std::thread::Builder::new()
            .name(format!("qdrant-double-conn-{id}"))
            .spawn(move || {
                serve_connection(&shared, stream);
                lock(&shared.conns).remove(&id);
            });
        if spawned.is_err() {
            continue;
        }
    }
}

fn serve_connection(shared: &Shared, stream: TcpStream) {
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::with_capacity(64 * 1024, read_half);
    loop {
        let req = match http::read_head(&mut reader) {
            Ok(Some(req)) => req,
            Ok(None) => break,
            Err(e) => {
                if e.kind() == std::io::ErrorKind::InvalidData {
                    let resp = Response::plain(400, &format!("Bad request: {e}"));
                    let _ = http::write_response(&stream, &resp, true, None);
                }
                break;
            }
        };
        let started = Instant::now();
        lock(&shared.requests).push(RecordedRequest {
            method: req.method.clone(),
            path: req.raw_path.clone(),
            query: req.query.clone(),
            headers: req.headers.clone(),
        });
        let fault = faults::take(&mut lock(&shared.faults), &req.method, &req.raw_path);

        let mut flags = Flags::default();
        let mut body_fault = None;
        let mut fault_response = None;
        let mut truncate_percent: Option<u8> = None;
        let mut reset_after_answer = false;
        match fault {
            Some(FaultKind::DropConnection) => break,
            Some(FaultKind::Delay(d)) => std::thread::sleep(d),
            Some(FaultKind::TruncateBody { after_bytes }) => {
                body_fault = Some(BodyFault::Truncate(after_bytes));
            }
            Some(FaultKind::StallBody { after_bytes, stall }) => {
                body_fault = Some(BodyFault::Stall(after_bytes, stall));
            }
            Some(FaultKind::WrongChecksum) => flags.wrong_checksum = true,
            Some(FaultKind::UploadFailAfterClear) => flags.upload_fail_after_clear = true,
            Some(FaultKind::LateReplicaReset { after }) => flags.late_replica_reset = Some(after),
            Some(FaultKind::ResetLocalReplicaAfterAnswer) => reset_after_answer = true,
            Some(FaultKind::SlowRecovery { takes, answer }) => {
                flags.slow_recovery = Some((takes, answer));
            }
            Some(FaultKind::Status { code, message }) => {
                fault_response = Some(routes::error(code, &message, started));
            }
            Some(FaultKind::PlainStatus { code, body }) => {
                fault_response = Some(Response::plain(code, &body));
            }
            Some(FaultKind::SnapshotNamed(name)) => flags.snapshot_named = Some(name),
            Some(FaultKind::Blackhole) => {
                while !shared.stopping.load(Ordering::SeqCst) {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                break;
            }
            Some(FaultKind::Die) => {
                die(shared, &stream);
                break;
            }
            Some(FaultKind::EndlessBody { code }) => {
                endless_body(shared, &stream, code);
                break;
            }
            Some(FaultKind::RawJson { code, body }) => {
                fault_response = Some(Response::new(
                    code,
                    Some("application/json"),
                    body.into_bytes(),
                ));
            }
            Some(FaultKind::AddPayloadIndex { field, schema }) => {
                if let Some(collection) = req.segments.get(1)
                    && let Some(col) = lock(&shared.state).collections.get_mut(collection)
                {
                    col.schema.insert(field, serde_json::Value::String(schema));
                }
            }
            Some(FaultKind::TruncateBodyAtPercent { percent }) => {
                truncate_percent = Some(percent);
            }
            Some(FaultKind::IgnoreRange) => flags.ignore_range = true,
            Some(FaultKind::ChangedEtag) => flags.changed_etag = true,
            Some(FaultKind::ShiftedRange { back }) => flags.shifted_range = Some(back),
            Some(FaultKind::IndexNeverApplied) => flags.index_never_applied = true,
            Some(FaultKind::AddClusterPayloadIndex { field, schema }) => {
                if let Some(link) = &shared.cluster
                    && let Some(collection) = req.segments.get(1)
                {
                    let mut st = link.lock();
                    if let Some(col) = st.collections.get_mut(collection) {
                        col.schema.insert(field, serde_json::Value::String(schema));
                        st.commit += 1;
                    }
                }
            }
            Some(FaultKind::AddClusterPoint { id }) => {
                if let Some(link) = &shared.cluster
                    && let Some(collection) = req.segments.get(1)
                    && let Some(col) = link.lock().collections.get_mut(collection)
                {
                    let shards: Vec<u32> = col.shards.keys().copied().collect();
                    if let Some(shard) = col.shard_for(&shards, id)
                        && let Some(shard) = col.shards.get_mut(&shard)
                    {
                        for replica in shard.replicas.values_mut() {
                            replica.points.insert(id);
                        }
                    }
                }
            }
            None => {}
        }

        let kind = match req.body_kind() {
            Ok(kind) => kind,
            Err(msg) => {
                let resp = Response::plain(400, &format!("Bad request: {msg}"));
                let _ = http::write_response(&stream, &resp, true, None);
                break;
            }
        };
        let mut body = BodyReader::new(&mut reader, kind, req.expects_continue());
        let mut later = None;
        let resp = match fault_response {
            Some(resp) => resp,
            None => routes::handle(shared, &req, &mut body, flags, started, &mut later),
        };
        if reset_after_answer
            && let Some(link) = &shared.cluster
            && let Some(collection) = req.segments.get(1)
        {
            crate::cluster::reset_lowest_local_replica(link, collection);
        }
        let mut close = req.wants_close() || later.is_some();
        if !body.drain() {
            close = true;
        }
        if let Some(percent) = truncate_percent {
            let cut = resp.body_len().saturating_mul(u64::from(percent.min(100))) / 100;
            body_fault = Some(BodyFault::Truncate(cut));
        }
        let mut served = 0u64;
        let written = match resp.is_dropped() {
            true => None,
            false => Some(http::write_response_counted(
                &stream,
                &resp,
                close,
                body_fault,
                &mut served,
            )),
        };
        lock(&shared.served).push((req.method.clone(), req.raw_path.clone(), served));
        if written.is_none() {
            let _ = stream.shutdown(Shutdown::Both);
        } else if let Some(Ok(true)) = written
            && !close
        {
            continue;
        }
        if let Some(job) = later {
            // The real server's recovery runs on after the client is gone (docs/qdrant.md,
            // "Uploads and recovery").
            let _ = stream.shutdown(Shutdown::Both);
            let _ = job.run();
        }
        break;
    }
    let _ = stream.shutdown(Shutdown::Both);
}

/// [`FaultKind::Die`]: stop accepting (the accept loop ends and drops the listener, so new
/// connections are refused) and close every open connection.
fn die(shared: &Shared, stream: &TcpStream) {
    shared.stopping.store(true, Ordering::SeqCst);
    // Wake the accept loop so it sees `stopping` and returns.
    if let Ok(addr) = stream.local_addr() {
        let _ = TcpStream::connect(addr);
    }
    for (_, conn) in lock(&shared.conns).drain() {
        let _ = conn.shutdown(Shutdown::Both);
    }
    let _ = stream.shutdown(Shutdown::Both);
}

/// [`FaultKind::EndlessBody`]: headers without a length, then bytes until the client leaves.
fn endless_body(shared: &Shared, stream: &TcpStream, code: u16) {
    use std::io::Write;
    let mut w = stream;
    let head = format!(
        "HTTP/1.1 {code} {}\r\ncontent-type: application/octet-stream\r\nconnection: close\r\n\r\n",
        http::reason(code)
    );
    if w.write_all(head.as_bytes()).is_err() {
        return;
    }
    let block = vec![b'x'; 64 * 1024];
    while !shared.stopping.load(Ordering::SeqCst) {
        if w.write_all(&block).is_err() {
            return;
        }
    }
}
