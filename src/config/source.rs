//! `[[pipeline]] source = { kind = ... }`: live sources besides the pipeline's drop folder, run
//! by the service (`pnp-gateway run`, `demo --serve`). Each hands records to the engine and
//! acknowledges them only after they are committed: an MLLP ACK, a poll cursor move, a Kafka
//! offset (docs/sources.md).

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceSpec {
    /// HL7 v2 over MLLP: a listener that ACKs each message after its commit.
    Mllp {
        /// e.g. `0.0.0.0:2575`.
        listen: String,
        /// TLS (PEM), with `tls_key`; without, plain MLLP (loopback or a trusted network only).
        tls_cert: Option<String>,
        tls_key: Option<String>,
        /// CA for client certificates: each sender is then named by its certificate's common
        /// name, and one without a good certificate is refused.
        client_ca: Option<String>,
        /// The largest frame taken (AR beyond, and the connection closed): 16 MiB by default.
        #[serde(default = "default_max_frame")]
        max_frame_bytes: usize,
        #[serde(default = "default_mllp_connections")]
        max_connections: usize,
        /// Seconds a connection may stay silent before it is closed.
        #[serde(default = "default_idle")]
        idle_timeout_secs: u64,
        /// Seconds a frame may take from its first byte to its last (AR beyond, and the
        /// connection closed): a sender trickling a frame cannot hold a connection for ever.
        #[serde(default = "default_frame_timeout")]
        frame_timeout_secs: u64,
        /// Bytes of unfinished frames held at once over all connections (AR `busy` beyond, and
        /// the connection closed): 64 MiB by default, four frames of the largest size.
        #[serde(default = "default_mllp_inflight")]
        max_inflight_bytes: usize,
        /// Takes providers' answers to referrals (RRI^I12, application ACKs) from senders whose
        /// client certificate names a `[[client]]` with a `provider:` scope (docs/closed-loop.md);
        /// needs `client_ca`. Off: such a message is refused (AR), never read as an incident.
        #[serde(default)]
        referral_answers: bool,
    },
    /// A GET on a schedule with a cursor in the URL, paging until a page is empty or short.
    HttpPoll {
        /// With `{cursor}` where the cursor goes (URL-encoded), e.g.
        /// `https://data.example.gov/resource/x.json?$where=date_time > '{cursor}'&$order=date_time&$limit=1000`.
        url: String,
        /// The record field the cursor is read from (the last record's value of a page).
        cursor_field: String,
        /// The cursor before the first page.
        cursor_start: String,
        /// A page shorter than this is the last one for now (the `$limit`).
        page_size: usize,
        #[serde(default = "default_every")]
        every_secs: u64,
        /// A file holding a header line such as `X-App-Token: ...` or `Authorization: Bearer ...`.
        auth_header_file: Option<String>,
        ca_file: Option<String>,
        #[serde(default = "default_timeout_ms")]
        timeout_ms: u64,
    },
    /// A Kafka consumer in a consumer group; each message value is one record.
    Kafka {
        brokers: String,
        topic: String,
        group_id: String,
        /// librdkafka properties (TLS, SASL), as for the Kafka destination.
        #[serde(default)]
        properties: BTreeMap<String, String>,
        /// The SASL password's file (trimmed), instead of `sasl.password` in `properties`
        /// (see `config::sasl`).
        sasl_password_file: Option<String>,
        /// The environment variable holding the SASL password (read before the file).
        sasl_password_env: Option<String>,
    },
}

fn default_max_frame() -> usize {
    16 << 20
}
fn default_mllp_connections() -> usize {
    256
}
fn default_idle() -> u64 {
    300
}
fn default_frame_timeout() -> u64 {
    30
}
fn default_mllp_inflight() -> usize {
    64 << 20
}
fn default_every() -> u64 {
    60
}
fn default_timeout_ms() -> u64 {
    30_000
}

impl SourceSpec {
    pub fn kind(&self) -> &'static str {
        match self {
            SourceSpec::Mllp { .. } => "mllp",
            SourceSpec::HttpPoll { .. } => "http_poll",
            SourceSpec::Kafka { .. } => "kafka",
        }
    }

    /// Checks what can be checked without I/O; messages name the field.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let err = |f: &str, m: &str| Err((f.to_string(), m.to_string()));
        match self {
            SourceSpec::Mllp {
                listen,
                tls_cert,
                tls_key,
                client_ca,
                max_frame_bytes,
                max_connections,
                idle_timeout_secs,
                frame_timeout_secs,
                max_inflight_bytes,
                referral_answers,
            } => {
                if *referral_answers && client_ca.is_none() {
                    return err(
                        "referral_answers",
                        "providers' answers need `client_ca`: a provider is known by its client certificate",
                    );
                }
                if listen.parse::<std::net::SocketAddr>().is_err() {
                    return err("listen", "is not an address such as 0.0.0.0:2575");
                }
                if tls_cert.is_some() != tls_key.is_some() {
                    return err("tls_cert", "`tls_cert` and `tls_key` go together");
                }
                if client_ca.is_some() && tls_cert.is_none() {
                    return err(
                        "client_ca",
                        "client certificates need `tls_cert` and `tls_key`",
                    );
                }
                if *max_frame_bytes == 0
                    || *max_connections == 0
                    || *idle_timeout_secs == 0
                    || *frame_timeout_secs == 0
                {
                    return err(
                        "max_frame_bytes",
                        "max_frame_bytes, max_connections, idle_timeout_secs and frame_timeout_secs must be above 0",
                    );
                }
                if max_inflight_bytes < max_frame_bytes {
                    return err(
                        "max_inflight_bytes",
                        "must hold at least one frame of max_frame_bytes",
                    );
                }
                Ok(())
            }
            SourceSpec::HttpPoll {
                url,
                page_size,
                every_secs,
                ..
            } => {
                if !url.contains("{cursor}") {
                    return err("url", "has no `{cursor}`");
                }
                if !(url.starts_with("https://")
                    || url.starts_with("http://127.0.0.1")
                    || url.starts_with("http://localhost"))
                {
                    return err("url", "must be https:// (plain http only on loopback)");
                }
                if *page_size == 0 || *every_secs == 0 {
                    return err("page_size", "page_size and every_secs must be above 0");
                }
                Ok(())
            }
            SourceSpec::Kafka {
                brokers,
                topic,
                group_id,
                properties,
                sasl_password_file,
                sasl_password_env,
            } => {
                if brokers.is_empty() || topic.is_empty() || group_id.is_empty() {
                    return err("brokers", "brokers, topic and group_id must not be empty");
                }
                if let Some(k) = properties
                    .keys()
                    .find(|k| crate::service::sources::KAFKA_RESERVED.contains(&k.as_str()))
                {
                    return Err((
                        "properties".into(),
                        format!(
                            "`{k}` is set by the gateway (offsets are committed after the store commit)"
                        ),
                    ));
                }
                crate::config::sasl::SaslPassword::validate(
                    sasl_password_file.as_deref(),
                    sasl_password_env.as_deref(),
                    properties,
                )
                .map_err(|e| ("sasl_password_file".to_string(), e))
            }
        }
    }

    /// Paths in the spec resolved against the config's folder.
    pub fn resolve(mut self, base: &Path) -> SourceSpec {
        let join = |p: &mut Option<String>| {
            if let Some(s) = p.as_mut() {
                *s = base.join(&*s).display().to_string();
            }
        };
        match &mut self {
            SourceSpec::Mllp {
                tls_cert,
                tls_key,
                client_ca,
                ..
            } => {
                join(tls_cert);
                join(tls_key);
                join(client_ca);
            }
            SourceSpec::HttpPoll {
                auth_header_file,
                ca_file,
                ..
            } => {
                join(auth_header_file);
                join(ca_file);
            }
            SourceSpec::Kafka {
                sasl_password_file, ..
            } => join(sasl_password_file),
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::SourceSpec;

    #[test]
    fn providers_answers_need_client_certificates() {
        let spec = |extra: &str| -> SourceSpec {
            toml::from_str(&format!(
                "kind = \"mllp\"\nlisten = \"127.0.0.1:2575\"\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\nreferral_answers = true\n{extra}"
            ))
            .unwrap()
        };
        let (field, _) = spec("").validate().unwrap_err();
        assert_eq!(field, "referral_answers");
        assert!(spec("client_ca = \"ca.pem\"").validate().is_ok());
    }
}
