//! The machinery of a restore: the backup's files opened and checked ([`sources`]), a plan
//! per collection (create, overwrite or refuse, [`plan`]), the steps that act on it ([`act`],
//! [`jobs`]), each recorded first in the [`rollback::Undo`] log and the server-side
//! [`journal`], the checks after them ([`check`]), and the rollback. `aimem restore`
//! (`cmd::restore`) orders these steps and reports; nothing here parses arguments.

pub(crate) mod act;
mod check;
pub(crate) mod config;
mod indexes;
pub(crate) mod jobs;
pub(crate) mod journal;
pub(crate) mod lock;
pub(crate) mod logical;
pub(crate) mod merge;
pub(crate) mod plan;
pub(crate) mod recovery;
mod replica_uploads;
mod replicas;
pub(crate) mod report;
pub(crate) mod rollback;
pub(crate) mod shards;
pub(crate) mod sources;

pub(crate) use journal::{clear_dead_restores, dead_restores, describe as describe_dead_restore};

pub use crate::workspace::PRERESTORE_PREFIX;
