//! The local time, read safely.

use std::sync::OnceLock;

use time::{OffsetDateTime, UtcOffset};

static OFFSET: OnceLock<UtcOffset> = OnceLock::new();

/// Reads the offset once, while the process is still single-threaded.
pub fn init() {
    OFFSET.get_or_init(|| UtcOffset::current_local_offset().unwrap_or(UtcOffset::UTC));
}

/// Now, in local time (UTC if the offset could not be read).
pub fn now() -> OffsetDateTime {
    let offset = *OFFSET.get_or_init(|| UtcOffset::UTC);
    OffsetDateTime::now_utc().to_offset(offset)
}
