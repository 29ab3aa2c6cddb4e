//! A collection's settings changed after its creation: `PATCH /collections/{c}`
//! (docs/qdrant.md, "Changing a collection's settings").

use serde_json::Value;
use ureq::http::Method;

use super::{Client, QdrantError, collection_path};

impl Client {
    /// `PATCH /collections/{name}` with an UpdateCollection body (`{"optimizers_config":
    /// {…}}`, …). Qdrant answers `true` once the new settings are saved; what they change
    /// (optimizers rebuilt, indexes built) may come after (docs/qdrant.md, "Changing a
    /// collection's settings").
    pub fn update_collection(&self, name: &str, body: &Value) -> Result<(), QdrantError> {
        self.call(Method::PATCH, &collection_path(name, ""), Some(body))
    }
}
