//! What a restore shard by shard adds to the steps: the peers it goes to, the wait for every
//! replica to settle before the uploads, and the check of every replica after them
//! ([`super::super::replicas`]).

use std::time::Instant;

use super::{Context, StepError, check_schema};
use crate::engine::peers::Topology;
use crate::engine::restore::plan::Source;
use crate::engine::restore::replicas::{
    self, Expected, Node, Placement, ReplicaError, Settle, nodes_of,
};

/// The peers a restore shard by shard goes to: the cluster's, or on a single node the node
/// itself (its peer id read from the collection's shards).
pub(super) fn nodes(cx: &Context, target: &str) -> Result<Vec<Node>, StepError> {
    match cx.topology {
        Topology::Cluster { .. } => Ok(nodes_of(cx.topology)),
        Topology::Single => {
            let view = cx
                .client
                .collection_cluster_view(target)
                .map_err(|e| cluster_failure(target, format!("reading its shards failed: {e}")))?;
            Ok(vec![Node {
                peer_id: view.peer_id,
                client: cx.client.clone(),
            }])
        }
    }
}

pub(super) fn cluster_failure(collection: &str, detail: String) -> StepError {
    StepError::Cluster {
        collection: collection.to_string(),
        detail,
    }
}

/// A replica failure as the step error that rolls the restore back.
fn step_error(collection: &str) -> impl Fn(ReplicaError) -> StepError + '_ {
    move |e| match e {
        ReplicaError::Interrupted => StepError::Interrupted,
        ReplicaError::Cluster(detail) => cluster_failure(collection, detail),
        ReplicaError::Check(detail) => StepError::Check {
            collection: collection.to_string(),
            detail,
        },
    }
}

/// Every peer's view of the collection (a peer that does not know it is an error).
pub(super) fn read_placement(nodes: &[Node], target: &str) -> Result<Placement, StepError> {
    replicas::read_placement(nodes, target, false).map_err(step_error(target))
}

/// Waits, bounded by `--recovery-timeout`, until the peers agree, every replica is Active, no
/// transfer runs, and the collection has the `expected` shard ids and keys.
pub(super) fn wait_settled(
    cx: &Context,
    nodes: &[Node],
    target: &str,
    expected: &Expected,
) -> Result<Placement, StepError> {
    let spinner = cx.ui.spinner(&format!(
        "waiting for every replica of {target} to be Active"
    ));
    let deadline = Instant::now() + cx.settle_limit;
    let settle = Settle {
        shards: Some(&expected.shards),
        dead_is_enough: false,
    };
    let settled = replicas::wait_settled(nodes, target, deadline, cx.stop, settle);
    spinner.finish_and_clear();
    settled.map(|s| s.placement).map_err(step_error(target))
}

/// On a cluster, waits (bounded by `--recovery-timeout`) until every peer agrees and every
/// replica of a collection this run created is Active, whatever its shards: points written
/// into a replica that still initializes may be lost when it turns Active (see
/// [`super::super::replicas`]). A single node has nothing to wait for.
pub(in crate::engine::restore) fn wait_created_settled(
    cx: &Context,
    target: &str,
) -> Result<(), StepError> {
    if !cx.topology.is_cluster() {
        return Ok(());
    }
    let nodes = nodes_of(cx.topology);
    let spinner = cx.ui.spinner(&format!(
        "waiting for every replica of {target} to be Active"
    ));
    let deadline = Instant::now() + cx.settle_limit;
    let settle = Settle {
        shards: None,
        dead_is_enough: false,
    };
    let settled = replicas::wait_settled(&nodes, target, deadline, cx.stop, settle);
    spinner.finish_and_clear();
    settled.map(|_| ()).map_err(step_error(target))
}

/// The restored collection has the backup's schema ([`check_schema`]), and every replica of it
/// holds what the backup holds ([`replicas::settle_and_verify`]), checked again after a quiet
/// moment.
pub(super) fn check_replicas(
    cx: &Context,
    source: &Source,
    nodes: &[Node],
    expected: &Expected,
    created: bool,
) -> Result<(), StepError> {
    let target = source.target.as_str();
    check_schema(cx, source, created)?;
    let spinner = cx
        .ui
        .spinner(&format!("checking every replica of {target}"));
    let checked =
        replicas::settle_and_verify(nodes, cx.client, target, expected, cx.settle_limit, cx.stop);
    spinner.finish_and_clear();
    checked.map_err(step_error(target))
}
