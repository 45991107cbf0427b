//! What a provider's HL7 v2 answer means for its referral (docs/closed-loop.md, "HL7 v2"):
//! RF1-1 of an RRI (HL7 table 0283) as a lifecycle step, and an application ACK's MSA-1 as a
//! note or nothing. Pure: the service looks the referral up and the store records.

use super::lifecycle::Status;
use crate::formats::hl7_reply::{Reply, ReplyKind};

/// What to do with the referral an answer names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Report this status, with this reason code.
    Report(Status, Option<&'static str>),
    /// Record the referral's current status again with this reason code: the provider's system
    /// said something worth keeping that is not a step (an application error).
    Note(&'static str),
    /// Nothing to record (RF1-1 `P`, pending; an application accept).
    Nothing,
}

/// Why an answer cannot be taken: the field (`RF1-1`), the HL7 error code (table 0357) and
/// our kind. Never a received value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub field: &'static str,
    pub hl7_code: u16,
    pub kind: &'static str,
    pub reason: &'static str,
}

/// The step an answer asks for.
///
/// RRI, RF1-1 (table 0283): `A` accepted → `accepted`; `R` rejected → `rejected`; `P` pending →
/// nothing (the provider has not decided; `sent` says as much); `E` expired → `cancelled` with
/// the reason `expired` (the referral lapsed before it was acted on: not the provider's refusal,
/// and `cancelled` is the one status that may follow both `sent` and `accepted`). Without RF1-1,
/// or with another code, the answer is refused: nothing is guessed.
///
/// ACK, MSA-1: `AA`/`CA` → nothing (the provider's system took the REF^I12, which `sent`
/// already says; it is not a person's acceptance); `AE`/`CE` and `AR`/`CR` → a note on the
/// current status (`hl7-application-error`, `hl7-application-reject`), never a step: a system
/// refusing a message is not a provider rejecting the referral, and the follow-up after
/// `accept_within` still applies.
pub fn step(reply: &Reply) -> Result<Step, Refused> {
    match reply.kind {
        ReplyKind::Rri => match reply
            .referral_status
            .as_deref()
            .map(str::to_ascii_uppercase)
        {
            None => Err(Refused {
                field: "RF1-1",
                hl7_code: 101,
                kind: "no_referral_status",
                reason: "an RRI needs RF1-1, the referral status (HL7 table 0283)",
            }),
            Some(s) => match s.as_str() {
                "A" => Ok(Step::Report(Status::Accepted, None)),
                "R" => Ok(Step::Report(Status::Rejected, None)),
                "E" => Ok(Step::Report(Status::Cancelled, Some("expired"))),
                "P" => Ok(Step::Nothing),
                _ => Err(Refused {
                    field: "RF1-1",
                    hl7_code: 103,
                    kind: "unknown_referral_status",
                    reason: "RF1-1 is one of A, R, P, E (HL7 table 0283)",
                }),
            },
        },
        ReplyKind::Ack => match reply.ack_code.as_deref().map(str::to_ascii_uppercase) {
            None => Err(Refused {
                field: "MSA-1",
                hl7_code: 101,
                kind: "no_ack_code",
                reason: "an ACK needs MSA-1, the acknowledgment code",
            }),
            Some(c) => match c.as_str() {
                "AA" | "CA" => Ok(Step::Nothing),
                "AE" | "CE" => Ok(Step::Note("hl7-application-error")),
                "AR" | "CR" => Ok(Step::Note("hl7-application-reject")),
                _ => Err(Refused {
                    field: "MSA-1",
                    hl7_code: 103,
                    kind: "unknown_ack_code",
                    reason: "MSA-1 is one of AA, AE, AR, CA, CE, CR (HL7 table 0008)",
                }),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rri(status: Option<&str>) -> Reply {
        Reply {
            kind: ReplyKind::Rri,
            control_id: Some("R1".into()),
            sent_at: None,
            ack_code: Some("AA".into()),
            acknowledged: Some("X".into()),
            referral_status: status.map(String::from),
            originating_referral: None,
        }
    }

    #[test]
    fn table_0283_and_0008() {
        assert_eq!(
            step(&rri(Some("A"))),
            Ok(Step::Report(Status::Accepted, None))
        );
        assert_eq!(
            step(&rri(Some("r"))),
            Ok(Step::Report(Status::Rejected, None))
        );
        assert_eq!(
            step(&rri(Some("E"))),
            Ok(Step::Report(Status::Cancelled, Some("expired")))
        );
        assert_eq!(step(&rri(Some("P"))), Ok(Step::Nothing));
        assert_eq!(step(&rri(Some("Q"))).unwrap_err().hl7_code, 103);
        assert_eq!(step(&rri(None)).unwrap_err().field, "RF1-1");
        let mut ack = rri(None);
        ack.kind = ReplyKind::Ack;
        assert_eq!(step(&ack), Ok(Step::Nothing));
        ack.ack_code = Some("AE".into());
        assert_eq!(step(&ack), Ok(Step::Note("hl7-application-error")));
        ack.ack_code = Some("ZZ".into());
        assert_eq!(step(&ack).unwrap_err().field, "MSA-1");
    }
}
