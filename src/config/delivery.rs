//! A destination's delivery as the gateway runs it: `[[destination]] deliver` checked, its paths
//! resolved against the config's folder (`Gateway::load` builds these).

use std::path::PathBuf;

/// A destination's delivery, with paths resolved.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub kind: DeliveryKind,
    pub retry: super::destination::RetrySpec,
    pub retention_hours: u64,
    pub rate_per_second: Option<f64>,
    /// `accept_within`: a referral still `sent` this long after delivery is overdue.
    pub accept_within: Option<std::time::Duration>,
    /// `[destination.poll_status]`, checked.
    pub poll_status: Option<super::followup::PollStatus>,
}

/// The HTTPS settings of a webhook or FHIR destination, with paths resolved.
#[derive(Debug, Clone)]
pub struct HttpDelivery {
    pub url: String,
    pub secret_file: Option<PathBuf>,
    pub secret_env: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub identity_file: Option<PathBuf>,
    pub timeout_ms: u64,
    pub batch_max: usize,
    pub concurrency: usize,
}

/// TLS settings of an `hl7` destination, with paths resolved.
#[derive(Debug, Clone)]
pub struct MllpTlsSpec {
    pub server_name: String,
    pub ca_file: Option<PathBuf>,
    pub identity_file: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub enum DeliveryKind {
    File {
        folder: PathBuf,
        format: super::destination::FileFormat,
        max_records: usize,
        /// Files (and the folder, if the gateway makes it) only the owner can read: the
        /// destination receives identifying values (a consented referral; a limited data set is
        /// PHI too). Safe Harbor files are de-identified and keep the usual mode, for pick-up.
        owner_only: bool,
    },
    Hl7 {
        address: String,
        receiver: crate::deliver::hl7out::Receiver,
        timeout_ms: u64,
        tls: Option<MllpTlsSpec>,
        concurrency: usize,
    },
    Webhook {
        http: HttpDelivery,
        /// The body is a FHIR R4 transaction Bundle built from the referral.
        fhir: bool,
    },
    Kafka {
        brokers: String,
        topic: String,
        timeout_ms: u64,
        properties: std::collections::BTreeMap<String, String>,
        /// Where the SASL password is read from when the producer starts.
        sasl_password: super::sasl::SaslPassword,
    },
}

impl DeliveryKind {
    /// Where the payloads go, for summaries (no secrets: URLs, addresses, folders, topics).
    pub fn target(&self) -> String {
        match self {
            DeliveryKind::File { folder, .. } => folder.display().to_string(),
            DeliveryKind::Webhook { http, .. } => http.url.clone(),
            DeliveryKind::Hl7 { address, tls, .. } => {
                format!("mllp{}://{address}", if tls.is_some() { "s" } else { "" })
            }
            DeliveryKind::Kafka { brokers, topic, .. } => format!("kafka://{brokers}/{topic}"),
        }
    }
}
