//! The FastPass hot path's read, batched: concurrent `VerifyDeviceAssertion` calls queue the key
//! ids they need, and a few readers each take whatever is queued and look it all up in one query
//! on a connection they keep while lookups keep coming. Under load this turns dozens of round
//! trips (each with the pool's ping on return) into one.
//!
//! Nothing is cached: every lookup reads the key and the device's status as they are when its
//! batch runs, which is after the lookup was asked for. A key whose stored rows do not decode
//! fails alone; a batch fails as a whole only when the query does.

use std::sync::Arc;

use service_kit::db::HeldConnection;
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::device::Device;
use crate::error::{Error, Result};
use crate::store::{KeyOwner, Store};

/// Key ids looked up in one query at most.
const MAX_BATCH: usize = 64;
/// Batches in flight at once: one reader can gather the next batch while another waits on the
/// database.
const READERS: usize = 2;

type Found = Option<(KeyOwner, Device)>;

struct Lookup {
    kid: String,
    answer: oneshot::Sender<Result<Found>>,
}

/// The handle calls use; cheap to clone.
#[derive(Debug, Clone)]
pub struct KeyLookups {
    lookups: mpsc::Sender<Lookup>,
}

impl KeyLookups {
    /// Starts the readers on `store`.
    pub fn start(store: Store) -> Self {
        let (lookups, receiver) = mpsc::channel(4 * MAX_BATCH);
        let receiver = Arc::new(Mutex::new(receiver));
        for _ in 0..READERS {
            tokio::spawn(read_batches(store.clone(), receiver.clone()));
        }
        Self { lookups }
    }

    /// The key with id `kid`, its device and the device's live keys, or `None`.
    pub async fn key_and_device(&self, kid: &str) -> Result<Found> {
        let (answer, receive) = oneshot::channel();
        let closed = || Error::Unavailable("the key lookup has stopped".into());
        self.lookups
            .send(Lookup {
                kid: kid.to_owned(),
                answer,
            })
            .await
            .map_err(|_| closed())?;
        receive.await.map_err(|_| closed())?
    }
}

async fn read_batches(store: Store, receiver: Arc<Mutex<mpsc::Receiver<Lookup>>>) {
    let db = store.database();
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut held = HeldConnection::default();
    loop {
        // Take what is queued (waiting for the first lookup), then let the other reader gather
        // while this one queries.
        let more_waiting = {
            let mut receiver = receiver.lock().await;
            if receiver.recv_many(&mut batch, MAX_BATCH).await == 0 {
                return;
            }
            !receiver.is_empty()
        };
        let kids: Vec<&str> = batch.iter().map(|l| l.kid.as_str()).collect();
        let outcome = match held.get(db).await {
            Ok(conn) => store.keys_and_devices(conn, &kids).await,
            Err(e) => Err(e.into()),
        };
        held.after_batch(db, outcome.is_ok(), more_waiting);
        match outcome {
            Ok(found) => {
                for lookup in batch.drain(..) {
                    let answer = match found.get(&lookup.kid) {
                        None => Ok(None),
                        Some(Ok(owner_and_device)) => Ok(Some(owner_and_device.clone())),
                        Some(Err(why)) => Err(Error::Corrupt(why.clone())),
                    };
                    let _ = lookup.answer.send(answer);
                }
            }
            Err(e) => {
                let message = e.to_string();
                for lookup in batch.drain(..) {
                    let _ = lookup.answer.send(Err(Error::Unavailable(format!(
                        "looking up device keys failed: {message}"
                    ))));
                }
            }
        }
    }
}
