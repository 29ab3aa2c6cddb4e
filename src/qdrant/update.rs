//! Writing into a collection that exists: its settings changed after its creation
//! (`PATCH /collections/{c}`, docs/qdrant.md, "Changing a collection's settings"), and upserts
//! whose bodies the caller builds once into a buffer it keeps ([`UpsertBody`]; docs/qdrant.md,
//! "Points"): a restore that sends thousands of them reuses a few buffers instead of building
//! points, then a body, for each.

use std::ops::Range;

use serde::de::IgnoredAny;
use serde::ser::{SerializeSeq, Serializer};
use serde_json::Value;
use ureq::http::{HeaderValue, Method};

use super::types::Envelope;
use super::{Client, Parse, QdrantError, collection_path, strip_query};
use crate::logical::LogicalError;
use crate::logical::point::PointId;
use crate::logical::read::{PointView, VectorView};

impl Client {
    /// `PATCH /collections/{name}` with an UpdateCollection body (`{"optimizers_config":
    /// {…}}`, …). Qdrant answers `true` once the new settings are saved; what they change
    /// (optimizers rebuilt, indexes built) may come after (docs/qdrant.md, "Changing a
    /// collection's settings").
    pub fn update_collection(&self, name: &str, body: &Value) -> Result<(), QdrantError> {
        self.call(Method::PATCH, &collection_path(name, ""), Some(body))
    }

    /// `PUT /collections/{name}/points?wait=…` with `body` as it is (see [`UpsertBody`]).
    pub fn upsert_body(
        &self,
        name: &str,
        body: &UpsertBody,
        wait: bool,
    ) -> Result<(), QdrantError> {
        let path = collection_path(name, &format!("/points?wait={wait}"));
        self.send_borrowed(Method::PUT, &path, body.bytes())
    }

    /// Sends the JSON `body`, borrowed (the caller keeps its buffer), and reads the answer's
    /// envelope: [`Client::json_bytes`] for a body that is not given away.
    fn send_borrowed(&self, method: Method, path: &str, body: &[u8]) -> Result<(), QdrantError> {
        let mut request = self.request(method.clone(), path, Some(body))?;
        request
            .headers_mut()
            .insert("content-type", HeaderValue::from_static("application/json"));
        let what = format!("{method} {}", strip_query(path));
        self.exchange_json_parsed::<Envelope<IgnoredAny>, _>(
            method,
            path,
            request,
            &what,
            self.timeouts.request,
            Parse::Streamed,
        )
        .map(drop)
    }
}

/// The body of one upsert, `{"points": [{"id", "vector": {name: …}, "payload"}],
/// "shard_key"?}`, written point by point into a buffer that is kept for the next one.
#[derive(Debug, Default)]
pub struct UpsertBody {
    buffer: Vec<u8>,
    points: usize,
    shard_key: Option<Value>,
    finished: bool,
}

impl UpsertBody {
    /// Empties the body for points of `shard_key` (custom sharding), keeping the buffer.
    pub fn reset(&mut self, shard_key: Option<Value>) {
        self.buffer.clear();
        self.points = 0;
        self.shard_key = shard_key;
        self.finished = false;
    }

    /// The points it holds.
    pub fn len(&self) -> usize {
        self.points
    }

    pub fn is_empty(&self) -> bool {
        self.points == 0
    }

    /// The shard key its points go to.
    pub fn shard_key(&self) -> Option<&Value> {
        self.shard_key.as_ref()
    }

    /// Adds `point`, as Qdrant's JSON writes it: named vectors (`""` for the unnamed one, the
    /// form every collection takes), and an empty payload for a point without one, as Qdrant
    /// gives it. The point's payload text was checked to be one JSON value when it was read,
    /// so it goes in as it is.
    /// A vector whose levels and values disagree fails (the body is then to be reset): a
    /// point is never sent without it.
    pub fn push(&mut self, point: &PointView<'_>) -> Result<(), LogicalError> {
        let out = &mut self.buffer;
        let start = out.len();
        out.extend_from_slice(match self.points {
            0 => b"{\"points\":[{\"id\":".as_slice(),
            _ => b",{\"id\":".as_slice(),
        });
        match &point.id {
            PointId::Num(n) => serde_json::to_writer(&mut *out, n)?,
            PointId::Uuid(u) => serde_json::to_writer(&mut *out, u)?,
        }
        out.extend_from_slice(b",\"vector\":{");
        for (index, vector) in point.vectors().enumerate() {
            let (name, vector) = vector?;
            if index > 0 {
                out.push(b',');
            }
            serde_json::to_writer(&mut *out, name)?;
            out.push(b':');
            match vector {
                VectorView::Dense(values) => serde_json::to_writer(&mut *out, values)?,
                VectorView::Sparse { indices, values } => {
                    out.extend_from_slice(b"{\"indices\":");
                    serde_json::to_writer(&mut *out, &Unsigned(indices))?;
                    out.extend_from_slice(b",\"values\":");
                    serde_json::to_writer(&mut *out, values)?;
                    out.push(b'}');
                }
                VectorView::Multi { values, lists } => {
                    serde_json::to_writer(&mut *out, &Multi { values, lists })?;
                }
            }
        }
        out.extend_from_slice(b"},\"payload\":");
        out.extend_from_slice(point.payload.unwrap_or(b"{}"));
        out.push(b'}');
        self.points += 1;
        // The buffer is kept and filled again: it grows by an eighth when the next points may
        // not fit, not by doubling, so it settles just above one body's size.
        let point = out.len() - start;
        if out.capacity() - out.len() < 2 * point {
            out.reserve_exact(out.capacity() / 8 + 2 * point);
        }
        Ok(())
    }

    /// Closes the body (once); [`UpsertBody::bytes`] is then the whole request body.
    pub fn finish(&mut self) -> Result<(), serde_json::Error> {
        if self.finished {
            return Ok(());
        }
        let out = &mut self.buffer;
        if self.points == 0 {
            out.extend_from_slice(b"{\"points\":[");
        }
        out.push(b']');
        if let Some(key) = &self.shard_key {
            out.extend_from_slice(b",\"shard_key\":");
            serde_json::to_writer(&mut *out, key)?;
        }
        out.push(b'}');
        self.finished = true;
        Ok(())
    }

    /// The body as written so far (whole once [`UpsertBody::finish`]ed).
    pub fn bytes(&self) -> &[u8] {
        &self.buffer
    }
}

/// Sparse indices as Parquet keeps them (`i32`), written as the unsigned numbers they are.
struct Unsigned<'a>(&'a [i32]);

impl serde::Serialize for Unsigned<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for &index in self.0 {
            seq.serialize_element(&(index as u32))?;
        }
        seq.end()
    }
}

/// A multivector: its vectors as ranges of `values`.
struct Multi<'a> {
    values: &'a [f32],
    lists: &'a [Range<usize>],
}

impl serde::Serialize for Multi<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.lists.len()))?;
        for list in self.lists {
            let values = self.values.get(list.clone()).ok_or_else(|| {
                serde::ser::Error::custom("a multivector's list lies outside its values")
            })?;
            seq.serialize_element(values)?;
        }
        seq.end()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;
    use crate::logical::columns::{Columns, VectorKind};
    use crate::logical::point::{Point, VectorValue};
    use crate::logical::read::PointsReader;
    use crate::logical::write::PointsWriter;

    /// A multivector's list outside its values fails the body, not sends an empty vector.
    #[test]
    fn a_multivector_list_outside_its_values_fails() {
        let values = [1.0f32, 2.0];
        let fits = [0..1, 1..2];
        let json = serde_json::to_string(&Multi {
            values: &values,
            lists: &fits,
        });
        assert_eq!(json.unwrap(), "[[1.0],[2.0]]");
        let outside = [0..1, 1..3];
        let json = serde_json::to_string(&Multi {
            values: &values,
            lists: &outside,
        });
        assert!(json.is_err_and(|e| e.to_string().contains("outside its values")));
    }

    /// A body written from the file's rows is the JSON of the points themselves.
    #[test]
    fn a_body_is_the_json_of_the_points_read() {
        let columns = Columns::new(&[
            ("".into(), VectorKind::Dense),
            ("bm25".into(), VectorKind::Sparse),
            ("colbert".into(), VectorKind::Multi),
        ])
        .unwrap();
        let points: Vec<Point> = (0..5u64)
            .map(|i| {
                let mut vectors = BTreeMap::new();
                vectors.insert("".into(), VectorValue::Dense(vec![i as f32, 0.1, -2.5e-8]));
                vectors.insert(
                    "bm25".into(),
                    VectorValue::Sparse {
                        indices: vec![3, u32::MAX - 1],
                        values: vec![0.5, 1.0],
                    },
                );
                if i % 2 == 0 {
                    vectors.insert(
                        "colbert".into(),
                        VectorValue::Multi(vec![vec![1.0, 2.0], vec![], vec![3.0]]),
                    );
                }
                Point {
                    id: match i {
                        0 => PointId::Uuid("19c3756f-402f-4856-b279-517ecd223cf2".into()),
                        _ => PointId::Num(u64::MAX - i),
                    },
                    payload: (i != 1)
                        .then(|| json!({"n": 1152921504606846977u64, "t": "é\"", "f": 0.1})),
                    shard_key: None,
                    vectors,
                }
            })
            .collect();
        let file = tempfile::NamedTempFile::new().unwrap();
        let mut writer = PointsWriter::new(file.reopen().unwrap(), columns).unwrap();
        for point in &points {
            writer.push(point).unwrap();
        }
        writer.finish().unwrap();
        let reader = PointsReader::open(file.reopen().unwrap()).unwrap();
        let mut chunks = reader.chunks();
        let mut body = UpsertBody::default();
        body.reset(Some(json!("tenant-a")));
        while chunks.advance().unwrap() {
            for row in 0..chunks.chunk().rows() {
                body.push(&chunks.chunk().point(row).unwrap()).unwrap();
            }
        }
        body.finish().unwrap();
        body.finish().unwrap();
        let sent: Value = serde_json::from_slice(body.bytes()).unwrap();
        // Floats as float32 text (as Qdrant's own JSON and serde write them), then read.
        let floats = |v: &[f32]| -> Value {
            serde_json::from_str(&serde_json::to_string(v).unwrap()).unwrap()
        };
        let expected: Vec<Value> = points
            .iter()
            .map(|p| {
                let vectors: serde_json::Map<String, Value> = p
                    .vectors
                    .iter()
                    .map(|(name, v)| {
                        let v = match v {
                            VectorValue::Dense(d) => floats(d),
                            VectorValue::Sparse { indices, values } => {
                                json!({"indices": indices, "values": floats(values)})
                            }
                            VectorValue::Multi(m) => {
                                Value::Array(m.iter().map(|v| floats(v)).collect())
                            }
                        };
                        (name.clone(), v)
                    })
                    .collect();
                json!({"id": p.id.to_json(), "vector": vectors,
                       "payload": p.payload.clone().unwrap_or(json!({}))})
            })
            .collect();
        assert_eq!(sent, json!({"points": expected, "shard_key": "tenant-a"}));
        assert_eq!(body.len(), 5);
        body.reset(None);
        body.finish().unwrap();
        assert_eq!(body.bytes(), b"{\"points\":[]}");
    }
}
