//! Which running server this is, whatever URL reached it: `GET /telemetry` names the server
//! process with an id Qdrant draws afresh each time it starts (answered with telemetry
//! reporting turned off too, by 1.16.3 and 1.18.3 alike).

use serde::Deserialize;
use ureq::http::Method;

use super::{Client, QdrantError};

/// The longest process id taken as one (Qdrant's is a 36-character UUID).
const MAX_ID: usize = 64;

impl Client {
    /// The server process's id from `GET /telemetry` (`result.id`).
    pub fn process_id(&self) -> Result<String, QdrantError> {
        let path = "/telemetry?details_level=0";
        let telemetry: Option<Telemetry> = self.result(Method::GET, path, None)?;
        telemetry
            .and_then(|t| t.id)
            .filter(|id| is_process_id(id))
            .ok_or_else(|| self.invalid(path, "no usable `id`"))
    }
}

/// The one field of `GET /telemetry` aimem reads; the rest is skipped unread.
#[derive(Deserialize)]
struct Telemetry {
    #[serde(default)]
    id: Option<String>,
}

/// A UUID-shaped id: hex digits and dashes, not too long.
fn is_process_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_uuid_shaped_ids_are_taken() {
        assert!(is_process_id("f17ecc11-5906-4ff4-8a1c-b3492329da02"));
        for bad in ["", "../x", "a b", "x".repeat(65).as_str(), "é"] {
            assert!(!is_process_id(bad), "{bad:?}");
        }
    }
}
