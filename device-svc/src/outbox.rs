//! The transactional outbox: effects on other services, stored with the change that causes them
//! and delivered with retries until the receiver acknowledges.

use std::time::Duration;

use portcullis_proto::pki::v1 as pki;
use portcullis_proto::pki::v1::pki_service_client::PkiServiceClient;
use portcullis_proto::session::v1 as session;
use portcullis_proto::session::v1::session_service_client::SessionServiceClient;
use prost::Message;
use service_kit::observe::{propagate_request_id, with_request_id};
use service_kit::shutdown::Shutdown;
use tonic::transport::Channel;

use crate::device::now_micros;
use crate::lifecycle::Action;
use crate::store::{OutboxEntry, Store};

/// An effect on another service.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Ask session-svc to end sessions.
    RevokeSessions(session::RevokeSessionsRequest),
    /// Ask pki-svc to revoke a certificate.
    RevokeCertificate(pki::RevokeCertificateRequest),
}

const REVOKE_SESSIONS: &str = "session.RevokeSessions";
const REVOKE_CERTIFICATE: &str = "pki.RevokeCertificate";

impl Effect {
    /// End the sessions established with the device authenticator on `device_id`.
    pub fn end_device_sessions(device_id: &str, action: Action) -> Self {
        let reason = match action {
            Action::Deactivate => session::RevocationReason::DeviceDeactivated,
            _ => session::RevocationReason::DeviceSuspended,
        };
        Effect::RevokeSessions(session::RevokeSessionsRequest {
            user_id: String::new(),
            device_id: device_id.to_owned(),
            device_authenticator_only: true,
            reason: reason.into(),
            idempotency_key: String::new(),
        })
    }

    /// Revoke the management certificate bound to `device_id`.
    pub fn revoke_bound_certificate(device_id: &str) -> Self {
        Effect::RevokeCertificate(pki::RevokeCertificateRequest {
            serial_number: String::new(),
            bound_device_id: device_id.to_owned(),
            reason: pki::CertificateRevocationReason::CessationOfOperation.into(),
            idempotency_key: String::new(),
        })
    }

    /// Stored kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Effect::RevokeSessions(_) => REVOKE_SESSIONS,
            Effect::RevokeCertificate(_) => REVOKE_CERTIFICATE,
        }
    }

    /// Stored payload: the request message.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Effect::RevokeSessions(r) => r.encode_to_vec(),
            Effect::RevokeCertificate(r) => r.encode_to_vec(),
        }
    }

    /// From stored kind and payload.
    pub fn decode(kind: &str, payload: &[u8]) -> Option<Self> {
        match kind {
            REVOKE_SESSIONS => session::RevokeSessionsRequest::decode(payload)
                .ok()
                .map(Effect::RevokeSessions),
            REVOKE_CERTIFICATE => pki::RevokeCertificateRequest::decode(payload)
                .ok()
                .map(Effect::RevokeCertificate),
            _ => None,
        }
    }
}

/// Where effects go. A receiver left unset holds its effects until it is configured.
#[derive(Debug, Clone, Default)]
pub struct Receivers {
    /// session-svc.
    pub session: Option<Channel>,
    /// pki-svc.
    pub pki: Option<Channel>,
}

/// Delivery timing.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryPolicy {
    /// How often to look for due entries when idle.
    pub poll_interval: Duration,
    /// Deadline of one delivery call.
    pub call_timeout: Duration,
    /// Delay after the first failure; doubles per attempt.
    pub initial_backoff: Duration,
    /// Longest delay between attempts.
    pub max_backoff: Duration,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_millis(200),
            call_timeout: Duration::from_secs(5),
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(30),
        }
    }
}

impl DeliveryPolicy {
    /// The delay before attempt `attempts + 1`, with jitter so many entries do not retry in step.
    fn backoff(&self, attempts: i64) -> Duration {
        let exponent = u32::try_from(attempts.clamp(0, 16)).unwrap_or(16);
        let base = self
            .initial_backoff
            .saturating_mul(1u32 << exponent)
            .min(self.max_backoff);
        let jitter = u64::from(uuid::Uuid::new_v4().as_u128() as u16) % (base.as_millis() as u64 / 4 + 1);
        base + Duration::from_millis(jitter)
    }
}

/// Delivers due outbox entries until `shutdown`.
pub async fn run_delivery(store: Store, receivers: Receivers, policy: DeliveryPolicy, shutdown: Shutdown) {
    let stopped = shutdown.triggered();
    tokio::pin!(stopped);
    loop {
        let delivered_any = match deliver_due(&store, &receivers, &policy).await {
            Ok(n) => n > 0,
            Err(e) => {
                tracing::warn!(error = %e, "outbox: cannot read due entries");
                false
            }
        };
        if delivered_any {
            continue;
        }
        tokio::select! {
            () = &mut stopped => return,
            () = tokio::time::sleep(policy.poll_interval) => {}
        }
    }
}

/// One pass: tries every due entry once. Returns how many were delivered.
pub async fn deliver_due(store: &Store, receivers: &Receivers, policy: &DeliveryPolicy) -> crate::error::Result<usize> {
    let due = store.due_outbox(now_micros(), 100).await?;
    let mut delivered = 0;
    for entry in due {
        let request_id = entry.request_id.clone().into();
        match with_request_id(request_id, deliver(&entry, receivers, policy)).await {
            Ok(()) => {
                store.outbox_delivered(&entry.id).await?;
                delivered += 1;
            }
            Err(reason) => {
                let delay = policy.backoff(entry.attempts);
                tracing::warn!(entry = %entry.id, kind = entry.effect.kind(), attempts = entry.attempts + 1, %reason, retry_in_ms = delay.as_millis() as u64, "outbox delivery failed");
                let next = now_micros() + i64::try_from(delay.as_micros()).unwrap_or(i64::MAX / 2);
                store.outbox_failed(&entry.id, &reason, next).await?;
            }
        }
    }
    Ok(delivered)
}

async fn deliver(entry: &OutboxEntry, receivers: &Receivers, policy: &DeliveryPolicy) -> Result<(), String> {
    match &entry.effect {
        Effect::RevokeSessions(request) => {
            let channel = receivers.session.clone().ok_or("session-svc is not configured")?;
            let mut client = SessionServiceClient::with_interceptor(channel, propagate_request_id);
            let mut request = tonic::Request::new(session::RevokeSessionsRequest {
                idempotency_key: entry.id.clone(),
                ..request.clone()
            });
            request.set_timeout(policy.call_timeout);
            client
                .revoke_sessions(request)
                .await
                .map(drop)
                .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
        }
        Effect::RevokeCertificate(request) => {
            let channel = receivers.pki.clone().ok_or("pki-svc is not configured")?;
            let mut client = PkiServiceClient::with_interceptor(channel, propagate_request_id);
            let mut request = tonic::Request::new(pki::RevokeCertificateRequest {
                idempotency_key: entry.id.clone(),
                ..request.clone()
            });
            request.set_timeout(policy.call_timeout);
            client
                .revoke_certificate(request)
                .await
                .map(drop)
                .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_stops_at_the_maximum() {
        let policy = DeliveryPolicy::default();
        let first = policy.backoff(0);
        assert!(first >= policy.initial_backoff && first <= policy.initial_backoff * 5 / 4 + Duration::from_millis(1));
        let third = policy.backoff(2);
        assert!(third >= policy.initial_backoff * 4);
        for attempts in [20, 1_000, i64::MAX] {
            let late = policy.backoff(attempts);
            assert!(late >= policy.max_backoff && late <= policy.max_backoff * 5 / 4 + Duration::from_millis(1));
        }
    }

    #[test]
    fn effects_round_trip_through_storage() {
        for effect in [
            Effect::end_device_sessions("d1", Action::Suspend),
            Effect::revoke_bound_certificate("d2"),
        ] {
            assert_eq!(Effect::decode(effect.kind(), &effect.encode()), Some(effect.clone()));
        }
        assert_eq!(Effect::decode("unknown", b""), None);
    }
}
