//! When each device first failed each assurance policy, so grace periods counted in days start
//! at the first failure on every replica. Read from the database once per device per replica,
//! then kept in memory; a first failure is written before the decision that relies on it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::error::Error;
use crate::store::Store;

/// Devices this replica has asked about, with their first failures by policy id.
const MAX_DEVICES: usize = 100_000;

/// First failure times of one device, by policy id.
type DeviceFailures = Arc<HashMap<String, i64>>;

/// First failures, cached.
#[derive(Debug, Clone)]
pub struct FailureClock {
    store: Store,
    devices: Arc<Mutex<HashMap<String, DeviceFailures>>>,
}

impl FailureClock {
    /// Reads and writes `store`.
    pub fn new(store: Store) -> Self {
        Self {
            store,
            devices: Arc::default(),
        }
    }

    /// When `device_id` first failed each policy it has failed.
    pub async fn failures(&self, device_id: &str) -> Result<DeviceFailures, Error> {
        if let Some(known) = self.lock().get(device_id) {
            return Ok(known.clone());
        }
        let loaded = Arc::new(self.store.assurance_failures(device_id).await?);
        let mut devices = self.lock();
        if devices.len() >= MAX_DEVICES {
            // Forgetting only costs a read; the database keeps the truth.
            devices.clear();
        }
        devices.insert(device_id.to_owned(), loaded.clone());
        Ok(loaded)
    }

    /// Records first failures of `device_id` at `now`.
    pub async fn record(&self, device_id: &str, policy_ids: &[String], now: i64) -> Result<(), Error> {
        for policy_id in policy_ids {
            let since = self.store.record_assurance_failure(device_id, policy_id, now).await?;
            let mut devices = self.lock();
            let mut map = devices.get(device_id).map(|m| (**m).clone()).unwrap_or_default();
            map.insert(policy_id.clone(), since);
            devices.insert(device_id.to_owned(), Arc::new(map));
        }
        Ok(())
    }

    /// Forgets cached failures of changed policies (their grace starts afresh).
    pub fn forget(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, DeviceFailures>> {
        // The map holds plain data; a panic elsewhere cannot leave it half-updated.
        match self.devices.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}
