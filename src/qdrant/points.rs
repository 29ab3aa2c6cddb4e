//! Points in and out (docs/qdrant.md, "Points"): a page of a collection's points with their
//! vectors and payloads (`POST /collections/{c}/points/scroll`), points retrieved and deleted
//! (writing them is [`super::upsert`]'s). Answers are read as they arrive into the logical
//! format's [`Point`]: a vector's values go straight into its `Vec<f32>`, never through a JSON
//! tree.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use ureq::http::Method;

use super::{Client, QdrantError, collection_path};
use crate::logical::point::{Point, PointId, VectorValue};

/// The most points one page may hold (aimem asks for far fewer).
pub const MAX_PAGE: usize = 10_000;

/// One page of a scroll.
#[derive(Debug, PartialEq)]
pub struct Page {
    pub points: Vec<Point>,
    /// Where the next page starts; `None` after the last.
    pub next: Option<PointId>,
}

impl Client {
    /// `POST /collections/{name}/points/scroll`: up to `limit` points from `offset` on (from
    /// the first without), with every vector and the payload, in id order. `shard_key`
    /// restricts it to one key's shards of a custom-sharded collection.
    pub fn scroll(
        &self,
        name: &str,
        offset: Option<&PointId>,
        limit: usize,
        shard_key: Option<&Value>,
    ) -> Result<Page, QdrantError> {
        self.scroll_where(name, offset, limit, shard_key, None)
    }

    /// [`Client::scroll`] of the points that match `filter` (Qdrant's filter syntax).
    pub fn scroll_where(
        &self,
        name: &str,
        offset: Option<&PointId>,
        limit: usize,
        shard_key: Option<&Value>,
        filter: Option<&Value>,
    ) -> Result<Page, QdrantError> {
        let mut body = serde_json::json!({
            "limit": limit.min(MAX_PAGE),
            "with_vector": true,
            "with_payload": true,
        });
        if let Some(offset) = offset {
            body["offset"] = offset.to_json();
        }
        if let Some(key) = shard_key {
            body["shard_key"] = key.clone();
        }
        if let Some(filter) = filter {
            body["filter"] = filter.clone();
        }
        let path = collection_path(name, "/points/scroll");
        let page: Option<RawPage> =
            self.points_result(Method::POST, &path, &body, Some(super::page::parse))?;
        let page = page.ok_or_else(|| self.invalid(&path, "no `result`"))?;
        Ok(page.into_page())
    }

    /// A page of ids only (no vector, no payload): where each of a scroll's id ranges starts.
    pub fn scroll_ids(
        &self,
        name: &str,
        offset: Option<&PointId>,
        limit: usize,
        shard_key: Option<&Value>,
    ) -> Result<(Vec<PointId>, Option<PointId>), QdrantError> {
        let mut body = serde_json::json!({
            "limit": limit.min(MAX_PAGE),
            "with_vector": false,
            "with_payload": false,
        });
        if let Some(offset) = offset {
            body["offset"] = offset.to_json();
        }
        if let Some(key) = shard_key {
            body["shard_key"] = key.clone();
        }
        let path = collection_path(name, "/points/scroll");
        let page: Option<RawPage> = self.result(Method::POST, &path, Some(&body))?;
        let page = page.ok_or_else(|| self.invalid(&path, "no `result`"))?;
        Ok((
            page.points.into_iter().map(|p| p.id.0).collect(),
            page.next_page_offset.map(|id| id.0),
        ))
    }

    /// The exact number of points that match `filter`.
    pub fn count_exact_where(&self, name: &str, filter: &Value) -> Result<u64, QdrantError> {
        self.count_at(
            name,
            "/points/count",
            serde_json::json!({ "exact": true, "filter": filter }),
        )
    }

    /// `POST /collections/{name}/points`: the points among `ids` that exist, with every vector
    /// and the payload (and, custom sharding, their shard key).
    pub fn retrieve(&self, name: &str, ids: &[PointId]) -> Result<Vec<Point>, QdrantError> {
        let ids: Vec<Value> = ids.iter().map(PointId::to_json).collect();
        let body = serde_json::json!({ "ids": ids, "with_vector": true, "with_payload": true });
        let path = collection_path(name, "/points");
        let records: Option<Records> = self.points_result(Method::POST, &path, &body, None)?;
        let records = records.ok_or_else(|| self.invalid(&path, "no `result`"))?;
        Ok(records.0.into_iter().map(RawRecord::into_point).collect())
    }

    /// `POST /collections/{name}/points/delete?wait=true` of the points `ids` (of `shard_key`'s
    /// shards in a custom-sharded collection, which refuses a delete without a key).
    pub fn delete_points(
        &self,
        name: &str,
        ids: &[PointId],
        shard_key: Option<&Value>,
    ) -> Result<(), QdrantError> {
        let ids: Vec<Value> = ids.iter().map(PointId::to_json).collect();
        self.delete(name, serde_json::json!({ "points": ids }), shard_key)
    }

    /// `POST /collections/{name}/points/delete?wait=true` of every point that matches `filter`
    /// (`{}` matches every point), of `shard_key`'s shards as for [`Client::delete_points`].
    pub fn delete_points_where(
        &self,
        name: &str,
        filter: &Value,
        shard_key: Option<&Value>,
    ) -> Result<(), QdrantError> {
        self.delete(name, serde_json::json!({ "filter": filter }), shard_key)
    }

    fn delete(
        &self,
        name: &str,
        mut body: Value,
        shard_key: Option<&Value>,
    ) -> Result<(), QdrantError> {
        if let Some(key) = shard_key {
            body["shard_key"] = key.clone();
        }
        let path = collection_path(name, "/points/delete?wait=true");
        self.call(Method::POST, &path, Some(&body))
    }
}

/// A scroll's page as the answer holds it (read by serde, or by [`super::page`] when it can).
#[derive(Deserialize)]
pub(super) struct RawPage {
    #[serde(deserialize_with = "crate::json::at_most::<_, _, MAX_PAGE>")]
    pub(super) points: Vec<RawRecord>,
    #[serde(default)]
    pub(super) next_page_offset: Option<RawId>,
}

impl RawPage {
    pub(super) fn into_page(self) -> Page {
        Page {
            points: self.points.into_iter().map(RawRecord::into_point).collect(),
            next: self.next_page_offset.map(|id| id.0),
        }
    }
}

/// A retrieve's answer: a list of records.
#[derive(Deserialize)]
struct Records(
    #[serde(deserialize_with = "crate::json::at_most::<_, _, MAX_PAGE>")] Vec<RawRecord>,
);

#[derive(Deserialize)]
pub(super) struct RawRecord {
    pub(super) id: RawId,
    #[serde(default)]
    pub(super) payload: Option<Value>,
    #[serde(default)]
    pub(super) vector: Option<RawVectors>,
    #[serde(default)]
    pub(super) shard_key: Option<Value>,
}

impl RawRecord {
    fn into_point(self) -> Point {
        Point {
            id: self.id.0,
            payload: self.payload,
            shard_key: self.shard_key,
            vectors: self.vector.map(|v| v.0).unwrap_or_default(),
        }
    }
}

/// A point id as Qdrant writes it: an unsigned integer or a UUID string.
pub(super) struct RawId(pub(super) PointId);

impl<'de> Deserialize<'de> for RawId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IdVisitor;
        impl Visitor<'_> for IdVisitor {
            type Value = RawId;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an unsigned integer or a UUID")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawId, E> {
                Ok(RawId(PointId::Num(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawId, E> {
                match PointId::from_text(v) {
                    Some(id @ PointId::Uuid(_)) => Ok(RawId(id)),
                    _ => Err(E::custom("a point id that is not a UUID")),
                }
            }
        }
        deserializer.deserialize_any(IdVisitor)
    }
}

/// A point's `vector`: a list (the unnamed vector of a collection that has only it) or an
/// object of named vectors (`""` for the unnamed one).
pub(super) struct RawVectors(pub(super) BTreeMap<String, VectorValue>);

impl<'de> Deserialize<'de> for RawVectors {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct VectorsVisitor;
        impl<'de> Visitor<'de> for VectorsVisitor {
            type Value = RawVectors;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a vector or an object of named vectors")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<RawVectors, A::Error> {
                let vector = list(seq)?;
                Ok(RawVectors(BTreeMap::from([(String::new(), vector)])))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawVectors, A::Error> {
                let mut vectors = BTreeMap::new();
                while let Some(name) = map.next_key::<String>()? {
                    if vectors.len() >= crate::logical::columns::MAX_VECTORS {
                        return Err(de::Error::custom("more named vectors than aimem takes"));
                    }
                    let vector = map.next_value_seed(OneVector)?;
                    vectors.insert(name, vector);
                }
                Ok(RawVectors(vectors))
            }
        }
        deserializer.deserialize_any(VectorsVisitor)
    }
}

/// One named vector: a list (dense or multi) or `{indices, values}` (sparse).
struct OneVector;

impl<'de> DeserializeSeed<'de> for OneVector {
    type Value = VectorValue;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<VectorValue, D::Error> {
        struct OneVisitor;
        impl<'de> Visitor<'de> for OneVisitor {
            type Value = VectorValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a dense vector, a multivector or a sparse vector")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<VectorValue, A::Error> {
                list(seq)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<VectorValue, A::Error> {
                let (mut indices, mut values) = (None, None);
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "indices" => indices = Some(map.next_value::<Vec<u32>>()?),
                        "values" => values = Some(map.next_value::<Vec<f32>>()?),
                        _ => {
                            map.next_value::<de::IgnoredAny>()?;
                        }
                    }
                }
                match (indices, values) {
                    (Some(indices), Some(values)) if indices.len() == values.len() => {
                        Ok(VectorValue::Sparse { indices, values })
                    }
                    _ => Err(de::Error::custom(
                        "a sparse vector without as many indices as values",
                    )),
                }
            }
        }
        deserializer.deserialize_any(OneVisitor)
    }
}

/// A list of numbers (a dense vector) or of lists of numbers (a multivector).
fn list<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<VectorValue, A::Error> {
    let mut dense = Vec::new();
    let mut multi = Vec::new();
    while let Some(element) = seq.next_element::<Element>()? {
        match element {
            Element::Number(v) if multi.is_empty() => dense.push(v),
            Element::Vector(v) if dense.is_empty() => multi.push(v),
            _ => return Err(de::Error::custom("a vector mixing numbers and lists")),
        }
    }
    Ok(match multi.is_empty() {
        true => VectorValue::Dense(dense),
        false => VectorValue::Multi(multi),
    })
}

/// An element of a vector's list: a number, or a list of numbers (one vector of a
/// multivector). Read by a visitor rather than `#[serde(untagged)]`, which would buffer every
/// number before trying each form: most of a backup's time is spent right here.
enum Element {
    Number(f32),
    Vector(Vec<f32>),
}

impl<'de> Deserialize<'de> for Element {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ElementVisitor;
        impl<'de> Visitor<'de> for ElementVisitor {
            type Value = Element;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number or a list of numbers")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Element, E> {
                Ok(Element::Number(v as f32))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Element, E> {
                Ok(Element::Number(v as f32))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Element, E> {
                Ok(Element::Number(v as f32))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Element, A::Error> {
                let mut seq = seq;
                let mut values = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
                while let Some(v) = seq.next_element::<f32>()? {
                    values.push(v);
                }
                Ok(Element::Vector(values))
            }
        }
        deserializer.deserialize_any(ElementVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qdrant::types::Envelope;

    /// A scroll answer as captured from a real server (`version`: the fixtures' folder).
    fn page(folder: &str, name: &str) -> Page {
        let path = format!(
            "{}/tests/fixtures/{folder}/points/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        let exchange: Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let body = serde_json::to_string(&exchange["response"]["body"]).unwrap();
        let envelope: Envelope<RawPage> = serde_json::from_str(&body).unwrap();
        envelope.result.unwrap().into_page()
    }

    #[test]
    fn real_scroll_answers_of_both_versions_become_points() {
        for folder in ["qdrant", "qdrant-1.16.3"] {
            let all = page(folder, "scroll-all-vectors.json");
            assert_eq!(all.points.len(), 3, "{folder}");
            let first = &all.points[0];
            assert!(matches!(first.id, PointId::Uuid(_)));
            assert!(
                matches!(&first.vectors[""], VectorValue::Dense(v) if v.len() == 768),
                "{folder}"
            );
            assert!(
                matches!(&first.vectors["bm25"], VectorValue::Sparse { indices, values } if indices.len() == values.len())
            );
            assert!(
                first
                    .payload
                    .as_ref()
                    .is_some_and(|p| p["group_id"].is_string())
            );
            assert!(matches!(all.next, Some(PointId::Uuid(_))));

            let shapes = page(folder, "scroll-shapes.json");
            let vectors = &shapes.points[0].vectors;
            assert_eq!(
                vectors["u8"],
                VectorValue::Dense(vec![1.0, 2.0, 255.0, 0.0])
            );
            assert_eq!(
                vectors["f16"],
                VectorValue::Dense(vec![0.5, 0.25, 1.5, 2.0])
            );
            assert_eq!(
                vectors["s"],
                VectorValue::Sparse {
                    indices: vec![1],
                    values: vec![1.0]
                }
            );
            assert_eq!(shapes.next, None);

            let ints = page(folder, "scroll-int-ids.json");
            assert_eq!(ints.points[0].id, PointId::Num(1));
            // 2^60 + 1 stays exact in the payload.
            assert_eq!(
                ints.points[0].payload.as_ref().unwrap()["n"].as_u64(),
                Some(1_152_921_504_606_846_977)
            );
        }
    }

    #[test]
    fn an_unnamed_only_collection_and_multivectors_parse() {
        let raw: RawRecord = serde_json::from_str(r#"{"id": 5, "vector": [1, 2.5]}"#).unwrap();
        assert_eq!(
            raw.into_point().vectors[""],
            VectorValue::Dense(vec![1.0, 2.5])
        );
        let raw: RawRecord =
            serde_json::from_str(r#"{"id": 5, "vector": {"colbert": [[1, 2], [3, 4]], "": []}}"#)
                .unwrap();
        let point = raw.into_point();
        assert_eq!(
            point.vectors["colbert"],
            VectorValue::Multi(vec![vec![1.0, 2.0], vec![3.0, 4.0]])
        );
        assert_eq!(point.vectors[""], VectorValue::Dense(vec![]));
        for bad in [
            r#"{"id": -1}"#,
            r#"{"id": "x"}"#,
            r#"{"id": 1, "vector": [1, [2]]}"#,
            r#"{"id": 1, "vector": {"s": {"indices": [1, 2], "values": [1]}}}"#,
        ] {
            assert!(serde_json::from_str::<RawRecord>(bad).is_err(), "{bad}");
        }
    }

    /// Every page of a collection scrolled through the client, written into another of the
    /// same definition (without waiting, then waiting), scrolls back the same: the double
    /// answers scroll and upsert as the real servers do (see its `points` module).
    #[test]
    fn points_scrolled_from_one_collection_and_upserted_into_another_come_back_equal() {
        let double = qdrant_double::Double::start(qdrant_double::Config::default());
        let info = qdrant_double::info_from_fixture("collections/info-discussions.json");
        double.seed("discussions", info.clone(), (1..=25).collect());
        double.seed("copy", info, Vec::new());
        let client = Client::new(&double.url(), None, crate::qdrant::Timeouts::default()).unwrap();
        let all = |name: &str| {
            let mut offset = None;
            let mut points = Vec::new();
            loop {
                let page = client.scroll(name, offset.as_ref(), 10, None).unwrap();
                points.extend(page.points);
                match page.next {
                    Some(next) => offset = Some(next),
                    None => return points,
                }
            }
        };
        let mut points = all("discussions");
        assert_eq!(points.len(), 25);
        assert!(matches!(&points[0].vectors[""], VectorValue::Dense(v) if v.len() == 768));
        assert!(matches!(
            &points[0].vectors["bm25"],
            VectorValue::Sparse { .. }
        ));
        let mut uuid = points[0].clone();
        uuid.id = PointId::Uuid("19c3756f-402f-4856-b279-517ecd223cf2".into());
        points.push(uuid);
        let (first, last) = points.split_at(20);
        client.upsert_points("copy", first, None, false).unwrap();
        client.upsert_points("copy", last, None, true).unwrap();
        assert_eq!(all("copy"), points);
        assert!(
            client.upsert_points("copy", &[], None, true).is_err(),
            "an empty upsert is refused"
        );
    }

    /// What an upsert sends is what a real server took (`upsert-nowait.json`), vector for
    /// vector.
    #[test]
    fn an_upsert_body_has_the_real_shape() {
        let points = page("qdrant", "scroll-int-ids.json").points;
        let mut body = crate::qdrant::upsert::UpsertBody::default();
        for point in &points[..2] {
            body.push_point(point).unwrap();
        }
        body.finish().unwrap();
        let body: Value = serde_json::from_slice(body.bytes()).unwrap();
        let sent = &body["points"][0];
        assert_eq!(sent["id"], 1);
        assert_eq!(
            sent["vector"]["bm25"],
            serde_json::json!({"indices": [3, 7], "values": [0.25, 0.5]})
        );
        assert_eq!(sent["vector"][""].as_array().map(Vec::len), Some(4));
        assert_eq!(sent["payload"]["n"], 1_152_921_504_606_846_977u64);
        assert!(body.get("shard_key").is_none());
    }
}
