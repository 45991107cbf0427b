//! A consented referral's lifecycle, as the closed-loop referral pattern has it (a FHIR Task's
//! status: requested → accepted or rejected → in-progress ↔ on-hold → completed, failed or
//! cancelled): which step may follow which. Pure: the store records, this decides.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// In the outbox, not delivered yet.
    Queued,
    /// Delivered; the provider has not answered.
    Sent,
    Accepted,
    Rejected,
    InProgress,
    OnHold,
    Completed,
    Failed,
    Cancelled,
}

impl Status {
    pub const ALL: [Status; 9] = [
        Status::Queued,
        Status::Sent,
        Status::Accepted,
        Status::Rejected,
        Status::InProgress,
        Status::OnHold,
        Status::Completed,
        Status::Failed,
        Status::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Sent => "sent",
            Status::Accepted => "accepted",
            Status::Rejected => "rejected",
            Status::InProgress => "in-progress",
            Status::OnHold => "on-hold",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
    }

    /// Also FHIR's `in_progress`-less spellings people type: `in_progress`, `on_hold`.
    pub fn parse(s: &str) -> Option<Status> {
        let s = s.trim().to_ascii_lowercase().replace('_', "-");
        Status::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Only an accepted referral reaches these (`accepted` itself included): reporting one
    /// means the provider accepted it.
    pub fn follows_acceptance(self) -> bool {
        matches!(
            self,
            Status::Accepted
                | Status::InProgress
                | Status::OnHold
                | Status::Completed
                | Status::Failed
        )
    }

    /// The person was seen: the first of these is the first service.
    pub fn is_service(self) -> bool {
        matches!(self, Status::InProgress | Status::Completed)
    }

    /// No step follows these.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Status::Rejected | Status::Completed | Status::Failed | Status::Cancelled
        )
    }

    /// Whether a provider may report `to` for a referral now `self`; the reason when not.
    pub fn may_become(self, to: Status) -> Result<(), String> {
        use Status::*;
        // `queued` is never a provider's to report, not even "again": recorded for a referral
        // not yet delivered, it would outlast the delivery (the last reported status wins).
        // `sent` again is harmless (a note on a delivered referral records it).
        if to == Queued {
            return Err(format!(
                "`{}` is the gateway's to set, not a provider's",
                to.as_str()
            ));
        }
        if self == to {
            return Ok(()); // said again: recorded, changes nothing
        }
        let ok = match (self, to) {
            (_, Queued | Sent) => false,
            (Queued, _) => false,
            (Sent, Accepted | Rejected | Cancelled) => true,
            (
                Accepted | InProgress | OnHold,
                InProgress | OnHold | Completed | Failed | Cancelled,
            ) => true,
            _ => false,
        };
        if ok {
            Ok(())
        } else if self.is_final() {
            Err(format!(
                "the referral is already {}: nothing follows it",
                self.as_str()
            ))
        } else if self == Queued {
            Err("the referral has not been delivered yet".into())
        } else if matches!(to, Queued | Sent) {
            Err(format!(
                "`{}` is the gateway's to set, not a provider's",
                to.as_str()
            ))
        } else {
            Err(format!(
                "`{}` cannot follow `{}` (accept a referral before reporting on its care)",
                to.as_str(),
                self.as_str()
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Status::*;
    use super::*;

    #[test]
    fn the_legal_steps_and_no_others() {
        assert!(Sent.may_become(Accepted).is_ok());
        assert!(Accepted.may_become(InProgress).is_ok());
        assert!(InProgress.may_become(OnHold).is_ok());
        assert!(OnHold.may_become(Completed).is_ok());
        assert!(
            Sent.may_become(Completed).is_err(),
            "completed before accepted"
        );
        assert!(
            Cancelled.may_become(Accepted).is_err(),
            "anything after cancelled"
        );
        assert!(Queued.may_become(Accepted).is_err());
        // Not even said again: queued is never reported by a provider.
        assert!(Queued.may_become(Queued).is_err());
        assert!(Sent.may_become(Sent).is_ok());
        assert!(Accepted.may_become(Sent).is_err());
        assert!(Completed.may_become(Completed).is_ok(), "the same again");
        assert_eq!(Status::parse("IN_PROGRESS"), Some(InProgress));
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
    }
}
