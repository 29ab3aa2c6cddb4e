//! The machinery of backups and restores, shared by the subcommands: taking a consistent
//! snapshot of each site (a collection, or a shard on a peer) and writing it into a backup,
//! restoring one (plan, act, check, roll back), the journals that let the next run clean up
//! after a killed one, the cluster's peers and layouts, and worker threads that a signal can
//! stop. Nothing here parses arguments or prints a report of its own.

pub mod backup;
pub mod layout;
pub mod peers;
pub mod restore;
pub mod worker;
