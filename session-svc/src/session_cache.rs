//! Validated sessions kept in memory, so `ValidateSession` is usually answered without the
//! database. Revocations evict them: those made in this process at once, other replicas' when
//! the revocation feed's tail reads them (within its poll interval).

use std::collections::HashMap;
use std::sync::Mutex;

use crate::model::Session;

/// Sessions held at most; past that the cache starts over (a full cache costs one database read
/// per session to refill, never a wrong answer).
const CAPACITY: usize = 200_000;

#[derive(Debug, Default)]
struct Entries {
    /// Session by the hash of its token.
    by_token: HashMap<String, Session>,
    /// Token hash by session id, to evict on revocation.
    token_of: HashMap<String, String>,
    /// Counts evictions, so a validation that read the database before an eviction does not put
    /// the session it read back afterwards.
    generation: u64,
}

/// The cache; shared by the session service and the revocation feed.
#[derive(Debug, Default)]
pub struct SessionCache {
    entries: Mutex<Entries>,
}

impl SessionCache {
    /// The cached session for a token hash.
    pub fn get(&self, token_hash: &str) -> Option<Session> {
        self.entries.lock().ok()?.by_token.get(token_hash).cloned()
    }

    /// The eviction count now; pass it to [`SessionCache::insert`] after reading the database.
    pub fn generation(&self) -> u64 {
        self.entries.lock().map(|e| e.generation).unwrap_or(u64::MAX)
    }

    /// Caches a live session read from the database, unless something was evicted since
    /// `generation` was taken (it might have been this session).
    pub fn insert(&self, generation: u64, token_hash: &str, session: &Session) {
        let Ok(mut entries) = self.entries.lock() else { return };
        if entries.generation != generation {
            return;
        }
        if entries.by_token.len() >= CAPACITY {
            entries.by_token.clear();
            entries.token_of.clear();
        }
        entries.token_of.insert(session.id.clone(), token_hash.to_owned());
        entries.by_token.insert(token_hash.to_owned(), session.clone());
    }

    /// Notes a refreshed last activity.
    pub fn touch(&self, token_hash: &str, at: i64) {
        if let Ok(mut entries) = self.entries.lock()
            && let Some(session) = entries.by_token.get_mut(token_hash)
        {
            session.last_active_at = session.last_active_at.max(at);
        }
    }

    /// Forgets a session (revoked, or found expired).
    pub fn evict(&self, session_id: &str) {
        let Ok(mut entries) = self.entries.lock() else { return };
        entries.generation += 1;
        if let Some(token_hash) = entries.token_of.remove(session_id) {
            entries.by_token.remove(&token_hash);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_proto::session::v1 as pb;

    fn session(id: &str) -> Session {
        Session {
            id: id.into(),
            user_id: "u".into(),
            device_id: String::new(),
            amr: vec![],
            device_authenticator: false,
            created_at: 0,
            last_active_at: 0,
            idle_timeout_us: 1,
            expires_at: 1,
            revoked_at: None,
            revocation_reason: pb::RevocationReason::Unspecified,
            client_ip: String::new(),
            user_agent: String::new(),
        }
    }

    #[test]
    fn an_evicted_session_is_gone() {
        let cache = SessionCache::default();
        cache.insert(cache.generation(), "h1", &session("s1"));
        assert!(cache.get("h1").is_some());
        cache.evict("s1");
        assert!(cache.get("h1").is_none());
    }

    #[test]
    fn a_session_read_before_an_eviction_is_not_cached_after_it() {
        let cache = SessionCache::default();
        let generation = cache.generation();
        // A revocation lands while the validation is reading the database.
        cache.evict("s1");
        cache.insert(generation, "h1", &session("s1"));
        assert!(cache.get("h1").is_none());
    }
}
