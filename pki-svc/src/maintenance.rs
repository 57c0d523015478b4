//! Background work: picking up trust changes other replicas made, fetching customer CAs' CRLs,
//! revoking management certificates nobody used for a long time (as Okta does), and forgetting
//! expired dynamic challenges.

use std::sync::Arc;
use std::time::Duration;

use service_kit::shutdown::Shutdown;

use crate::authority::Authorities;
use crate::device_ca::DEVICE_CA;
use crate::store::now_micros;
use crate::trust::Trust;

/// How often the work runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// How often the trust snapshot is rebuilt from the database.
    pub trust_reload: Duration,
    /// How often CRLs are fetched, unused certificates revoked and challenges swept.
    pub maintenance: Duration,
    /// Certificates of ours unused this long are revoked; `None` never.
    pub unused_certificate_lifetime: Option<Duration>,
}

/// Runs until `shutdown`.
pub async fn run(authorities: Arc<Authorities>, trust: Arc<Trust>, schedule: Schedule, shutdown: Shutdown) {
    let stopped = shutdown.triggered();
    tokio::pin!(stopped);
    let mut reload = tokio::time::interval(schedule.trust_reload);
    let mut maintenance = tokio::time::interval(schedule.maintenance);
    reload.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    maintenance.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = &mut stopped => return,
            _ = reload.tick() => {
                if let Err(e) = trust.reload().await {
                    tracing::error!(error = %e, "cannot reload trusted CAs");
                }
            }
            _ = maintenance.tick() => maintain(&authorities, &trust, &schedule).await,
        }
    }
}

/// One round of maintenance.
pub async fn maintain(authorities: &Authorities, trust: &Trust, schedule: &Schedule) {
    if let Err(e) = trust.refresh_crls().await {
        tracing::error!(error = %e, "cannot refresh customer CRLs");
    }
    let store = authorities.store();
    let day = 24 * 3600 * 1_000_000;
    if let Err(e) = store.delete_expired_challenges(now_micros() - day).await {
        tracing::error!(error = %e, "cannot sweep dynamic challenges");
    }
    let Some(lifetime) = schedule.unused_certificate_lifetime else {
        return;
    };
    let cutoff = now_micros() - i64::try_from(lifetime.as_micros()).unwrap_or(i64::MAX);
    match store.revoke_unused(DEVICE_CA, cutoff).await {
        Ok(serials) if serials.is_empty() => {}
        Ok(serials) => {
            tracing::info!(count = serials.len(), serial_numbers = ?serials, "revoked unused management certificates");
            if let Err(e) = authorities.reissue_device_crl().await {
                tracing::error!(error = %e, "cannot reissue the CRL");
            }
        }
        Err(e) => tracing::error!(error = %e, "cannot revoke unused certificates"),
    }
}
