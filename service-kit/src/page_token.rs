//! Paging as every List RPC does it (AIP-158): page sizes, and opaque, tamper-evident page
//! tokens holding a keyset cursor sealed with HMAC-SHA256.

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

const TAG_LEN: usize = 16;

/// Page size when a request gives none.
pub const DEFAULT_PAGE_SIZE: usize = 20;
/// Largest page size; larger requests are served this many.
pub const MAX_PAGE_SIZE: usize = 200;

/// The page size to serve for a request's `page_size`: 0 means the default, more than the
/// maximum means the maximum, and a negative size is refused with the reason.
pub fn page_size(requested: i32) -> Result<usize, &'static str> {
    match requested {
        n if n < 0 => Err("must not be negative"),
        0 => Ok(DEFAULT_PAGE_SIZE),
        n => Ok(usize::try_from(n).unwrap_or(MAX_PAGE_SIZE).min(MAX_PAGE_SIZE)),
    }
}

/// A page token that was altered, sealed by another key, or issued for another query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid page token")]
pub struct InvalidPageToken;

/// Seals and opens page tokens with one key. Tokens from another key, or altered, do not open.
#[derive(Clone)]
pub struct PageTokens {
    key: hmac::Key,
}

impl std::fmt::Debug for PageTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageTokens").finish_non_exhaustive()
    }
}

impl PageTokens {
    /// Tokens sealed with `secret`. Replicas that share a secret accept each other's tokens.
    pub fn new(secret: &[u8]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    /// Tokens sealed with the configured secret or, when none is configured, with a random one
    /// (tokens then do not survive a restart or work across replicas, which is logged).
    pub fn from_setting(secret: Option<&str>) -> Self {
        match secret {
            Some(secret) => Self::new(secret.as_bytes()),
            None => {
                tracing::warn!(
                    "page_token_secret is unset: page tokens will not survive a restart or work across replicas"
                );
                Self::new(uuid::Uuid::new_v4().as_bytes())
            }
        }
    }

    /// A token for `cursor`, bound to `scope` (the filter, say) so it cannot be replayed with
    /// another query.
    pub fn seal(&self, scope: &str, cursor: &str) -> String {
        let mut body = Vec::with_capacity(cursor.len() + TAG_LEN);
        body.extend_from_slice(cursor.as_bytes());
        let tag = self.tag(scope, cursor.as_bytes());
        body.extend_from_slice(&tag.as_ref()[..TAG_LEN]);
        URL_SAFE_NO_PAD.encode(body)
    }

    /// The cursor in `token`, if it was sealed by this key for `scope`.
    pub fn open(&self, scope: &str, token: &str) -> Option<String> {
        if token.len() > 4096 {
            return None;
        }
        let body = URL_SAFE_NO_PAD.decode(token).ok()?;
        if body.len() < TAG_LEN {
            return None;
        }
        let (cursor, tag) = body.split_at(body.len() - TAG_LEN);
        // Compare in constant time over the truncated tag.
        let expected = self.tag(scope, cursor);
        if !constant_time_eq(&expected.as_ref()[..TAG_LEN], tag) {
            return None;
        }
        String::from_utf8(cursor.to_vec()).ok()
    }

    /// Where a request's page starts: `None` for the first page (no token), the cursor sealed in
    /// `token` otherwise, or `Err` when the token is not one this key sealed for `scope`.
    pub fn resume(&self, scope: &str, token: &str) -> Result<Option<String>, InvalidPageToken> {
        if token.is_empty() {
            return Ok(None);
        }
        self.open(scope, token).map(Some).ok_or(InvalidPageToken)
    }

    /// Trims `rows`, fetched with one row more than `limit`, to `limit`. The extra row's presence
    /// means there is a next page: the token continuing after the last row kept. Otherwise "".
    pub fn next_page<T>(&self, scope: &str, rows: &mut Vec<T>, limit: usize, id: impl Fn(&T) -> &str) -> String {
        if rows.len() <= limit {
            return String::new();
        }
        rows.truncate(limit);
        rows.last().map(|row| self.seal(scope, id(row))).unwrap_or_default()
    }

    fn tag(&self, scope: &str, cursor: &[u8]) -> hmac::Tag {
        let mut message = Vec::with_capacity(scope.len() + 1 + cursor.len());
        message.extend_from_slice(scope.as_bytes());
        message.push(0);
        message.extend_from_slice(cursor);
        hmac::sign(&self.key, &message)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_sizes_default_cap_and_refuse_negatives() {
        assert_eq!(page_size(0), Ok(DEFAULT_PAGE_SIZE));
        assert_eq!(page_size(7), Ok(7));
        assert_eq!(page_size(500), Ok(MAX_PAGE_SIZE));
        assert!(page_size(-1).is_err());
    }

    #[test]
    fn a_page_with_an_extra_row_has_a_next_token_after_its_last_kept_row() {
        let tokens = PageTokens::new(b"secret");
        let mut rows = vec!["a", "b", "c"];
        let token = tokens.next_page("s", &mut rows, 2, |r| r);
        assert_eq!(rows, ["a", "b"]);
        assert_eq!(tokens.open("s", &token).as_deref(), Some("b"));
        let mut rows = vec!["a", "b"];
        assert_eq!(tokens.next_page("s", &mut rows, 2, |r| r), "");
    }

    #[test]
    fn a_sealed_cursor_opens_with_the_same_scope() {
        let tokens = PageTokens::new(b"secret");
        let token = tokens.seal("platform = WINDOWS", "abc|123");
        assert_eq!(tokens.open("platform = WINDOWS", &token).as_deref(), Some("abc|123"));
    }

    #[test]
    fn tokens_do_not_open_with_another_scope_key_or_after_tampering() {
        let tokens = PageTokens::new(b"secret");
        let token = tokens.seal("a", "cursor");
        assert_eq!(tokens.open("b", &token), None);
        assert_eq!(PageTokens::new(b"other").open("a", &token), None);
        let mut bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
        bytes[0] ^= 1;
        assert_eq!(tokens.open("a", &URL_SAFE_NO_PAD.encode(bytes)), None);
        assert_eq!(tokens.open("a", "!!!"), None);
        assert_eq!(tokens.open("a", ""), None);
    }
}
