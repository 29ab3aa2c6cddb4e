//! Collection aliases: `POST /collections/aliases` (create, delete, rename; all or nothing),
//! `GET /aliases`, `GET /collections/{c}/aliases`, with the shapes of `aliases/*.json`. The
//! same map serves a single node ([`crate::state::State::aliases`]) and a cluster.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::routes::{Failure, not_found_collection};

/// Applies the `actions` of a change-aliases body to `aliases`, all of them or (an error)
/// none. `exists` tells a collection name.
pub fn change(
    aliases: &mut BTreeMap<String, String>,
    body: &Value,
    exists: impl Fn(&str) -> bool,
) -> Result<(), Failure> {
    let format = |what: &str| (400, format!("Format error in JSON body: {what}"));
    let actions = body["actions"]
        .as_array()
        .ok_or_else(|| format("missing field `actions`"))?;
    let mut next = aliases.clone();
    for action in actions {
        let field = |op: &str, name: &str| -> Option<String> {
            action.get(op)?.get(name)?.as_str().map(str::to_string)
        };
        let untagged = || format("data did not match any variant of untagged enum AliasOperations");
        if action.get("create_alias").is_some() {
            let collection = field("create_alias", "collection_name").ok_or_else(untagged)?;
            let alias = field("create_alias", "alias_name").ok_or_else(untagged)?;
            if !exists(&collection) {
                return Err((404, not_found_collection(&collection)));
            }
            if exists(&alias) {
                return Err((
                    409,
                    format!("Wrong input: Collection `{alias}` already exists!"),
                ));
            }
            // An existing alias of that name is moved, as the real server's insert does.
            next.insert(alias, collection);
        } else if action.get("delete_alias").is_some() {
            // Deleting an alias that does not exist changes nothing.
            let alias = field("delete_alias", "alias_name").ok_or_else(untagged)?;
            next.remove(&alias);
        } else if action.get("rename_alias").is_some() {
            let old = field("rename_alias", "old_alias_name").ok_or_else(untagged)?;
            let new = field("rename_alias", "new_alias_name").ok_or_else(untagged)?;
            let collection = next
                .remove(&old)
                .ok_or_else(|| (404, format!("Not found: Alias {old} does not exists!")))?;
            next.insert(new, collection);
        } else {
            return Err(untagged());
        }
    }
    *aliases = next;
    Ok(())
}

/// `{"aliases": [{"alias_name", "collection_name"}...]}`, of every collection or one.
pub fn listed(aliases: &BTreeMap<String, String>, collection: Option<&str>) -> Value {
    let list: Vec<Value> = aliases
        .iter()
        .filter(|(_, c)| collection.is_none_or(|want| want == c.as_str()))
        .map(|(alias, c)| json!({"alias_name": alias, "collection_name": c}))
        .collect();
    json!({ "aliases": list })
}

/// A collection deleted takes its aliases with it.
pub fn drop_collection(aliases: &mut BTreeMap<String, String>, collection: &str) {
    aliases.retain(|_, c| c != collection);
}

/// The collection `name` stands for: itself, or the collection of the alias `name`.
pub fn resolve(aliases: &BTreeMap<String, String>, name: &str, exists: bool) -> String {
    match (exists, aliases.get(name)) {
        (false, Some(target)) => target.clone(),
        _ => name.to_string(),
    }
}
