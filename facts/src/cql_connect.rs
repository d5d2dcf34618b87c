//! How the CQL store talks to a cluster: the driver session's policies, in one place.
//!
//! - **Timeouts**: [`REQUEST_TIMEOUT`] per request (client side, above Cassandra's 2 s write / 5 s read
//!   server timeouts, so the server's answer — a write timeout, which the store treats as "maybe applied" —
//!   normally arrives first), [`CONNECT_TIMEOUT`] per connection.
//! - **Load balancing**: token-aware (prepared statements go to a replica), and datacenter-aware when the
//!   URL names the local datacenter (`dc=NAME`): requests stay in it, with no failover to remote
//!   datacenters (`LOCAL_QUORUM` would not be local there).
//! - **Client timestamps**: monotonic per process, so two writes of one process to a cell are ordered as
//!   they were sent even if the coordinator clocks differ (a publish's flip after its staging, a retried
//!   flip after the first attempt).
//! - **Speculative execution** for reads only (the read profile [`DriverSession`] gives to prepared
//!   `SELECT`s): after [`SPECULATE_AFTER`] without an answer, one more replica is asked. The driver never
//!   speculates a request that is not marked idempotent, and only lightweight transactions are not.

use std::sync::Arc;
use std::time::Duration;

use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session_builder::SessionBuilder;
use scylla::policies::load_balancing::DefaultPolicy;
use scylla::policies::speculative_execution::SimpleSpeculativeExecutionPolicy;
use scylla::policies::timestamp_generator::MonotonicTimestampGenerator;

use crate::cql_session::DriverSession;
use crate::error::FactsError;
use crate::url::CqlUrl;

/// Client-side timeout of one request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Timeout of opening one connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A read unanswered this long is also sent to another replica.
pub const SPECULATE_AFTER: Duration = Duration::from_millis(200);

fn profile(url: &CqlUrl, speculate: bool) -> ExecutionProfile {
    let mut lb = DefaultPolicy::builder().token_aware(true);
    if let Some(dc) = &url.local_dc {
        lb = lb.prefer_datacenter(dc.clone()).permit_dc_failover(false);
    }
    let speculation = speculate.then(|| {
        Arc::new(SimpleSpeculativeExecutionPolicy {
            max_retry_count: 1,
            retry_interval: SPECULATE_AFTER,
        }) as _
    });
    ExecutionProfile::builder()
        .request_timeout(Some(REQUEST_TIMEOUT))
        .load_balancing_policy(lb.build())
        .speculative_execution_policy(speculation)
        .build()
}

/// Open a driver session to the URL's nodes with the policies above.
pub async fn connect(url: &CqlUrl, builder: SessionBuilder) -> Result<DriverSession, FactsError> {
    let mut b = builder
        .known_nodes(&url.nodes)
        .connection_timeout(CONNECT_TIMEOUT)
        .timestamp_generator(Arc::new(MonotonicTimestampGenerator::new()))
        .default_execution_profile_handle(profile(url, false).into_handle());
    if let (Some(user), Some(pw)) = (&url.user, &url.password) {
        b = b.user(user, pw);
    }
    let session = b.build().await?;
    Ok(DriverSession::new(
        session,
        &url.keyspace,
        profile(url, true).into_handle(),
    ))
}
