//! Snapshot archives: building a tar laid out like a real collection snapshot, and reading
//! one back (the double's own snapshots, or real ones such as `conventions.snapshot`).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::state::{Collection, config_for_snapshot};

/// The points entry of a shard holding `ids`, with the records of those that have one.
pub fn points_entry(
    ids: &BTreeSet<u64>,
    empty_fields: &BTreeSet<String>,
    records: &BTreeMap<u64, Value>,
) -> Value {
    let kept: Vec<&Value> = ids.iter().filter_map(|id| records.get(id)).collect();
    json!({"ids": ids, "fields_without_values": empty_fields, "records": kept})
}

/// The records of a points entry, by the number their ids are kept under.
pub fn records_of_entry(entry: &Value) -> BTreeMap<u64, Value> {
    entry["records"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| crate::points::key_of(&r["id"]).ok().map(|k| (k, r.clone())))
        .collect()
}

/// Where the double keeps a snapshot's points inside the archive: `{"ids": [...],
/// "fields_without_values": [...], "records": [{"id", "vector", "payload"}...]}` (older
/// archives: no `records`, or a bare id list).
pub const POINTS_ENTRY: &str = "segments/double-points.json";
/// Where the filler goes.
pub const FILLER_ENTRY: &str = "segments/double-filler.bin";
/// What a real 1.18.3 snapshot has in `version.info`.
pub const STORAGE_VERSION: &str = "0.4.2";

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A writer that hashes what goes through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
        }
    }

    pub fn finish(self) -> (W, String) {
        (self.inner, hex(&self.hasher.finalize()))
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Lowercase hex SHA-256 of a file, read in chunks.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(hex(&hasher.finalize()));
        }
        hasher.update(&buf[..n]);
    }
}

/// Incompressible pseudo-random bytes (xorshift64*), generated on the fly.
pub struct Filler {
    remaining: u64,
    state: u64,
}

impl Filler {
    pub fn new(len: u64, seed: u64) -> Filler {
        Filler {
            remaining: len,
            state: seed | 1,
        }
    }
}

impl Read for Filler {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (buf.len() as u64).min(self.remaining) as usize;
        for chunk in buf[..n].chunks_mut(8) {
            self.state ^= self.state >> 12;
            self.state ^= self.state << 25;
            self.state ^= self.state >> 27;
            let v = self.state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

pub(crate) fn header(size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    h
}

pub(crate) fn append_bytes<W: Write>(
    b: &mut tar::Builder<W>,
    path: &str,
    data: &[u8],
) -> io::Result<()> {
    b.append_data(&mut header(data.len() as u64), path, data)
}

/// Writes the snapshot archive of `col` to `dest` and returns its SHA-256 (hashed while
/// writing). The filler is streamed, so memory use does not depend on its size.
pub fn write_snapshot(
    dest: &Path,
    col: &Collection,
    peer_id: u64,
    filler: u64,
) -> io::Result<String> {
    let file = File::create(dest)?;
    let writer = HashingWriter::new(BufWriter::with_capacity(256 * 1024, file));
    let mut b = tar::Builder::new(writer);
    let shards = col.shard_number().max(1);
    for shard in 0..shards {
        let replica = json!({"is_local": true, "this_peer_id": peer_id, "peers": {peer_id.to_string(): "Active"}});
        append_bytes(
            &mut b,
            &format!("{shard}/replica_state.json"),
            replica.to_string().as_bytes(),
        )?;
        append_bytes(
            &mut b,
            &format!("{shard}/shard_config.json"),
            br#"{"type":"ReplicaSet"}"#,
        )?;
        if shard == 0 {
            let points = points_entry(&col.points, &col.empty_fields, &col.records);
            append_bytes(
                &mut b,
                &format!("{shard}/{POINTS_ENTRY}"),
                points.to_string().as_bytes(),
            )?;
            if filler > 0 {
                b.append_data(
                    &mut header(filler),
                    format!("{shard}/{FILLER_ENTRY}"),
                    Filler::new(filler, peer_id ^ 0x9E37_79B9_7F4A_7C15),
                )?;
            }
        }
    }
    append_bytes(&mut b, "version.info", STORAGE_VERSION.as_bytes())?;
    append_bytes(
        &mut b,
        "config.json",
        config_for_snapshot(&col.config).to_string().as_bytes(),
    )?;
    append_bytes(&mut b, "shard_key_mapping.json", b"[]")?;
    let schema: serde_json::Map<String, Value> = col
        .schema
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    append_bytes(
        &mut b,
        "payload_index.json",
        json!({ "schema": schema }).to_string().as_bytes(),
    )?;
    let writer = b.into_inner()?;
    let (mut buffered, sha) = writer.finish();
    buffered.flush()?;
    buffered.get_ref().sync_all()?;
    Ok(sha)
}

/// What recovery needs from an archive.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedSnapshot {
    /// `config.json` (CollectionConfigInternal).
    pub config: Value,
    /// `payload_index.json` `schema`.
    pub schema: BTreeMap<String, Value>,
    /// Union of every `*/segments/double-points.json` (empty for real snapshots).
    pub points: BTreeSet<u64>,
    /// Indexed fields no point has a value for.
    pub empty_fields: BTreeSet<String>,
    /// The points' records (vectors and payloads), where the archive has them.
    pub records: BTreeMap<u64, Value>,
}

pub const MALFORMED: &str =
    "Service internal error: File IO error: Malformed tar archive, reached unknown entry";

/// Reads an archive entry by entry (skipping the big ones without loading them). Any
/// problem gives the real server's 500 message for a garbage upload.
pub fn read_snapshot(path: &Path) -> Result<ParsedSnapshot, String> {
    let file = File::open(path).map_err(|e| format!("Service internal error: {e}"))?;
    let mut archive = tar::Archive::new(io::BufReader::new(file));
    let mut config = None;
    let mut schema = BTreeMap::new();
    let mut points = BTreeSet::new();
    let mut empty_fields = BTreeSet::new();
    let mut records = BTreeMap::new();
    let malformed = |_| MALFORMED.to_string();
    for entry in archive.entries().map_err(malformed)? {
        let mut entry = entry.map_err(malformed)?;
        let name = entry
            .path()
            .map_err(malformed)?
            .to_string_lossy()
            .into_owned();
        let name = name.trim_start_matches("./").to_string();
        let read_json = |entry: &mut tar::Entry<_>| -> Result<Value, String> {
            let mut text = Vec::new();
            entry.read_to_end(&mut text).map_err(malformed)?;
            serde_json::from_slice(&text)
                .map_err(|e| format!("Service internal error: invalid {name}: {e}"))
        };
        if name == "config.json" {
            config = Some(read_json(&mut entry)?);
        } else if name == "payload_index.json" {
            let v = read_json(&mut entry)?;
            if let Some(m) = v.get("schema").and_then(Value::as_object) {
                schema = m.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            }
        } else if name.ends_with(POINTS_ENTRY) {
            // `{"ids": [...], "fields_without_values": [...]}`, or a bare id array.
            let v = read_json(&mut entry)?;
            records.extend(records_of_entry(&v));
            let ids = v.get("ids").unwrap_or(&v);
            points.extend(
                ids.as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_u64),
            );
            empty_fields.extend(
                v["fields_without_values"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(str::to_string),
            );
        }
    }
    let config = config.ok_or_else(|| MALFORMED.to_string())?;
    Ok(ParsedSnapshot {
        config,
        schema,
        points,
        empty_fields,
        records,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures_dir;

    #[test]
    fn reads_the_real_snapshot() {
        let parsed = read_snapshot(&fixtures_dir().join("conventions.snapshot")).expect("parse");
        assert_eq!(parsed.config["params"]["vectors"]["size"], 768);
        assert_eq!(parsed.config["uuid"], Value::Null);
        assert_eq!(parsed.schema["group_id"]["is_tenant"], true);
        assert_eq!(parsed.schema["type"], "keyword");
        assert!(parsed.points.is_empty());
    }

    #[test]
    fn garbage_is_malformed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("garbage");
        std::fs::write(&path, vec![b'x'; 3000]).expect("write");
        assert_eq!(read_snapshot(&path), Err(MALFORMED.to_string()));
        std::fs::write(&path, b"").expect("write");
        assert_eq!(read_snapshot(&path), Err(MALFORMED.to_string()));
    }

    #[test]
    fn filler_is_streamed_and_incompressible_enough() {
        let mut data = Vec::new();
        Filler::new(1001, 7).read_to_end(&mut data).expect("read");
        assert_eq!(data.len(), 1001);
        let distinct: BTreeSet<u8> = data.iter().copied().collect();
        assert!(distinct.len() > 200);
    }
}
