//! One module per subcommand, plus shared helpers.

mod backup;
mod cluster;
mod cluster_audit;
mod cluster_journal;
mod cluster_restore;
mod completion;
mod concurrency;
mod diff_schema;
mod generated;
mod jobs;
mod json;
mod legacy;
mod list;
mod manual;
mod names;
mod output_safety;
mod prune;
mod reading;
mod restore;
mod restore_jobs;
mod resume;
mod servers;
mod support;
mod verbose;
mod verify;
mod version;
