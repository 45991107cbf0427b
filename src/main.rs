//! The `pnp-gateway` command line. Parses arguments and calls the library; nothing else.

mod cmd;

use anyhow::{Result, bail};
use chrono::NaiveDate;
use clap::{Parser, Subcommand};
use pnp_gateway::config::{ConfigErrors, Gateway};
use pnp_gateway::store::Store;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// mimalloc instead of glibc's allocator: a run allocates and frees many small strings per
/// record (fields, statements' parameters, payloads). Measured on `run --once` over 100,000 CAD
/// rows (scripts/bench-e2e.sh's setup, store on tmpfs, alternated with glibc's in one run):
/// 11.1-11.4 -> 9.4-9.8 user CPU-seconds, peak RSS 92 -> 104 MiB; `normalize` 1-2% faster.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "pnp-gateway",
    version,
    about = "Police and Peers integration gateway: CAD/RMS exports in, canonical incidents out"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate the config, its adapters, their mappings and the mappings' examples.
    Check {
        /// gateway.toml; without it, every adapter in --adapters-dir is checked.
        #[arg(long, env = "PNP_GATEWAY_CONFIG")]
        config: Option<PathBuf>,
        #[arg(long, default_value = "adapters")]
        adapters_dir: PathBuf,
    },
    /// Print canonical incidents as JSON lines (stdout); rejected records as JSON lines (stderr).
    Normalize {
        /// An adapter name (looked up in --adapters-dir) or an adapter file.
        #[arg(long)]
        adapter: String,
        #[arg(long, default_value = "adapters")]
        adapters_dir: PathBuf,
        /// Take the program's eligibility rules from this gateway.toml.
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
    },
    /// Run the configured pipelines: read drop folders into the store.
    Run {
        #[arg(long, env = "PNP_GATEWAY_CONFIG", default_value = "pnp-gateway.toml")]
        config: PathBuf,
        /// Drain the drop folders once and exit.
        #[arg(long)]
        once: bool,
        /// Stop after this many records (the rest is read by the next run).
        #[arg(long)]
        max_records: Option<u64>,
        /// While watching, serve Prometheus metrics (counts only) at http://ADDR/metrics.
        #[arg(long)]
        metrics_listen: Option<std::net::SocketAddr>,
    },
    /// Rejected records and why.
    Quarantine {
        #[command(subcommand)]
        command: QuarantineCommand,
    },
    /// The consent registry (42 CFR Part 2 consents).
    Consent {
        #[command(subcommand)]
        command: ConsentCommand,
    },
    /// PRSS engagements: who was engaged, with which consent, for which service and provider.
    Engagement {
        #[command(subcommand)]
        command: EngagementCommand,
    },
    /// The audit trail of disclosure decisions.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// For every incident and destination: the decision, its reasons and the exact payload.
    /// Sends nothing; works on a temporary copy of the store.
    Preview {
        #[arg(long, env = "PNP_GATEWAY_CONFIG", default_value = "pnp-gateway.toml")]
        config: PathBuf,
        /// The adapter for all inputs (default: the pipeline whose pattern matches each file).
        #[arg(long)]
        adapter: Option<String>,
        /// Decide as of this date (YYYY-MM-DD; default today in America/New_York).
        #[arg(long)]
        today: Option<NaiveDate>,
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
    },
    /// The durable outbox: what waits, what was delivered, what was dead-lettered.
    Outbox {
        #[command(subcommand)]
        command: OutboxCommand,
    },
    /// Consented referrals and what their providers reported (the closed loop).
    Referrals {
        #[command(subcommand)]
        command: ReferralsCommand,
    },
    /// The vault and audit secrets.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Run the reference HTTPS receiver for `webhook` destinations: checks signatures, drops
    /// repeated idempotency keys, appends payloads to an NDJSON file. A test peer and template.
    Receive {
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: std::net::SocketAddr,
        /// PEM certificate chain; with --key. Without both, a private CA and a certificate are
        /// made in --tls-dir, and kept there for the next start.
        #[arg(long)]
        cert: Option<PathBuf>,
        #[arg(long)]
        key: Option<PathBuf>,
        #[arg(long, default_value = "receiver-tls")]
        tls_dir: PathBuf,
        /// The shared signing secret (the destination's `secret_file`).
        #[arg(long)]
        secret_file: PathBuf,
        /// Where accepted payloads are appended, one JSON line each.
        #[arg(long, default_value = "received.ndjson")]
        out: PathBuf,
        #[command(flatten)]
        limits: cmd::receive::LimitArgs,
    },
    /// Scrub narratives: one per stdin line (JSON `{"text": ...}` or plain text), one JSON line
    /// out each: `{"text": scrubbed, "spans": [{"start", "end", "type"}]}` (character offsets).
    Scrub {
        /// `safe-words` removes every word not known to be safe; `patterns` keeps ordinary words.
        #[arg(long, default_value = "safe-words", value_parser = ["safe-words", "patterns"])]
        mode: String,
        /// A JSON file of values known to identify someone: {"names": [...], "phones": [...],
        /// "emails", "streets", "dates", "ids", "places"}; each goes in all its spellings.
        #[arg(long)]
        known: Option<PathBuf>,
    },
    /// The monthly program report (suppressed counts, for DHHR) from the store.
    Report {
        #[arg(long, env = "PNP_GATEWAY_CONFIG", default_value = "pnp-gateway.toml")]
        config: PathBuf,
        /// The month, YYYY-MM.
        #[arg(long)]
        month: String,
        #[arg(long, value_enum, default_value = "html")]
        format: cmd::report::Format,
        /// Write the report here (default: stdout).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Run the embedded demo: sample exports through the demo config, with a summary.
    Demo {
        /// Folder to write the demo's config, exports and store into.
        #[arg(long, default_value = "pnp-demo")]
        out: PathBuf,
        /// Run the demo as a service: its HTTPS API on loopback (tokens in state/tokens/,
        /// addresses in state/endpoints.json) until Ctrl-C.
        #[arg(long)]
        serve: bool,
        /// With --serve: the API's address (port 0 picks a free one).
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: std::net::SocketAddr,
    },
}

#[derive(Subcommand)]
enum ConsentCommand {
    /// Import consents from CSV, JSON or FHIR R4: the good ones, each bad one reported.
    Import {
        file: PathBuf,
        #[arg(long, env = "PNP_GATEWAY_CONFIG", default_value = "pnp-gateway.toml")]
        config: PathBuf,
        /// Record consents that lack 2.31 elements (they will permit nothing).
        #[arg(long)]
        accept_incomplete: bool,
        /// Import nothing if any consent is bad.
        #[arg(long)]
        atomic: bool,
        #[arg(long)]
        today: Option<NaiveDate>,
    },
    /// Record a written revocation.
    Revoke {
        id: String,
        /// The date it takes effect (default today).
        #[arg(long)]
        on: Option<NaiveDate>,
        #[arg(long, env = "PNP_GATEWAY_CONFIG", default_value = "pnp-gateway.toml")]
        config: PathBuf,
    },
    /// List consents and their state.
    List {
        #[arg(long, env = "PNP_GATEWAY_CONFIG", default_value = "pnp-gateway.toml")]
        config: PathBuf,
        #[arg(long)]
        today: Option<NaiveDate>,
    },
}

#[derive(Subcommand)]
enum EngagementCommand {
    /// Import engagements from CSV or JSON: the good ones, each bad one reported; one whose
    /// incident has not been read yet is kept pending.
    Import {
        file: PathBuf,
        #[arg(long, env = "PNP_GATEWAY_CONFIG", default_value = "pnp-gateway.toml")]
        config: PathBuf,
        /// Import nothing if any engagement is bad.
        #[arg(long)]
        atomic: bool,
    },
    /// List engagements: id, incident, provider, joined or pending.
    List {
        #[arg(long, env = "PNP_GATEWAY_CONFIG", default_value = "pnp-gateway.toml")]
        config: PathBuf,
        /// Only those whose incident has not been read yet.
        #[arg(long)]
        pending: bool,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the hash chain: fails on an edited, removed or reordered entry.
    Verify {
        #[arg(long, env = "PNP_GATEWAY_CONFIG", default_value = "pnp-gateway.toml")]
        config: PathBuf,
    },
    /// A person's disclosures to every destination (the accounting of 42 CFR 2.24), by the
    /// vault id the audit records or by the token any recipient holds.
    Disclosures {
        #[arg(long)]
        person: String,
        #[arg(long, env = "PNP_GATEWAY_CONFIG", default_value = "pnp-gateway.toml")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum ReferralsCommand {
    /// Every referral: id, destination, status, last change (JSON lines with --json).
    List {
        /// Only referrals in this status (queued, sent, accepted, rejected, in-progress,
        /// on-hold, completed, failed, cancelled).
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        destination: Option<String>,
        /// Only referrals still `sent` after their destination's `accept_within`.
        #[arg(long)]
        overdue: bool,
        #[arg(long)]
        json: bool,
        #[arg(long, env = "PNP_GATEWAY_CONFIG", default_value = "pnp-gateway.toml")]
        config: PathBuf,
    },
    /// One referral's timeline: who reported which status when (no identifying value).
    Show {
        id: String,
        #[arg(long, env = "PNP_GATEWAY_CONFIG", default_value = "pnp-gateway.toml")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum OutboxCommand {
    /// Rows with their status, attempts and last error (never payloads).
    List {
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        destination: Option<String>,
        #[arg(long, env = "PNP_GATEWAY_CONFIG", default_value = "pnp-gateway.toml")]
        config: PathBuf,
    },
    /// One row's metadata (no PHI).
    Show {
        id: i64,
        #[arg(long, env = "PNP_GATEWAY_CONFIG", default_value = "pnp-gateway.toml")]
        config: PathBuf,
    },
    /// Dead-lettered rows.
    Dead {
        #[arg(long, env = "PNP_GATEWAY_CONFIG", default_value = "pnp-gateway.toml")]
        config: PathBuf,
    },
    /// Queue rows again (linked to the originals in the audit trail), optionally elsewhere.
    Replay {
        #[arg(required = true)]
        ids: Vec<i64>,
        #[arg(long)]
        to: Option<String>,
        #[arg(long, env = "PNP_GATEWAY_CONFIG", default_value = "pnp-gateway.toml")]
        config: PathBuf,
    },
    /// Purge the payloads of delivered and withdrawn rows now.
    Purge {
        #[arg(long, env = "PNP_GATEWAY_CONFIG", default_value = "pnp-gateway.toml")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create the key files named in [keys] (random; never overwrites).
    Init {
        #[arg(long, env = "PNP_GATEWAY_CONFIG", default_value = "pnp-gateway.toml")]
        config: PathBuf,
    },
    /// Mint an API token for a [[client]]: printed once, only its SHA-256 is kept (in the
    /// client's `token_sha256_file`, or printed for its `token_sha256`). Restart the gateway to
    /// use it; the client's earlier token stops working.
    Token {
        /// The client's id in gateway.toml.
        client: String,
        #[arg(long, env = "PNP_GATEWAY_CONFIG", default_value = "pnp-gateway.toml")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum QuarantineCommand {
    /// List rejected records with file, record, line and reason.
    List {
        #[arg(long, env = "PNP_GATEWAY_CONFIG", default_value = "pnp-gateway.toml")]
        config: PathBuf,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Read a file set aside as `poison_file` again from its start at the next pass.
    Release {
        /// The file as `quarantine list` names it.
        file: String,
        #[arg(long, env = "PNP_GATEWAY_CONFIG", default_value = "pnp-gateway.toml")]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = match cli.command {
        Command::Run { .. } => "info",
        Command::Demo { serve: true, .. } => "info",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_writer(|| cmd::progress::LogWriter)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .init();
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cmd: Command) -> Result<ExitCode> {
    match cmd {
        Command::Check {
            config,
            adapters_dir,
        } => cmd::inspect::check(config.as_deref(), &adapters_dir),
        Command::Normalize {
            adapter,
            adapters_dir,
            config,
            inputs,
        } => cmd::inspect::normalize(&adapter, &adapters_dir, config.as_deref(), &inputs),
        Command::Run {
            config,
            once,
            max_records,
            metrics_listen,
        } => {
            let gw = load_gateway(&config)?;
            if !once && max_records.is_none() {
                cmd::run::serve(gw, metrics_listen)?;
                return Ok(ExitCode::SUCCESS);
            }
            let (stats, pass) = cmd::run::run(&gw, max_records, true)?;
            cmd::run::print_summary(&gw, &stats, pass.as_ref())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Quarantine {
            command: QuarantineCommand::List { config, json },
        } => cmd::inspect::quarantine_list(&config, json),
        Command::Quarantine {
            command: QuarantineCommand::Release { file, config },
        } => {
            let gw = load_gateway(&config)?;
            if !Store::open(&gw.store_path)?.release_set_aside(&file)? {
                anyhow::bail!("no file set aside under the name {file} (see `quarantine list`)");
            }
            println!("{file}: released; it is read again from its start at the next pass");
            Ok(ExitCode::SUCCESS)
        }
        Command::Consent { command } => match command {
            ConsentCommand::Import {
                file,
                config,
                accept_incomplete,
                atomic,
                today,
            } => cmd::imports::consent_import(
                &load_gateway(&config)?,
                &file,
                accept_incomplete,
                atomic,
                today.unwrap_or_else(cmd::privacy::today),
            ),
            ConsentCommand::Revoke { id, on, config } => cmd::privacy::consent_revoke(
                &load_gateway(&config)?,
                &id,
                on.unwrap_or_else(cmd::privacy::today),
            ),
            ConsentCommand::List { config, today } => cmd::privacy::consent_list(
                &load_gateway(&config)?,
                today.unwrap_or_else(cmd::privacy::today),
            ),
        },
        Command::Engagement { command } => match command {
            EngagementCommand::Import {
                file,
                config,
                atomic,
            } => cmd::imports::engagement_import(&load_gateway(&config)?, &file, atomic),
            EngagementCommand::List { config, pending } => {
                cmd::imports::engagement_list(&load_gateway(&config)?, pending)
            }
        },
        Command::Audit { command } => match command {
            AuditCommand::Verify { config } => cmd::privacy::audit_verify(&load_gateway(&config)?),
            AuditCommand::Disclosures { person, config } => {
                cmd::privacy::audit_disclosures(&load_gateway(&config)?, &person)
            }
        },
        Command::Preview {
            config,
            adapter,
            today,
            inputs,
        } => cmd::privacy::preview(
            &load_gateway(&config)?,
            adapter.as_deref(),
            &inputs,
            today.unwrap_or_else(cmd::privacy::today),
        ),
        Command::Keys {
            command: KeysCommand::Init { config },
        } => cmd::privacy::keys_init(&load_gateway(&config)?),
        Command::Keys {
            command: KeysCommand::Token { client, config },
        } => cmd::serve::keys_token(&load_gateway(&config)?, &client),
        Command::Referrals { command } => match command {
            ReferralsCommand::List {
                status,
                destination,
                overdue,
                json,
                config,
            } => cmd::referrals::list(
                &load_gateway(&config)?,
                status.as_deref(),
                destination.as_deref(),
                overdue,
                json,
            ),
            ReferralsCommand::Show { id, config } => {
                cmd::referrals::show(&load_gateway(&config)?, &id)
            }
        },
        Command::Outbox { command } => match command {
            OutboxCommand::List {
                status,
                destination,
                config,
            } => cmd::outbox::list(
                &load_gateway(&config)?,
                status.as_deref(),
                destination.as_deref(),
            ),
            OutboxCommand::Show { id, config } => cmd::outbox::show(&load_gateway(&config)?, id),
            OutboxCommand::Dead { config } => {
                cmd::outbox::list(&load_gateway(&config)?, Some("dead"), None)
            }
            OutboxCommand::Replay { ids, to, config } => {
                cmd::outbox::replay(&load_gateway(&config)?, &ids, to.as_deref())
            }
            OutboxCommand::Purge { config } => cmd::outbox::purge(&load_gateway(&config)?),
        },
        Command::Receive {
            listen,
            cert,
            key,
            tls_dir,
            secret_file,
            out,
            limits,
        } => cmd::receive::receive(
            listen,
            cert.as_deref(),
            key.as_deref(),
            &tls_dir,
            &secret_file,
            &out,
            limits.into(),
        ),
        Command::Scrub { mode, known } => cmd::scrub::scrub(&mode, known.as_deref()),
        Command::Demo { out, serve, listen } => {
            if serve {
                cmd::serve::demo_serve(&out, listen)
            } else {
                cmd::demo::demo(&out)
            }
        }
        Command::Report {
            config,
            month,
            format,
            out,
        } => cmd::report::report(&load_gateway(&config)?, &month, format, out.as_deref()),
    }
}

pub(crate) fn load_gateway(path: &Path) -> Result<Gateway> {
    if !path.exists() {
        bail!(
            "no config at {} (give --config, or try `pnp-gateway demo`)",
            path.display()
        );
    }
    Gateway::load(path).map_err(|e| anyhow::anyhow!("{e}"))
}

pub(crate) fn print_errors(e: &ConfigErrors) {
    for err in &e.0 {
        eprintln!("error: {err}");
    }
}
