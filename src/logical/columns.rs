//! The columns of a logical backup file (docs/logical-format.md, format 1):
//!
//! ```text
//! message aimem_points {
//!   required binary id (STRING);          decimal for an integer id, the UUID otherwise
//!   optional binary payload (JSON);       the payload object
//!   optional binary shard_key (JSON);     custom sharding: the point's shard key
//!   then one column per vector, in the order of the collection's definition:
//!   optional group <dense> (LIST) { repeated group list { required float element; } }
//!   optional group <sparse> { required group indices (LIST) { repeated group list {
//!       required int32 element (INTEGER(32,false)); } } required group values (LIST) {
//!       repeated group list { required float element; } } }
//!   optional group <multi> (LIST) { repeated group list { required group element (LIST) {
//!       repeated group list { required float element; } } } }
//! }
//! ```
//!
//! A vector's column is `vector` for the unnamed one, `vector_<name>` for a name of letters,
//! digits, `_` and `-` (at most 64), `vector_<position>` for any other name. The footer's
//! `aimem.logical.vectors` maps each column to its vector's name and kind: a reader never
//! takes a vector's name from a column's.

use std::sync::Arc;

use parquet::schema::types::{Type, TypePtr};
use serde::{Deserialize, Serialize};

use super::LogicalError;

/// What kind of vector a column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VectorKind {
    Dense,
    Sparse,
    Multi,
}

/// One vector's column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VectorColumn {
    /// The column's name in the file.
    pub column: String,
    /// The vector's name in the collection (`""`: the unnamed vector).
    pub name: String,
    pub kind: VectorKind,
}

/// The vector columns of one file, in their order in the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Columns(pub Vec<VectorColumn>);

/// The most vectors a collection's file may have columns for.
pub const MAX_VECTORS: usize = 256;

impl Columns {
    /// The columns of vectors `(name, kind)`, in that order; names must differ.
    pub fn new(vectors: &[(String, VectorKind)]) -> Result<Columns, LogicalError> {
        if vectors.len() > MAX_VECTORS {
            return Err(LogicalError::Format(format!(
                "{} vectors are more than a logical backup takes ({MAX_VECTORS})",
                vectors.len()
            )));
        }
        let mut columns: Vec<VectorColumn> = Vec::with_capacity(vectors.len());
        for (position, (name, kind)) in vectors.iter().enumerate() {
            if columns.iter().any(|c| c.name == *name) {
                return Err(LogicalError::Format(format!(
                    "vector {} is named twice",
                    crate::names::shown(name)
                )));
            }
            let column = match name.as_str() {
                "" => "vector".to_string(),
                plain if is_plain(plain) => format!("vector_{plain}"),
                _ => format!("vector_{position}"),
            };
            // `vector_3` may be both a plain name and another vector's position: the later
            // one takes its position's name with a `_` more, which no plain name has twice.
            let column = match columns.iter().any(|c| c.column == column) {
                true => format!("vector__{position}"),
                false => column,
            };
            columns.push(VectorColumn {
                column,
                name: name.clone(),
                kind: *kind,
            });
        }
        Ok(Columns(columns))
    }

    /// The columns of a collection whose `config.params` (as `GET /collections/{c}` answers
    /// it) is `params`: its dense and multi vectors (the unnamed one, or the named ones in
    /// name order), then its sparse vectors in name order.
    pub fn of_params(params: &serde_json::Value) -> Result<Columns, LogicalError> {
        use serde_json::Value;
        let kind = |vector: &Value| match vector.get("multivector_config") {
            Some(config) if !config.is_null() => VectorKind::Multi,
            _ => VectorKind::Dense,
        };
        let mut vectors = Vec::new();
        match params.get("vectors") {
            // One unnamed vector: `{size, distance, …}`.
            Some(unnamed) if unnamed.get("size").is_some_and(Value::is_u64) => {
                vectors.push((String::new(), kind(unnamed)));
            }
            Some(Value::Object(named)) => {
                for (name, vector) in named {
                    vectors.push((name.clone(), kind(vector)));
                }
            }
            None | Some(Value::Null) => {}
            Some(_) => {
                return Err(LogicalError::Format(
                    "the collection's `vectors` is neither one vector nor named ones".into(),
                ));
            }
        }
        match params.get("sparse_vectors") {
            Some(Value::Object(sparse)) => {
                vectors.extend(sparse.keys().map(|n| (n.clone(), VectorKind::Sparse)))
            }
            None | Some(Value::Null) => {}
            Some(_) => {
                return Err(LogicalError::Format(
                    "the collection's `sparse_vectors` is not a map of names".into(),
                ));
            }
        }
        Columns::new(&vectors)
    }

    /// The Parquet schema of a file with these vector columns.
    pub fn schema(&self) -> Result<TypePtr, LogicalError> {
        use parquet::basic::{LogicalType, Repetition, Type as Physical};
        let leaf = |name: &str, physical: Physical| {
            Type::primitive_type_builder(name, physical)
                .with_repetition(Repetition::REQUIRED)
                .build()
        };
        // `<name> (LIST) { repeated group list { <element> } }` of `repetition`.
        let list =
            |name: &str, repetition: Repetition, element: Type| -> Result<Type, LogicalError> {
                let repeated = Type::group_type_builder("list")
                    .with_repetition(Repetition::REPEATED)
                    .with_fields(vec![Arc::new(element)])
                    .build()?;
                Ok(Type::group_type_builder(name)
                    .with_repetition(repetition)
                    .with_logical_type(Some(LogicalType::List))
                    .with_fields(vec![Arc::new(repeated)])
                    .build()?)
            };
        let text = |name: &str, repetition: Repetition, logical: LogicalType| {
            Type::primitive_type_builder(name, Physical::BYTE_ARRAY)
                .with_repetition(repetition)
                .with_logical_type(Some(logical))
                .build()
        };
        let mut fields = vec![
            Arc::new(text("id", Repetition::REQUIRED, LogicalType::String)?),
            Arc::new(text("payload", Repetition::OPTIONAL, LogicalType::Json)?),
            Arc::new(text("shard_key", Repetition::OPTIONAL, LogicalType::Json)?),
        ];
        for vector in &self.0 {
            let column = vector.column.as_str();
            let field = match vector.kind {
                VectorKind::Dense => list(
                    column,
                    Repetition::OPTIONAL,
                    leaf("element", Physical::FLOAT)?,
                )?,
                VectorKind::Sparse => Type::group_type_builder(column)
                    .with_repetition(Repetition::OPTIONAL)
                    .with_fields(vec![
                        Arc::new(list(
                            "indices",
                            Repetition::REQUIRED,
                            // Unsigned, as Qdrant's indices are: readers see them as uint32.
                            Type::primitive_type_builder("element", Physical::INT32)
                                .with_repetition(Repetition::REQUIRED)
                                .with_logical_type(Some(LogicalType::Integer(
                                    parquet::basic::IntType {
                                        bit_width: 32,
                                        is_signed: false,
                                    },
                                )))
                                .build()?,
                        )?),
                        Arc::new(list(
                            "values",
                            Repetition::REQUIRED,
                            leaf("element", Physical::FLOAT)?,
                        )?),
                    ])
                    .build()?,
                VectorKind::Multi => list(
                    column,
                    Repetition::OPTIONAL,
                    list(
                        "element",
                        Repetition::REQUIRED,
                        leaf("element", Physical::FLOAT)?,
                    )?,
                )?,
            };
            fields.push(Arc::new(field));
        }
        Ok(Arc::new(
            Type::group_type_builder("aimem_points")
                .with_fields(fields)
                .build()?,
        ))
    }
}

/// Letters, digits, `_` and `-`, 1 to 64 of them: a name a column can carry as it is.
fn is_plain(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_named_after_plain_names_and_positions_otherwise() {
        let columns = Columns::new(&[
            ("".into(), VectorKind::Dense),
            ("bm25".into(), VectorKind::Sparse),
            ("a.b/c".into(), VectorKind::Multi),
            ("2".into(), VectorKind::Dense),
        ])
        .unwrap();
        let names: Vec<&str> = columns.0.iter().map(|c| c.column.as_str()).collect();
        assert_eq!(names, ["vector", "vector_bm25", "vector_2", "vector__3"]);
        assert!(
            Columns::new(&[
                ("x".into(), VectorKind::Dense),
                ("x".into(), VectorKind::Sparse)
            ])
            .is_err()
        );
        columns.schema().unwrap();
    }

    #[test]
    fn a_collections_params_give_its_vector_columns() {
        let named = serde_json::json!({
            "vectors": {"text": {"size": 4, "distance": "Dot"},
                        "colbert": {"size": 2, "distance": "Dot", "multivector_config": {"comparator": "max_sim"}}},
            "sparse_vectors": {"bm25": {"modifier": "idf"}}
        });
        let kinds: Vec<(String, VectorKind)> = Columns::of_params(&named)
            .unwrap()
            .0
            .into_iter()
            .map(|c| (c.name, c.kind))
            .collect();
        assert_eq!(
            kinds,
            [
                ("colbert".to_string(), VectorKind::Multi),
                ("text".to_string(), VectorKind::Dense),
                ("bm25".to_string(), VectorKind::Sparse)
            ]
        );
        let unnamed = serde_json::json!({"vectors": {"size": 768, "distance": "Cosine"}});
        assert_eq!(Columns::of_params(&unnamed).unwrap().0[0].column, "vector");
        let sparse_only = serde_json::json!({"vectors": {}, "sparse_vectors": {"s": {}}});
        assert_eq!(Columns::of_params(&sparse_only).unwrap().0.len(), 1);
    }
}
