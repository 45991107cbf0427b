//! One warning when a destination starts failing, one when it recovers: not one per message.

use std::collections::{BTreeMap, BTreeSet};

/// What is wrong with a destination, for [`Alerts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Trouble {
    /// Failing with errors that may pass: what it is sent waits for its retry.
    Queuing,
    /// Refusing what it is sent for good: it goes to the dead-letter list.
    DeadLettering,
}

/// Per-destination health, so that a destination that starts queuing or dead-lettering logs one
/// warning when it starts, and one when it recovers (its next delivery), not one per message.
#[derive(Debug, Default)]
pub struct Alerts {
    troubles: BTreeMap<String, BTreeSet<Trouble>>,
}

impl Alerts {
    /// `what` is what the destination is sent, in the warning's words: `referrals` (consented
    /// referrals) or `payloads` (de-identified data).
    pub(super) fn raise(&mut self, dest: &str, what: &str, trouble: Trouble, why: &str) {
        if self
            .troubles
            .entry(dest.to_owned())
            .or_default()
            .insert(trouble)
        {
            match trouble {
                Trouble::Queuing => tracing::warn!(
                    destination = dest,
                    error = why,
                    "destination is failing; {what} are queuing"
                ),
                Trouble::DeadLettering => tracing::warn!(
                    destination = dest,
                    error = why,
                    "destination refuses {what}; they are dead-lettered (see `outbox dead`)"
                ),
            }
        }
    }

    /// Every destination seen so far, and whether it is in trouble now.
    pub fn failing(&self) -> BTreeMap<String, bool> {
        self.troubles
            .iter()
            .map(|(d, t)| (d.clone(), !t.is_empty()))
            .collect()
    }

    pub(super) fn ok(&mut self, dest: &str) {
        let was = self.troubles.insert(dest.to_owned(), BTreeSet::new());
        if was.is_some_and(|t| !t.is_empty()) {
            tracing::warn!(
                destination = dest,
                "destination recovered; the queue drains"
            );
        }
    }
}
