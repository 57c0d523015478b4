//! The FastPass replay ledger: every accepted assertion id (`jti`) is recorded in the database,
//! so a replay is refused on every replica. Concurrent verifications share one INSERT (group
//! commit), so the write costs one statement per batch rather than per call.

use std::collections::HashSet;

use service_kit::db::{Backend, Database, HeldConnection};
use sqlx::{AnyConnection, Row};
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};

/// Most ids written by one statement.
const MAX_BATCH: usize = 256;

struct Claim {
    jti: String,
    expires_at: i64,
    answer: oneshot::Sender<Result<bool>>,
}

/// Records assertion ids; cheap to clone.
#[derive(Debug, Clone)]
pub struct ReplayLedger {
    claims: mpsc::Sender<Claim>,
}

impl std::fmt::Debug for Claim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claim").field("jti", &self.jti).finish_non_exhaustive()
    }
}

impl ReplayLedger {
    /// A ledger writing to `db`; its writer task ends when the last clone is dropped.
    pub fn start(db: Database) -> Self {
        let (claims, receiver) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(write_batches(db, receiver));
        Self { claims }
    }

    /// Records `jti` (kept until `expires_at`, Unix seconds). True when it was new; false when it
    /// had been recorded before: a replay.
    pub async fn claim(&self, jti: &str, expires_at: i64) -> Result<bool> {
        let (answer, receive) = oneshot::channel();
        let claim = Claim {
            jti: jti.to_owned(),
            expires_at,
            answer,
        };
        let closed = || Error::Unavailable("the replay ledger has stopped".into());
        self.claims.send(claim).await.map_err(|_| closed())?;
        receive.await.map_err(|_| closed())?
    }
}

async fn write_batches(db: Database, mut receiver: mpsc::Receiver<Claim>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    // `recv_many` waits for the first claim, then takes whatever else is already queued: the
    // claims that arrived while the previous batch was being written.
    let mut held = HeldConnection::default();
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let outcome = match held.get(&db).await {
            Ok(conn) => insert(&db, conn, &batch).await,
            Err(e) => Err(e),
        };
        held.after_batch(&db, outcome.is_ok(), !receiver.is_empty());
        match outcome {
            Ok(inserted) => {
                let mut answered = HashSet::new();
                for claim in batch.drain(..) {
                    // Within a batch, only the first claim of an id can be the new one.
                    let new = inserted.contains(&claim.jti) && answered.insert(claim.jti.clone());
                    let _ = claim.answer.send(Ok(new));
                }
            }
            Err(e) => {
                let message = e.to_string();
                for claim in batch.drain(..) {
                    let _ = claim.answer.send(Err(Error::Unavailable(format!(
                        "recording assertion ids failed: {message}"
                    ))));
                }
            }
        }
    }
}

/// One `INSERT … ON CONFLICT DO NOTHING RETURNING jti`: the ids returned are the new ones. The
/// batch travels as one JSON parameter, so the statement text never changes and stays prepared
/// (a text per batch size would be parsed and planned again for nearly every batch).
async fn insert(db: &Database, conn: &mut AnyConnection, batch: &[Claim]) -> Result<HashSet<String>, sqlx::Error> {
    let sql = match db.backend {
        Backend::Sqlite => {
            // `WHERE true` keeps SQLite from reading ON CONFLICT as part of a join.
            "INSERT INTO assertion_replays (jti, expires_at) SELECT value ->> 0, value ->> 1 FROM json_each($1) \
             WHERE true ON CONFLICT DO NOTHING RETURNING jti"
        }
        Backend::Postgres => {
            "INSERT INTO assertion_replays (jti, expires_at) SELECT e ->> 0, (e ->> 1)::bigint \
             FROM jsonb_array_elements($1::jsonb) AS e ON CONFLICT DO NOTHING RETURNING jti"
        }
    };
    let rows: Vec<(&str, i64)> = batch.iter().map(|c| (c.jti.as_str(), c.expires_at)).collect();
    let json = serde_json::to_string(&rows).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let _turn = db.write_turn().await;
    let rows = sqlx::query(sql).bind(json).fetch_all(conn).await?;
    rows.iter().map(|row| row.try_get::<String, _>("jti")).collect()
}
