//! The revocation feed behind `WatchRevocations`: every revocation in commit order, resumable
//! from a cursor with no gap and no duplicate, across restarts and replicas.
//!
//! One tail task per process reads new feed rows from the database (at once when this process
//! revoked something, otherwise every poll interval, which covers other replicas) and broadcasts
//! them. Each watcher first catches up from the database, then follows the broadcast; a watcher
//! too slow for the broadcast falls back to the database, so memory stays bounded.

use std::sync::Arc;
use std::time::Duration;

use portcullis_proto::session::v1 as pb;
use service_kit::shutdown::Shutdown;
use tokio::sync::{Notify, broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use crate::error::{Error, Result};
use crate::model::timestamp;
use crate::session_cache::SessionCache;
use crate::store::{RevocationRecord, Store};

/// Rows read from the database per query.
const BATCH: usize = 500;
/// Revocations the broadcast holds for watchers that fall behind.
const BROADCAST_CAPACITY: usize = 4096;
/// Revocations buffered per watcher before its gRPC stream must drain them.
const WATCHER_BUFFER: usize = 64;

/// The feed of one process.
#[derive(Debug)]
pub struct RevocationFeed {
    store: Store,
    broadcast: broadcast::Sender<Arc<RevocationRecord>>,
    wake: Notify,
    poll_interval: Duration,
    sessions: Arc<SessionCache>,
}

/// A feed cursor: the position of the last revocation a watcher received.
pub fn encode_cursor(seq: i64) -> String {
    seq.to_string()
}

fn decode_cursor(cursor: &str) -> Result<i64> {
    cursor
        .parse::<i64>()
        .ok()
        .filter(|seq| *seq >= 0)
        .ok_or_else(|| Error::field("cursor", "is not a cursor this feed issued"))
}

fn to_proto(record: &RevocationRecord) -> pb::Revocation {
    let RevocationRecord {
        seq,
        session_id,
        user_id,
        device_id,
        reason,
        revoked_at,
    } = record;
    pb::Revocation {
        cursor: encode_cursor(*seq),
        session_id: session_id.clone(),
        user_id: user_id.clone(),
        device_id: device_id.clone(),
        reason: (*reason).into(),
        revoke_time: Some(timestamp(*revoked_at)),
    }
}

impl RevocationFeed {
    /// A feed over `store`, polling for other replicas' revocations every `poll_interval`, and
    /// evicting revoked sessions from `sessions`.
    pub fn new(store: Store, poll_interval: Duration, sessions: Arc<SessionCache>) -> Arc<Self> {
        let (broadcast, _) = broadcast::channel(BROADCAST_CAPACITY);
        Arc::new(Self {
            store,
            broadcast,
            wake: Notify::new(),
            poll_interval,
            sessions,
        })
    }

    /// Announces revocations this process just committed: their sessions leave the cache at
    /// once, and the tail is woken to broadcast them.
    pub fn announce(&self, revoked: &[RevocationRecord]) {
        for record in revoked {
            self.sessions.evict(&record.session_id);
        }
        if !revoked.is_empty() {
            self.wake.notify_one();
        }
    }

    /// The feed's newest position, where a starting process's tail begins.
    pub async fn position(&self) -> Result<i64> {
        self.store.latest_revocation_seq().await
    }

    /// Reads feed rows after `last` and broadcasts them, until `shutdown`. `last` must be read
    /// (with [`RevocationFeed::position`]) before the process validates any session: a
    /// revocation committed after that is then seen here, and evicts whatever was cached.
    pub async fn run_tail(self: Arc<Self>, mut last: i64, shutdown: Shutdown) {
        let stopped = shutdown.triggered();
        tokio::pin!(stopped);
        loop {
            match self.store.revocations_after(last, BATCH).await {
                Ok(rows) => {
                    let full = rows.len() == BATCH;
                    for row in rows {
                        last = row.seq;
                        // Other replicas' revocations leave this replica's cache here.
                        self.sessions.evict(&row.session_id);
                        // No watcher is not an error.
                        let _ = self.broadcast.send(Arc::new(row));
                    }
                    if full {
                        continue;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "revocation feed: cannot read new revocations"),
            }
            tokio::select! {
                () = &mut stopped => return,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(self.poll_interval) => {}
            }
        }
    }

    /// A stream of revocations after `cursor` (empty: from the oldest kept), or from now.
    pub async fn watch(
        self: &Arc<Self>,
        cursor: &str,
        from_now: bool,
    ) -> Result<ReceiverStream<Result<pb::Revocation, tonic::Status>>> {
        // Subscribe before reading the database, so nothing committed in between is missed;
        // anything seen twice is dropped by its position.
        let live = self.broadcast.subscribe();
        let after = if from_now {
            self.store.latest_revocation_seq().await?
        } else if cursor.is_empty() {
            0
        } else {
            let after = decode_cursor(cursor)?;
            if after < self.store.feed_pruned_through().await? {
                return Err(Error::CursorExpired);
            }
            after
        };
        let (sender, receiver) = mpsc::channel(WATCHER_BUFFER);
        tokio::spawn(Arc::clone(self).follow(after, live, sender));
        Ok(ReceiverStream::new(receiver))
    }

    /// Feeds one watcher until it goes away.
    async fn follow(
        self: Arc<Self>,
        mut after: i64,
        mut live: broadcast::Receiver<Arc<RevocationRecord>>,
        sender: mpsc::Sender<Result<pb::Revocation, tonic::Status>>,
    ) {
        loop {
            // Catch up from the database.
            loop {
                let rows = match self.store.revocations_after(after, BATCH).await {
                    Ok(rows) => rows,
                    Err(e) => {
                        let _ = sender.send(Err(e.into())).await;
                        return;
                    }
                };
                let full = rows.len() == BATCH;
                for row in &rows {
                    if sender.send(Ok(to_proto(row))).await.is_err() {
                        return;
                    }
                    after = row.seq;
                }
                if !full {
                    break;
                }
            }
            // Follow the broadcast until this watcher falls behind it.
            loop {
                let received = tokio::select! {
                    received = live.recv() => received,
                    // The watcher hung up while nothing was happening.
                    () = sender.closed() => return,
                };
                match received {
                    Ok(row) if row.seq <= after => {}
                    Ok(row) => {
                        if sender.send(Ok(to_proto(&row))).await.is_err() {
                            return;
                        }
                        after = row.seq;
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        // Skip what the broadcast dropped and read it from the database instead.
                        live = live.resubscribe();
                        break;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        }
    }
}
