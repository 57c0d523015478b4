//! Background upkeep: ends lockouts that ran out (with their events) and removes expired codes,
//! long-ended sessions and old feed rows, in small batches off the hot path.

use std::time::Duration;

use service_kit::shutdown::Shutdown;

use crate::model::now_micros;
use crate::store::Store;

/// Sweeps every `interval` until `shutdown`, keeping ended records for `retention`.
pub async fn run(store: Store, interval: Duration, retention: Duration, shutdown: Shutdown) {
    let keep_us = i64::try_from(retention.as_micros()).unwrap_or(i64::MAX / 2);
    let stopped = shutdown.triggered();
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            () = &mut stopped => return,
            () = tokio::time::sleep(interval) => {}
        }
        let now = now_micros();
        match store.end_expired_lockouts(now).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(unlocked = n, "lockouts ended"),
            Err(e) => tracing::warn!(error = %e, "sweeper: cannot end lockouts"),
        }
        match store.sweep(now, keep_us).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(removed = n, "swept expired records"),
            Err(e) => tracing::warn!(error = %e, "sweeper: cannot remove expired records"),
        }
    }
}
