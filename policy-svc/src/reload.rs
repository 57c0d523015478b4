//! Keeping this replica's compiled configuration current: poll the version number, and when
//! another replica has committed a change, load the whole configuration in one snapshot,
//! compile it, and swap it in. The poll interval bounds how late a change takes effect.

use std::sync::Arc;
use std::time::Duration;

use service_kit::shutdown::Shutdown;

use crate::compiled::{Compiled, InForce};
use crate::error::Error;
use crate::store::Store;

/// Loads and compiles the stored configuration.
pub async fn load(store: &Store) -> Result<Compiled, Error> {
    let (version, config) = store.load().await?;
    Compiled::build(version, Arc::new(config)).map_err(|e| Error::Corrupt(e.to_string()))
}

/// Polls every `interval` until `shutdown`.
pub async fn run(store: Store, in_force: InForce, interval: Duration, on_change: impl Fn(), shutdown: Shutdown) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.triggered() => return,
            _ = ticker.tick() => {}
        }
        let current = in_force.get().version;
        match store.version().await {
            Ok(stored) if stored > current => match load(&store).await {
                Ok(compiled) => {
                    tracing::info!(version = compiled.version, "configuration reloaded");
                    in_force.replace(compiled);
                    on_change();
                }
                Err(e) => tracing::error!(error = %e, "configuration not reloaded; keeping the one in force"),
            },
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "configuration version not read"),
        }
    }
}
