//! Recording every decision as a `policy.evaluate_sign_on` event without putting a database
//! write on each decision's path: decisions queue up and one task writes them in batches. The
//! queue is bounded, so a database that falls behind slows decisions down rather than losing
//! records.

use std::time::Duration;

use service_kit::db::HeldConnection;
use service_kit::shutdown::Shutdown;
use tokio::sync::mpsc;

use crate::store::{DecisionRecord, Store};

/// The event type of a recorded decision.
pub const EVENT_TYPE: &str = "policy.evaluate_sign_on";

/// Decisions waiting to be written.
const QUEUE: usize = 16_384;
/// Decisions written per transaction at most.
const BATCH: usize = 2_000;

/// Hands decisions to the writer.
#[derive(Debug, Clone)]
pub struct DecisionLog {
    sender: mpsc::Sender<DecisionRecord>,
}

/// The log is gone (the service is stopping).
#[derive(Debug, thiserror::Error)]
#[error("the decision log is closed")]
pub struct LogClosed;

impl DecisionLog {
    /// Starts the writer. Once `shutdown` fires it takes no more decisions, writes what is
    /// queued, and stops (connections still open then must not keep it waiting).
    pub fn start(store: Store, shutdown: Shutdown) -> (Self, tokio::task::JoinHandle<()>) {
        let (sender, receiver) = mpsc::channel(QUEUE);
        let writer = tokio::spawn(write_batches(store, receiver, shutdown));
        (Self { sender }, writer)
    }

    /// Queues a decision, waiting while the queue is full.
    pub async fn record(&self, record: DecisionRecord) -> Result<(), LogClosed> {
        self.sender.send(record).await.map_err(|_| LogClosed)
    }
}

async fn write_batches(store: Store, mut receiver: mpsc::Receiver<DecisionRecord>, shutdown: Shutdown) {
    let mut held = HeldConnection::default();
    let mut batch = Vec::with_capacity(BATCH);
    let stopping = shutdown.triggered();
    tokio::pin!(stopping);
    let mut closed = false;
    loop {
        let received = if closed {
            receiver.recv_many(&mut batch, BATCH).await
        } else {
            tokio::select! {
                received = receiver.recv_many(&mut batch, BATCH) => received,
                () = &mut stopping => {
                    // Decisions already answered are still written; new ones are refused.
                    receiver.close();
                    closed = true;
                    continue;
                }
            }
        };
        if received == 0 {
            return;
        }
        // Until written, keep retrying: a decision already answered must not go unrecorded.
        let mut delay = Duration::from_millis(50);
        loop {
            let result = match held.get(store.database()).await {
                Ok(conn) => store.insert_decisions(conn, &batch).await,
                Err(e) => Err(e.into()),
            };
            let ok = result.is_ok();
            held.after_batch(store.database(), ok, !receiver.is_empty());
            match result {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(error = %e, pending = batch.len(), "decision events not written yet; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
        batch.clear();
    }
}
