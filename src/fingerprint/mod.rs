//! Schema fingerprints: everything needed to recreate a collection's structure, in a
//! canonical form so that equal schemas are byte-equal and digest-equal.
//!
//! A fingerprint is derived from `GET /collections/{c}` and holds four keys, the same the
//! Python scripts wrote: `params` (vectors, sparse vectors, sharding, replication, on-disk
//! payload), `hnsw_config`, `quantization_config` and `payload_schema` (each index's
//! `data_type` and `params`; the volatile `points` counts are dropped).

mod diff;

use miette::Diagnostic;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use thiserror::Error;

pub use diff::{Difference, Severity, diff};

/// A collection schema in canonical form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint(Value);

#[derive(Debug, Error, Diagnostic)]
pub enum FingerprintError {
    #[error("the collection info has no `{0}`")]
    #[diagnostic(
        code(aimem::fingerprint::missing_field),
        help("Is this a Qdrant collection info (GET /collections/NAME)?")
    )]
    MissingField(&'static str),
    #[error("a schema fingerprint must be a JSON object with `params`")]
    #[diagnostic(code(aimem::fingerprint::invalid))]
    NotAnObject,
}

/// Creation parameters Qdrant refuses in `PUT /collections/{c}` (they are set later by PATCH).
const NOT_ACCEPTED_ON_CREATE: [&str; 2] = ["read_fan_out_factor", "read_fan_out_delay_ms"];

impl Fingerprint {
    /// Derives the fingerprint from a collection info (`result` of `GET /collections/{c}`).
    pub fn from_collection_info(info: &Value) -> Result<Fingerprint, FingerprintError> {
        let config = info
            .get("config")
            .ok_or(FingerprintError::MissingField("config"))?;
        let params = config
            .get("params")
            .ok_or(FingerprintError::MissingField("config.params"))?;
        let mut fingerprint = Map::new();
        fingerprint.insert("params".into(), params.clone());
        fingerprint.insert(
            "hnsw_config".into(),
            config.get("hnsw_config").cloned().unwrap_or(Value::Null),
        );
        fingerprint.insert(
            "quantization_config".into(),
            config
                .get("quantization_config")
                .cloned()
                .unwrap_or(Value::Null),
        );
        fingerprint.insert(
            "payload_schema".into(),
            info.get("payload_schema").cloned().unwrap_or_default(),
        );
        Fingerprint::from_value(Value::Object(fingerprint))
    }

    /// Reads a fingerprint as stored in a manifest (by aimem or the Python scripts).
    pub fn from_value(value: Value) -> Result<Fingerprint, FingerprintError> {
        let Value::Object(mut map) = value else {
            return Err(FingerprintError::NotAnObject);
        };
        let mut params = match map.remove("params") {
            Some(Value::Object(params)) => params,
            _ => return Err(FingerprintError::NotAnObject),
        };
        // "No sparse vectors" is written both as a missing key and as `{}`: make them one form.
        if params
            .get("sparse_vectors")
            .is_some_and(|s| s.as_object().is_some_and(Map::is_empty) || s.is_null())
        {
            params.remove("sparse_vectors");
        }
        let payload_schema = match map.remove("payload_schema") {
            Some(Value::Object(fields)) => fields
                .into_iter()
                .map(|(field, index)| (field, index_schema(index)))
                .collect(),
            _ => Map::new(),
        };
        let mut canonical = Map::new();
        canonical.insert("params".into(), Value::Object(params));
        canonical.insert(
            "hnsw_config".into(),
            map.remove("hnsw_config").unwrap_or(Value::Null),
        );
        canonical.insert(
            "quantization_config".into(),
            map.remove("quantization_config").unwrap_or(Value::Null),
        );
        canonical.insert("payload_schema".into(), Value::Object(payload_schema));
        Ok(Fingerprint(Value::Object(canonical)))
    }

    /// The fingerprint as JSON (keys sorted, since serde_json's map is ordered).
    pub fn as_value(&self) -> &Value {
        &self.0
    }

    /// Canonical bytes: compact JSON with sorted keys.
    pub fn canonical_json(&self) -> String {
        self.0.to_string()
    }

    /// `sha256:<hex>` of the canonical JSON.
    pub fn digest(&self) -> String {
        format!(
            "sha256:{}",
            hex(&Sha256::digest(self.canonical_json().as_bytes()))
        )
    }

    fn get(&self, key: &str) -> &Value {
        self.0.get(key).unwrap_or(&Value::Null)
    }

    /// The `PUT /collections/{c}` body that recreates this structure (payload indexes are
    /// separate calls, see [`Fingerprint::payload_indexes`]).
    pub fn create_collection_body(&self) -> Value {
        let mut body = Map::new();
        if let Value::Object(params) = self.get("params") {
            for (key, value) in params {
                let empty_vectors =
                    key == "vectors" && value.as_object().is_some_and(Map::is_empty);
                if !NOT_ACCEPTED_ON_CREATE.contains(&key.as_str())
                    && !empty_vectors
                    && !value.is_null()
                {
                    body.insert(key.clone(), value.clone());
                }
            }
        }
        for key in ["hnsw_config", "quantization_config"] {
            let value = self.get(key);
            if !value.is_null() {
                body.insert(key.into(), value.clone());
            }
        }
        Value::Object(body)
    }

    /// Each payload index as `(field, field_schema)` for `PUT /collections/{c}/index`:
    /// the object form when the index has params, the bare type otherwise.
    pub fn payload_indexes(&self) -> Vec<(String, Value)> {
        let Value::Object(fields) = self.get("payload_schema") else {
            return Vec::new();
        };
        fields
            .iter()
            .filter_map(|(field, index)| {
                let schema = index
                    .get("params")
                    .filter(|p| !p.is_null())
                    .or_else(|| index.get("data_type"))?;
                Some((field.clone(), schema.clone()))
            })
            .collect()
    }

    /// The number of vectors per point and their sizes: used to estimate a backup's size.
    pub fn dense_vectors(&self) -> Vec<DenseVector> {
        let vectors = self
            .get("params")
            .get("vectors")
            .cloned()
            .unwrap_or_default();
        let one = |params: &Value| DenseVector {
            size: params.get("size").and_then(Value::as_u64).unwrap_or(0),
            bytes_per_dimension: match params.get("datatype").and_then(Value::as_str) {
                Some("uint8") => 1,
                Some("float16") => 2,
                _ => 4,
            },
            multivector: params
                .get("multivector_config")
                .is_some_and(|m| !m.is_null()),
        };
        if vectors.get("size").is_some() {
            vec![one(&vectors)]
        } else {
            vectors
                .as_object()
                .map(|named| named.values().map(one).collect())
                .unwrap_or_default()
        }
    }

    /// How many sparse vectors each point may carry.
    pub fn sparse_vector_count(&self) -> usize {
        self.get("params")
            .get("sparse_vectors")
            .and_then(Value::as_object)
            .map_or(0, Map::len)
    }
}

/// One dense vector of a point, for size estimates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DenseVector {
    pub size: u64,
    pub bytes_per_dimension: u64,
    pub multivector: bool,
}

/// Keeps an index's `data_type` and `params`; drops `points` and anything else volatile.
fn index_schema(index: Value) -> Value {
    let mut kept = Map::new();
    if let Value::Object(mut map) = index {
        for key in ["data_type", "params"] {
            if let Some(value) = map.remove(key).filter(|v| !v.is_null()) {
                kept.insert(key.into(), value);
            }
        }
    }
    Value::Object(kept)
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

#[cfg(test)]
mod tests;
