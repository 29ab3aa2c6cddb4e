//! Aliases (docs/qdrant.md, "Aliases"): the names that point at a collection, which a
//! snapshot does not carry and a logical backup records and restores.

use serde::Deserialize;
use serde_json::json;
use ureq::http::Method;

use super::{Client, QdrantError, collection_path};

/// The most aliases one answer may list.
pub const MAX_ALIASES: usize = 10_000;

#[derive(Deserialize)]
struct AliasList {
    #[serde(deserialize_with = "crate::json::at_most::<_, _, MAX_ALIASES>")]
    aliases: Vec<Alias>,
}

#[derive(Deserialize)]
struct Alias {
    alias_name: String,
    /// In `GET /aliases`' answer: the collection it points at.
    #[serde(default)]
    collection_name: String,
}

impl Client {
    /// `GET /collections/{name}/aliases`: the aliases pointing at the collection, sorted.
    pub fn aliases_of(&self, name: &str) -> Result<Vec<String>, QdrantError> {
        let path = collection_path(name, "/aliases");
        let list: Option<AliasList> = self.result(Method::GET, &path, None)?;
        let mut names: Vec<String> = list
            .map(|l| l.aliases.into_iter().map(|a| a.alias_name).collect())
            .unwrap_or_default();
        names.sort();
        Ok(names)
    }

    /// `GET /aliases`: every alias of the server with the collection it points at.
    pub fn all_aliases(&self) -> Result<Vec<(String, String)>, QdrantError> {
        let list: Option<AliasList> = self.result(Method::GET, "/aliases", None)?;
        Ok(list
            .map(|l| {
                l.aliases
                    .into_iter()
                    .map(|a| (a.alias_name, a.collection_name))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// `POST /collections/aliases`: deletes `alias` (the collection it points at stays).
    pub fn delete_alias(&self, alias: &str) -> Result<(), QdrantError> {
        let body = json!({ "actions": [{ "delete_alias": { "alias_name": alias } }] });
        self.call(Method::POST, "/collections/aliases", Some(&body))
    }

    /// `POST /collections/aliases`: points `alias` at collection `name`.
    pub fn create_alias(&self, name: &str, alias: &str) -> Result<(), QdrantError> {
        let body = json!({
            "actions": [{ "create_alias": { "collection_name": name, "alias_name": alias } }]
        });
        self.call(Method::POST, "/collections/aliases", Some(&body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_aliases_of_a_collection_read_as_both_versions_answer() {
        for folder in ["qdrant", "qdrant-1.16.3"] {
            let path = format!(
                "{}/tests/fixtures/{folder}/aliases/of-collection.json",
                env!("CARGO_MANIFEST_DIR")
            );
            let exchange: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
            let body = serde_json::to_string(&exchange["response"]["body"]).unwrap();
            let envelope: super::super::types::Envelope<AliasList> =
                serde_json::from_str(&body).unwrap();
            let names: Vec<String> = envelope
                .result
                .unwrap()
                .aliases
                .into_iter()
                .map(|a| a.alias_name)
                .collect();
            assert_eq!(names, ["memories"], "{folder}");
        }
    }
}
