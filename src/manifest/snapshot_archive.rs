//! Reading the collection schema out of a Qdrant snapshot without extracting it.
//!
//! A collection snapshot is a plain tar (docs/qdrant.md, "Snapshot archive layout") whose top
//! level holds `config.json` (the collection config) and `payload_index.json`
//! (`{"schema": {field: "keyword" | {params}}}`).
//! Both are small and sit after the shard data, so the archive is walked header by header,
//! seeking over the data of every other entry: a multi-gigabyte snapshot costs a few hundred
//! header reads, never its size in memory or in reads.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};

use camino::Utf8Path;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::files::Opened;
use crate::fingerprint::{Fingerprint, FingerprintError};
use crate::json::{Budget, Scalar};

/// Tar works in 512-byte blocks; an archive ends with two all-zero blocks.
const BLOCK: u64 = 512;
const END_MARKER: u64 = 2 * BLOCK;

/// The JSON files aimem reads out of a snapshot are a few KiB in real ones (`payload_index.json`
/// some 50 bytes per index): larger entries are refused unread.
pub const MAX_JSON_ENTRY: u64 = 1024 * 1024;

/// `config.json` is about 1 KiB, but it carries the collection's metadata (Qdrant 1.16 and
/// later), which is the user's own JSON, bounded only by Qdrant's request size (32 MiB by
/// default, configurable). So it is parsed as it streams out of the archive, the metadata
/// skipped unread, and refused only beyond this.
pub const MAX_CONFIG_JSON: u64 = 1024 * 1024 * 1024;

/// What the JSON kept from one archive may cost once parsed (an estimate, see
/// [`crate::json`]): a real collection's 5 to 30 KiB.
const ARCHIVE_BUDGET: usize = 8 * 1024 * 1024;

/// What can be wrong with a snapshot file, in words for a person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArchiveError {
    #[error("cannot be read: {0}")]
    Unreadable(String),
    #[error("is not a valid tar archive: {0}")]
    NotATar(String),
    #[error("is truncated: the archive ends at byte {len}, before its end marker at byte {end}")]
    Truncated { len: u64, end: u64 },
    #[error("holds no config.json: not a Qdrant collection snapshot")]
    NoConfig,
    #[error("holds no {0} at its top level: not a Qdrant shard snapshot")]
    NotAShard(&'static str),
    #[error("has an unreadable {entry}: {detail}")]
    BadEntry { entry: &'static str, detail: String },
}

/// The two schema files of a snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotSchema {
    /// `config.json`, the collection config (CollectionConfigInternal): only the keys a
    /// fingerprint holds (`params`, `hnsw_config`, `quantization_config`), when present.
    pub config: Value,
    /// `payload_index.json`'s `schema` (empty when the file is absent).
    pub payload_schema: Map<String, Value>,
}

impl SnapshotSchema {
    /// The schema fingerprint this snapshot would restore, in the manifest's canonical form.
    pub fn fingerprint(&self) -> Result<Fingerprint, FingerprintError> {
        let mut value = Map::new();
        for key in ["params", "hnsw_config", "quantization_config"] {
            if let Some(v) = self.config.get(key) {
                value.insert(key.into(), v.clone());
            }
        }
        let payload_schema: Map<String, Value> = self
            .payload_schema
            .iter()
            .map(|(field, stored)| (field.clone(), index_info(stored)))
            .collect();
        value.insert("payload_schema".into(), Value::Object(payload_schema));
        Fingerprint::from_value(Value::Object(value))
    }
}

/// A stored `PayloadFieldSchema` in the form `GET /collections/{c}` shows it (and so the
/// fingerprint holds): a bare type `"keyword"` becomes `{"data_type": "keyword"}`, an object
/// `{"type": "integer", …}` becomes `{"data_type": "integer", "params": {…}}`. The server fills
/// in integer params' `lookup`, `range` and `is_principal` (null when unset) when it answers;
/// the stored form omits unset ones, so they are filled here the same way.
fn index_info(stored: &Value) -> Value {
    match stored {
        Value::Object(params) => {
            let data_type = params.get("type").cloned().unwrap_or(Value::Null);
            let mut params = params.clone();
            if data_type == "integer" {
                for key in ["lookup", "range", "is_principal"] {
                    params.entry(key).or_insert(Value::Null);
                }
            }
            json!({ "data_type": data_type, "params": params })
        }
        other => json!({ "data_type": other }),
    }
}

/// Reads `config.json` and `payload_index.json` from the snapshot at `path`, and checks that
/// the archive is whole (every entry's data and the end marker are present).
pub fn read_schema(path: &Utf8Path) -> Result<SnapshotSchema, ArchiveError> {
    let file = File::open(path)
        .and_then(Opened::file)
        .map_err(|e| ArchiveError::Unreadable(e.to_string()))?;
    read_schema_from(file)
}

/// [`read_schema`] on an already opened file (see [`super::confined`]: a backup's snapshot is
/// opened inside its folder only).
pub fn read_schema_from(file: Opened) -> Result<SnapshotSchema, ArchiveError> {
    let len = file.len();
    let budget = Budget::new(ARCHIVE_BUDGET);
    let found = walk(&mut BufReader::new(file), len, &budget)?;
    if let Some(problem) = found.problem {
        return Err(problem);
    }
    let config = found.config.ok_or(ArchiveError::NoConfig)?;
    schema_files(config, found.payload_index.as_deref(), &budget)
}

/// `config.json` as read: the parts of a fingerprint, built within the archive's budget; the
/// rest (optimizer, WAL and strict-mode settings, metadata…) skipped unread.
#[derive(Debug, Deserialize)]
struct ConfigFile {
    #[serde(default, deserialize_with = "crate::json::bounded_option")]
    params: Option<Value>,
    #[serde(default, deserialize_with = "crate::json::bounded_option")]
    hnsw_config: Option<Value>,
    #[serde(default, deserialize_with = "crate::json::bounded_option")]
    quantization_config: Option<Value>,
}

/// `payload_index.json` as read: `{"schema": {field: …}}`.
#[derive(Deserialize)]
struct PayloadIndexFile {
    #[serde(default, deserialize_with = "crate::json::bounded_option")]
    schema: Option<Value>,
}

/// A shard's `replica_state.json`: `{"is_local", "this_peer_id", "peers"}`, the peers skipped.
#[derive(Deserialize)]
struct ReplicaStateFile {
    #[serde(default)]
    is_local: Scalar,
    #[serde(default)]
    this_peer_id: Scalar,
}

/// A shard's `shard_config.json`: `{"type": "ReplicaSet"}`.
#[derive(Deserialize)]
struct ShardConfigFile {
    #[serde(default, rename = "type")]
    shard_type: Scalar,
}

/// The schema files of an archive, `payload_index.json` read within `budget`.
fn schema_files(
    config: ConfigFile,
    payload_index: Option<&[u8]>,
    budget: &Budget,
) -> Result<SnapshotSchema, ArchiveError> {
    let config: Map<String, Value> = [
        ("params", config.params),
        ("hnsw_config", config.hnsw_config),
        ("quantization_config", config.quantization_config),
    ]
    .into_iter()
    .filter_map(|(key, value)| Some((key.to_string(), value?)))
    .collect();
    let payload_schema = match payload_index {
        None => Map::new(),
        Some(bytes) => match parse_json::<PayloadIndexFile>(bytes, "payload_index.json", budget)? {
            PayloadIndexFile {
                schema: Some(Value::Object(schema)),
            } => schema,
            _ => {
                return Err(ArchiveError::BadEntry {
                    entry: "payload_index.json",
                    detail: "no `schema` object".into(),
                });
            }
        },
    };
    Ok(SnapshotSchema {
        config: Value::Object(config),
        payload_schema,
    })
}

/// An extension entry (PAX header, GNU long name) larger than this is refused: real ones hold
/// a path or a few records, and every byte of one would be held in memory.
const MAX_EXTENSION: u64 = 64 * 1024;

/// The raw bytes of the two schema files, as found by [`walk`].
#[derive(Debug, Default)]
struct Found {
    /// Parsed as it was walked over (see [`MAX_CONFIG_JSON`]).
    config: Option<ConfigFile>,
    payload_index: Option<Vec<u8>>,
    /// A shard snapshot's own files (see [`read_shard_from`]).
    replica_state: Option<Vec<u8>>,
    shard_config: Option<Vec<u8>>,
    shard_key_mapping: Option<Vec<u8>>,
    /// Reported once the archive is known to be whole: a truncated archive is the better
    /// explanation for a bad schema file.
    problem: Option<ArchiveError>,
}

/// Walks the archive header by header (seeking over entry data), keeping the two schema files,
/// up to its end marker, which must be there.
///
/// The walk is aimem's own rather than the tar crate's, so that nothing it reads is unbounded:
/// the tar crate loads PAX headers and GNU long names whole (a 2 GiB PAX header in a sparse
/// file costs 2 GiB of memory) and quotes header bytes in its errors. Here memory is a few
/// blocks plus at most [`MAX_EXTENSION`] and [`MAX_JSON_ENTRY`] (and what `budget` allows of
/// `config.json`), whatever the input, and every error is aimem's own words (a header's content
/// is never quoted).
fn walk(reader: &mut BufReader<Opened>, len: u64, budget: &Budget) -> Result<Found, ArchiveError> {
    let mut found = Found::default();
    let mut pos = 0u64;
    // A PAX `path`/`size` or a GNU long name applies to the entry that follows it.
    let mut next_name: Option<Vec<u8>> = None;
    let mut next_size: Option<u64> = None;
    let mut block = [0u8; BLOCK as usize];
    loop {
        if pos + BLOCK > len {
            return Err(ArchiveError::Truncated {
                len,
                end: pos + END_MARKER,
            });
        }
        read_block(reader, pos, &mut block)?;
        if block.iter().all(|b| *b == 0) {
            check_end_marker(reader, len, pos)?;
            return Ok(found);
        }
        let header = tar::Header::from_byte_slice(&block);
        let entry = read_entry(reader, len, pos, &block, next_size.take())?;
        if entry.is_extension() {
            read_extension(reader, pos, &entry, &mut next_name, &mut next_size)?;
        } else {
            let name = next_name
                .take()
                .unwrap_or_else(|| header.path_bytes().into_owned());
            let name = name.strip_prefix(b"./").unwrap_or(&name);
            keep_schema_file(reader, &mut found, name, &entry, budget)?;
        }
        pos = entry.data_end;
    }
}

/// The end marker's first zero block is at `pos`: a second one must follow.
fn check_end_marker(
    reader: &mut BufReader<Opened>,
    len: u64,
    pos: u64,
) -> Result<(), ArchiveError> {
    if pos + END_MARKER > len {
        return Err(ArchiveError::Truncated {
            len,
            end: pos + END_MARKER,
        });
    }
    let mut block = [0u8; BLOCK as usize];
    read_block(reader, pos + BLOCK, &mut block)?;
    if block.iter().any(|b| *b != 0) {
        return Err(not_a_tar(format!(
            "no end-of-archive marker after the last entry (byte {pos})"
        )));
    }
    Ok(())
}

/// One entry of the archive, as [`walk`] found its header.
struct Entry {
    kind: tar::EntryType,
    /// The size of its data (a PAX `size` before it overrides the header's).
    size: u64,
    /// Where its data starts (after any sparse map blocks)...
    data_start: u64,
    /// ...and where it ends, padded to a whole block: the next header.
    data_end: u64,
}

impl Entry {
    /// A PAX header or a GNU long name: it describes the entry that follows.
    fn is_extension(&self) -> bool {
        let kind = self.kind;
        kind.is_pax_local_extensions()
            || kind.is_pax_global_extensions()
            || kind.is_gnu_longname()
            || kind.is_gnu_longlink()
    }

    /// A file whose data is its bytes as stored (not a link, a folder or a sparse file).
    fn is_plain_file(&self) -> bool {
        matches!(
            self.kind,
            tar::EntryType::Regular | tar::EntryType::Continuous
        ) && !self.kind.is_gnu_sparse()
    }
}

/// Checks the header `block` at `pos` and finds where its entry's data lies, which must be
/// inside the archive's `len` bytes.
fn read_entry(
    reader: &mut BufReader<Opened>,
    len: u64,
    pos: u64,
    block: &[u8; BLOCK as usize],
    pax_size: Option<u64>,
) -> Result<Entry, ArchiveError> {
    let header = tar::Header::from_byte_slice(block);
    check_checksum(block)
        .map_err(|()| not_a_tar(format!("the header at byte {pos} has a wrong checksum")))?;
    let stored_size = header
        .entry_size()
        .map_err(|_| not_a_tar(format!("the header at byte {pos} has no valid size")))?;
    let size = pax_size.unwrap_or(stored_size);
    let kind = header.entry_type();
    let mut data_start = pos + BLOCK;
    if kind.is_gnu_sparse() && header.as_gnu().is_some_and(|g| g.is_extended()) {
        data_start = skip_sparse_map(reader, len, data_start)?;
    }
    let data_end = size
        .checked_next_multiple_of(BLOCK)
        .and_then(|padded| data_start.checked_add(padded))
        .ok_or_else(|| not_a_tar(format!("the entry at byte {pos} is impossibly large")))?;
    if data_end > len {
        return Err(ArchiveError::Truncated {
            len,
            end: data_end.saturating_add(END_MARKER),
        });
    }
    Ok(Entry {
        kind,
        size,
        data_start,
        data_end,
    })
}

/// A GNU sparse entry may continue its map in extra header blocks from `data_start`: where
/// its data starts after them.
fn skip_sparse_map(
    reader: &mut BufReader<Opened>,
    len: u64,
    mut data_start: u64,
) -> Result<u64, ArchiveError> {
    loop {
        if data_start + BLOCK > len {
            return Err(ArchiveError::Truncated {
                len,
                end: data_start + BLOCK + END_MARKER,
            });
        }
        let mut extension = [0u8; BLOCK as usize];
        read_block(reader, data_start, &mut extension)?;
        data_start += BLOCK;
        // `isextended` of a GNU sparse extension block.
        if extension[504] == 0 {
            return Ok(data_start);
        }
    }
}

/// Reads a PAX header or a GNU long name (bounded by [`MAX_EXTENSION`]) into what applies to
/// the next entry; the other extensions are skipped.
fn read_extension(
    reader: &mut BufReader<Opened>,
    pos: u64,
    entry: &Entry,
    next_name: &mut Option<Vec<u8>>,
    next_size: &mut Option<u64>,
) -> Result<(), ArchiveError> {
    let (kind, size) = (entry.kind, entry.size);
    if size > MAX_EXTENSION {
        return Err(not_a_tar(format!(
            "an extension header at byte {pos} holds {size} bytes, beyond the {} KiB any real archive uses",
            MAX_EXTENSION / 1024
        )));
    }
    if kind.is_pax_local_extensions() || kind.is_gnu_longname() {
        let bytes = read_data(reader, entry.data_start, size)?;
        if kind.is_gnu_longname() {
            *next_name = Some(trim_nuls(bytes));
        } else {
            let (name, pax_size) = pax_records(&bytes)
                .map_err(|()| not_a_tar(format!("the PAX header at byte {pos} is malformed")))?;
            *next_name = name.or(next_name.take());
            *next_size = pax_size;
        }
    }
    Ok(())
}

/// Keeps the entry `name` when it is one of the schema files. As when Qdrant unpacks the
/// archive, a later entry of the same name wins. A bad schema file is kept as the walk's
/// problem; only failing to read the archive stops it.
fn keep_schema_file(
    reader: &mut BufReader<Opened>,
    found: &mut Found,
    name: &[u8],
    entry: &Entry,
    budget: &Budget,
) -> Result<(), ArchiveError> {
    if name == b"config.json" {
        keep_config(reader, found, entry, budget);
    }
    let slot = match name {
        b"payload_index.json" => Some(("payload_index.json", &mut found.payload_index)),
        b"replica_state.json" => Some(("replica_state.json", &mut found.replica_state)),
        b"shard_config.json" => Some(("shard_config.json", &mut found.shard_config)),
        b"shard_key_mapping.json" => Some(("shard_key_mapping.json", &mut found.shard_key_mapping)),
        _ => None,
    };
    let Some((which, slot)) = slot else {
        return Ok(());
    };
    let size = entry.size;
    if !entry.is_plain_file() {
        found.problem.get_or_insert(ArchiveError::BadEntry {
            entry: which,
            detail: "not a plain file in the archive".into(),
        });
    } else if size > MAX_JSON_ENTRY {
        found.problem.get_or_insert(ArchiveError::BadEntry {
            entry: which,
            detail: format!(
                "{size} bytes, more than the {} MiB a real one holds",
                MAX_JSON_ENTRY >> 20
            ),
        });
    } else {
        *slot = Some(read_data(reader, entry.data_start, size)?);
    }
    Ok(())
}

/// `config.json` is parsed as it is streamed (it may be large: see [`MAX_CONFIG_JSON`]).
fn keep_config(reader: &mut BufReader<Opened>, found: &mut Found, entry: &Entry, budget: &Budget) {
    let size = entry.size;
    if !entry.is_plain_file() {
        found.problem.get_or_insert(ArchiveError::BadEntry {
            entry: "config.json",
            detail: "not a plain file in the archive".into(),
        });
    } else if size > MAX_CONFIG_JSON {
        found.problem.get_or_insert(ArchiveError::BadEntry {
            entry: "config.json",
            detail: format!(
                "{size} bytes, more than the {} GiB aimem reads",
                MAX_CONFIG_JSON >> 30
            ),
        });
    } else {
        match stream_config(reader, entry.data_start, size, budget) {
            Ok(config) => found.config = Some(config),
            Err(problem) => {
                found.problem.get_or_insert(problem);
            }
        }
    }
}

/// What a shard snapshot (docs/qdrant.md, "Snapshot archive layout") holds at its top level:
/// a real one has `replica_state.json` and `shard_config.json` (and `segments/`, an empty
/// `wal/`), but no collection `config.json`; some writers add the collection files too, which
/// are then read.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardArchive {
    /// `replica_state.json`'s `this_peer_id`, when it is a number.
    pub this_peer_id: Option<u64>,
    /// `replica_state.json`'s `is_local`, when it is a boolean.
    pub is_local: Option<bool>,
    /// Whether `shard_config.json` names its shard type (`{"type": "ReplicaSet"}`).
    pub has_shard_type: bool,
    /// The collection's schema files, when the archive carries them.
    pub schema: Option<SnapshotSchema>,
    /// `shard_key_mapping.json`, when present.
    pub shard_key_mapping: Option<Value>,
}

/// Reads a shard snapshot's own files and checks that the archive is whole.
pub fn read_shard_from(file: Opened) -> Result<ShardArchive, ArchiveError> {
    let len = file.len();
    let budget = Budget::new(ARCHIVE_BUDGET);
    let found = walk(&mut BufReader::new(file), len, &budget)?;
    if let Some(problem) = found.problem {
        return Err(problem);
    }
    let replica_state = found
        .replica_state
        .ok_or(ArchiveError::NotAShard("replica_state.json"))?;
    let replica_state: ReplicaStateFile =
        parse_json(&replica_state, "replica_state.json", &budget)?;
    let shard_config = found
        .shard_config
        .ok_or(ArchiveError::NotAShard("shard_config.json"))?;
    let shard_config: ShardConfigFile = parse_json(&shard_config, "shard_config.json", &budget)?;
    let shard_key_mapping = match found.shard_key_mapping {
        Some(bytes) => {
            Some(parse_any::<crate::json::Bounded>(&bytes, "shard_key_mapping.json", &budget)?.0)
        }
        None => None,
    };
    let schema = match found.config {
        None => None,
        Some(config) => Some(schema_files(
            config,
            found.payload_index.as_deref(),
            &budget,
        )?),
    };
    Ok(ShardArchive {
        this_peer_id: replica_state.this_peer_id.as_u64(),
        is_local: replica_state.is_local.as_bool(),
        has_shard_type: shard_config.shard_type.as_str().is_some()
            || matches!(shard_config.shard_type, Scalar::LongText(_)),
        schema,
        shard_key_mapping,
    })
}

fn not_a_tar(detail: String) -> ArchiveError {
    ArchiveError::NotATar(detail)
}

fn read_block(
    reader: &mut BufReader<Opened>,
    at: u64,
    block: &mut [u8],
) -> Result<(), ArchiveError> {
    move_to(reader, at)
        .and_then(|_| reader.read_exact(block))
        .map_err(|e| ArchiveError::Unreadable(e.kind().to_string()))
}

/// Moves `reader` to `at`, keeping what it has buffered when `at` lies within it (a seek to
/// a position would drop the buffer, and a file in a bucket would be asked for again).
fn move_to(reader: &mut BufReader<Opened>, at: u64) -> std::io::Result<()> {
    let here = reader.stream_position()?;
    match i64::try_from(i128::from(at) - i128::from(here)) {
        Ok(by) => reader.seek_relative(by),
        Err(_) => reader.seek(SeekFrom::Start(at)).map(|_| ()),
    }
}

/// `config.json`, `size` bytes at `at`, parsed as it is read: what it keeps is built within
/// `budget`, the rest (the metadata, whatever its size) skipped, so memory stays flat.
fn stream_config(
    reader: &mut BufReader<Opened>,
    at: u64,
    size: u64,
    budget: &Budget,
) -> Result<ConfigFile, ArchiveError> {
    move_to(reader, at).map_err(|e| ArchiveError::Unreadable(e.kind().to_string()))?;
    let entry = std::io::Read::take(&mut *reader, size);
    let parsed = crate::json::within(budget, || {
        serde_json::from_reader::<_, crate::json::Object<ConfigFile>>(entry)
    });
    parsed
        .map(|object| object.0)
        .map_err(|e| json_error(&e, "config.json", budget))
}

/// `size` bytes at `at`; the caller has bounded `size`.
fn read_data(reader: &mut BufReader<Opened>, at: u64, size: u64) -> Result<Vec<u8>, ArchiveError> {
    let mut bytes = vec![0u8; usize::try_from(size).unwrap_or(0)];
    read_block(reader, at, &mut bytes)?;
    Ok(bytes)
}

/// A header's checksum: the sum of its bytes, the checksum field counted as spaces.
fn check_checksum(block: &[u8; BLOCK as usize]) -> Result<(), ()> {
    let sum: u32 = block[..148]
        .iter()
        .chain(&block[156..])
        .map(|b| u32::from(*b))
        .sum::<u32>()
        + 8 * u32::from(b' ');
    let field = &block[148..156];
    let digits: Vec<u8> = field
        .iter()
        .copied()
        .skip_while(|b| *b == b' ')
        .take_while(|b| (b'0'..=b'7').contains(b))
        .collect();
    let stored = std::str::from_utf8(&digits)
        .ok()
        .filter(|d| !d.is_empty())
        .and_then(|d| u32::from_str_radix(d, 8).ok())
        .ok_or(())?;
    if stored == sum { Ok(()) } else { Err(()) }
}

fn trim_nuls(mut bytes: Vec<u8>) -> Vec<u8> {
    while bytes.last() == Some(&0) {
        bytes.pop();
    }
    bytes
}

/// The `path` and `size` records of a PAX header (`<len> <key>=<value>\n` each).
#[allow(clippy::type_complexity)]
fn pax_records(mut bytes: &[u8]) -> Result<(Option<Vec<u8>>, Option<u64>), ()> {
    let (mut path, mut size) = (None, None);
    while !bytes.is_empty() {
        let space = bytes.iter().position(|b| *b == b' ').ok_or(())?;
        let record_len: usize = std::str::from_utf8(&bytes[..space])
            .ok()
            .and_then(|n| n.parse().ok())
            .ok_or(())?;
        if record_len <= space + 1 || record_len > bytes.len() || bytes[record_len - 1] != b'\n' {
            return Err(());
        }
        let record = &bytes[space + 1..record_len - 1];
        let equals = record.iter().position(|b| *b == b'=').ok_or(())?;
        let (key, value) = (&record[..equals], &record[equals + 1..]);
        match key {
            b"path" => path = Some(value.to_vec()),
            b"size" => {
                size = Some(
                    std::str::from_utf8(value)
                        .ok()
                        .and_then(|v| v.parse().ok())
                        .ok_or(())?,
                );
            }
            _ => {}
        }
        bytes = &bytes[record_len..];
    }
    Ok((path, size))
}

/// One JSON file of the archive, a JSON object, as `T`: see [`parse_any`].
fn parse_json<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    which: &'static str,
    budget: &Budget,
) -> Result<T, ArchiveError> {
    // A typed struct would also take a list of its fields in order.
    if !crate::json::is_object(bytes)
        && serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok()
    {
        return Err(ArchiveError::BadEntry {
            entry: which,
            detail: "not a JSON object".into(),
        });
    }
    parse_any(bytes, which, budget)
}

/// One JSON file of the archive as `T`; the values it keeps are built within `budget`. The
/// error says where, never what (no content is quoted).
fn parse_any<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    which: &'static str,
    budget: &Budget,
) -> Result<T, ArchiveError> {
    let parsed = crate::json::within(budget, || serde_json::from_slice::<T>(bytes));
    parsed.map_err(|e| json_error(&e, which, budget))
}

/// The error of parsing `which`, in words that quote none of its content.
fn json_error(e: &serde_json::Error, which: &'static str, budget: &Budget) -> ArchiveError {
    ArchiveError::BadEntry {
        entry: which,
        detail: match budget.is_spent() {
            true => crate::json::over_budget(ARCHIVE_BUDGET),
            false => format!(
                "not valid JSON ({} at line {} column {})",
                match e.classify() {
                    serde_json::error::Category::Io => "unreadable",
                    serde_json::error::Category::Syntax => "a syntax error",
                    serde_json::error::Category::Data => "an unexpected value",
                    serde_json::error::Category::Eof => "cut short",
                },
                e.line(),
                e.column()
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use camino::Utf8PathBuf;

    use super::*;
    use crate::fingerprint::diff;

    fn fixtures() -> Utf8PathBuf {
        Utf8PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/qdrant")
    }

    fn conventions_info() -> Value {
        let text =
            std::fs::read_to_string(fixtures().join("collections/info-conventions.json")).unwrap();
        let exchange: Value = serde_json::from_str(&text).unwrap();
        exchange["response"]["body"]["result"].clone()
    }

    #[test]
    fn the_real_snapshot_matches_its_collection_info() {
        let schema = read_schema(&fixtures().join("conventions.snapshot")).unwrap();
        let from_snapshot = schema.fingerprint().unwrap();
        let from_info = Fingerprint::from_collection_info(&conventions_info()).unwrap();
        assert_eq!(diff(&from_info, &from_snapshot), vec![]);
        assert_eq!(from_snapshot.digest(), from_info.digest());
    }

    fn copy_of_fixture(dir: &tempfile::TempDir) -> (Utf8PathBuf, Vec<u8>) {
        let bytes = std::fs::read(fixtures().join("conventions.snapshot")).unwrap();
        let path =
            Utf8PathBuf::from_path_buf(PathBuf::from(dir.path()).join("c.snapshot")).unwrap();
        (path, bytes)
    }

    #[test]
    fn every_truncation_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let (path, bytes) = copy_of_fixture(&dir);
        // Cut inside the data, at a block boundary between entries, and inside the end marker.
        for cut in [
            bytes.len() / 2,
            512 * 10,
            bytes.len() - 512,
            bytes.len() - 1,
        ] {
            std::fs::write(&path, &bytes[..cut]).unwrap();
            let err = read_schema(&path).unwrap_err();
            assert!(
                matches!(err, ArchiveError::Truncated { .. } | ArchiveError::NoConfig),
                "cut at {cut}: {err}"
            );
        }
    }

    #[test]
    fn garbage_and_empty_files_are_not_snapshots() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = copy_of_fixture(&dir);
        std::fs::write(&path, vec![7u8; 4096]).unwrap();
        assert!(matches!(
            read_schema(&path).unwrap_err(),
            ArchiveError::NotATar(_)
        ));
        std::fs::write(&path, b"").unwrap();
        assert!(read_schema(&path).is_err());
    }

    /// A PAX header announcing 2 GiB (a hole in a sparse file: it costs no disk) is refused
    /// without reading it; the same file with the header's data loaded would need 2 GiB.
    #[test]
    fn a_huge_extension_header_is_refused_unread() {
        let dir = tempfile::tempdir().unwrap();
        let (path, real) = copy_of_fixture(&dir);
        for kind in [b'x', b'L', b'g'] {
            let huge: u64 = 2 * 1024 * 1024 * 1024;
            let mut header = tar::Header::new_ustar();
            header.set_size(huge);
            header.set_entry_type(tar::EntryType::new(kind));
            header.set_path("PaxHeaders/x").unwrap();
            header.set_cksum();
            let mut file = File::create(&path).unwrap();
            std::io::Write::write_all(&mut file, header.as_bytes()).unwrap();
            file.set_len(BLOCK + huge).unwrap();
            file.seek(SeekFrom::End(0)).unwrap();
            std::io::Write::write_all(&mut file, &real).unwrap();
            drop(file);
            let err = read_schema(&path).unwrap_err();
            assert!(err.to_string().contains("extension header"), "{err}");
        }
    }

    /// A GNU sparse entry whose map continues in an extension block (Qdrant writes its WAL
    /// files sparse): the walk steps over the extension block to the entry's data.
    #[test]
    fn a_sparse_entry_with_an_extended_map_is_walked() {
        let mut sparse = tar::Header::new_gnu();
        sparse.set_path("0/wal/open-1").unwrap();
        sparse.set_size(512);
        sparse.set_mode(0o644);
        sparse.set_entry_type(tar::EntryType::GNUSparse);
        let mut bytes = sparse.as_bytes().to_vec();
        // sparse[0] = {offset 0, numbytes 512}; isextended; realsize 4096.
        bytes[386..398].copy_from_slice(b"00000000000\0");
        bytes[398..410].copy_from_slice(b"00000001000\0");
        bytes[482] = 1;
        bytes[483..495].copy_from_slice(b"00000010000\0");
        bytes[148..156].copy_from_slice(b"        ");
        let sum: u32 = bytes.iter().map(|b| u32::from(*b)).sum();
        bytes[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        // The extension block: one more (empty) chunk at the end, not extended further.
        let mut extension = [0u8; 512];
        extension[..12].copy_from_slice(b"00000010000\0");
        extension[12..24].copy_from_slice(b"00000000000\0");
        bytes.extend_from_slice(&extension);
        bytes.extend_from_slice(&[b'w'; 512]);
        let config = br#"{"params": {}}"#;
        let mut header = tar::Header::new_gnu();
        header.set_path("config.json").unwrap();
        header.set_size(config.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(config);
        bytes.resize(bytes.len().next_multiple_of(512) + 1024, 0);
        // The tar crate agrees that this is a whole archive holding config.json.
        let names: Vec<String> = tar::Archive::new(&bytes[..])
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["0/wal/open-1", "config.json"]);
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = copy_of_fixture(&dir);
        std::fs::write(&path, &bytes).unwrap();
        let schema = read_schema(&path).unwrap();
        assert_eq!(schema.config, json!({"params": {}}));
    }

    /// Errors name the problem, never the bytes: a header full of a secret is not quoted.
    #[test]
    fn errors_never_quote_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = copy_of_fixture(&dir);
        std::fs::write(&path, "SECRET-MARKER-".repeat(100)).unwrap();
        let err = read_schema(&path).unwrap_err().to_string();
        assert!(!err.contains("SECRET"), "{err}");
        assert!(!err.contains("MARKER"), "{err}");
    }

    #[test]
    fn stored_index_forms_become_info_forms() {
        assert_eq!(
            index_info(&json!("keyword")),
            json!({"data_type": "keyword"})
        );
        assert_eq!(
            index_info(&json!({"type": "integer", "lookup": true, "range": true})),
            json!({"data_type": "integer", "params": {"type": "integer", "lookup": true, "range": true, "is_principal": null}})
        );
        assert_eq!(
            index_info(&json!({"type": "keyword", "is_tenant": true})),
            json!({"data_type": "keyword", "params": {"type": "keyword", "is_tenant": true}})
        );
    }
}
