//! The dispatcher thread: delivers what the outbox holds, on its own connection to the store
//! (the outbox is the durable queue between the disclosure stage and delivery). Woken by the
//! engine after a disclosure pass queued something, and every second for what is due again.

use super::Health;
use crate::config::Gateway;
use crate::config::destination::Keys;
use crate::deliver::Dispatcher;
use crate::store::Store;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

pub(super) fn spawn(
    gw: Arc<Gateway>,
    keys: Arc<Keys>,
    mut store: Store,
    wake: Receiver<()>,
    stop: Arc<AtomicBool>,
    health: Arc<Health>,
    metrics: Arc<crate::metrics::Metrics>,
) -> Result<std::thread::JoinHandle<()>, super::ServiceError> {
    std::thread::Builder::new()
        .name("pnp-dispatcher".into())
        .spawn(move || {
            let mut state = Dispatcher::default();
            let mut counted: Option<std::time::Instant> = None;
            let mut followup = crate::deliver::followup::Clock::default();
            let seal = keys
                .outbox
                .as_deref()
                .map(crate::store::outbox::SealKey::from_secret);
            loop {
                Health::beat(&health.dispatcher);
                match wake.recv_timeout(Duration::from_millis(250)) {
                    Ok(()) | Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => return,
                }
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let Some(seal) = &seal else { continue };
                if followup.due(&gw) {
                    overdue(&gw, &keys, &mut store, seal, &metrics);
                }
                pass(&gw, &keys, &mut store, seal, &mut state, &metrics);
                count_referrals(&store, &metrics, &mut counted);
            }
        })
        .map_err(|source| super::ServiceError::Io {
            what: "starting the dispatcher".into(),
            source,
        })
}

/// How often the referrals gauge is recounted: a grouped scan of the referrals, cheap but not
/// worth doing on every pass (four a second).
const REFERRALS_RECOUNT: Duration = Duration::from_secs(15);

/// The `pnp_referrals` gauge (destination, status), at most every [`REFERRALS_RECOUNT`].
fn count_referrals(
    store: &Store,
    metrics: &crate::metrics::Metrics,
    last: &mut Option<std::time::Instant>,
) {
    if last.is_some_and(|t| t.elapsed() < REFERRALS_RECOUNT) {
        return;
    }
    *last = Some(std::time::Instant::now());
    match store.referral_counts() {
        Ok(counts) => metrics
            .update(|s| s.referrals = counts.into_iter().map(|(d, st, n)| ((d, st), n)).collect()),
        Err(e) => tracing::warn!(error = %e, "cannot count the referrals for the metrics"),
    }
}

/// Raises the alerts of referrals overdue now (the notices then go out in the pass that
/// follows); counted in the metrics.
fn overdue(
    gw: &Gateway,
    keys: &Keys,
    store: &mut Store,
    seal: &crate::store::outbox::SealKey,
    metrics: &crate::metrics::Metrics,
) {
    let now = chrono::Utc::now();
    match crate::deliver::followup::alert_overdue(store, gw, Some(seal), &keys.audit, now) {
        Ok(alerted) => metrics.update(|s| {
            for o in &alerted {
                *s.overdue.entry(o.destination.clone()).or_default() += 1;
            }
        }),
        Err(e) => tracing::error!(error = %e, "cannot raise the follow-up alerts; retrying"),
    }
}

/// Cancellations owed for revoked consents, then one dispatch pass; counted in the metrics.
fn pass(
    gw: &Gateway,
    keys: &Keys,
    store: &mut Store,
    seal: &crate::store::outbox::SealKey,
    state: &mut Dispatcher,
    metrics: &crate::metrics::Metrics,
) {
    let today = super::today();
    match crate::deliver::cancel::queue_for_revoked(store, gw, Some(seal), &keys.audit, today) {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            cancellations = n,
            "cancellations queued for revoked consents"
        ),
        Err(e) => tracing::error!(error = %e, "cannot queue cancellations; retrying"),
    }
    // An aggregate destination's monthly report, from the first day of the next month.
    if let Err(e) = crate::deliver::report::queue_due(store, gw, seal, &keys.audit, today) {
        tracing::error!(error = %e, "cannot queue the monthly report; retrying");
    }
    let sent = match crate::deliver::dispatch(store, gw, seal, &keys.audit, today, state) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "dispatch failed; retrying in a second");
            return;
        }
    };
    sent.log();
    let outbox = store.outbox_counts().unwrap_or_default();
    metrics.update(|s| {
        for (outcome, counts) in [
            ("delivered", &sent.delivered),
            ("retried", &sent.retried),
            ("dead", &sent.dead),
            ("withdrawn", &sent.withdrawn),
        ] {
            for (dest, n) in counts {
                *s.deliveries
                    .entry((dest.clone(), outcome.to_string()))
                    .or_default() += n;
            }
        }
        s.failing = outbox.iter().map(|(d, _, _)| (d.clone(), false)).collect();
        s.failing.extend(state.alerts.failing());
        s.outbox = outbox.into_iter().map(|(d, st, n)| ((d, st), n)).collect();
    });
}
