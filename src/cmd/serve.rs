//! `keys token` and `demo --serve`: the service's command-line edges.

use anyhow::{Context, Result, bail};
use pnp_gateway::config::Gateway;
use pnp_gateway::config::server::Credential;
use std::path::Path;
use std::process::ExitCode;

/// Mints a token for `client`, prints it once, keeps only its hash.
pub fn keys_token(gw: &Gateway, client: &str) -> Result<ExitCode> {
    let Some(c) = gw.clients.iter().find(|c| c.id == client) else {
        bail!("no [[client]] with id `{client}` in {}", gw.path.display());
    };
    match &c.credential {
        Credential::TokenSha256File(f) => {
            let token = pnp_gateway::service::tokens::mint_into(f)
                .with_context(|| format!("writing {}", f.display()))?;
            println!("{token}");
            eprintln!(
                "token for `{client}` printed once above; its SHA-256 is in {} (restart the gateway to use it)",
                f.display()
            );
        }
        Credential::TokenSha256(_) => {
            let (token, hash) = pnp_gateway::service::tokens::mint()?;
            println!("{token}");
            eprintln!(
                "token for `{client}` printed once above; put `token_sha256 = \"{hash}\"` in its [[client]] in {} and restart the gateway",
                gw.path.display()
            );
        }
        Credential::CertSubject(_) => {
            bail!(
                "client `{client}` authenticates with its certificate (`cert_subject`), not a token"
            )
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The clients `demo --serve` mints tokens for, as in the demo's gateway.toml.
const DEMO_CLIENTS: [&str; 5] = ["agency", "prss", "prestera", "qrt-kanawha", "admin"];

/// `demo --serve`: the demo tree, then the service with its API on loopback over TLS, until
/// Ctrl-C.
pub fn demo_serve(out: &Path, listen: std::net::SocketAddr) -> Result<ExitCode> {
    let config = pnp_gateway::demo::write_tree(out)
        .with_context(|| format!("writing the demo into {}", out.display()))?;
    // Absolute, so that the printed commands work from any folder.
    let base = std::fs::canonicalize(config.parent().unwrap_or(Path::new(".")))?;
    // The receiver's TLS identity (the demo's private CA) serves the API too.
    let receiver = pnp_gateway::demo::with_receiver(&config)
        .context("starting the demo's local HTTPS receiver")?;
    // The API where asked; the MLLP listener beside it (any free port when the API's is).
    let mllp = if listen.port() == 0 {
        std::net::SocketAddr::new(listen.ip(), 0)
    } else {
        std::net::SocketAddr::new(listen.ip(), 2575)
    };
    // The service's part of the config (the API, its clients, the MLLP listener) is added
    // here, so that the batch demo's config stays a batch config.
    let service = std::fs::read_to_string(base.join("service.toml"))?.replace(
        "listen = \"127.0.0.1:8443\"",
        &format!("listen = \"{listen}\""),
    );
    let text = std::fs::read_to_string(&config)?.replace(
        "folder = \"exports/hl7\"\n",
        &format!("folder = \"exports/hl7\"\nsource = {{ kind = \"mllp\", listen = \"{mllp}\" }}\n"),
    ) + "\n"
        + &service;
    std::fs::write(&config, text)?;
    // The generic export is pushed over the API (the curl line below), not read from its folder.
    let sample = base.join("samples/cad_export_2026-03.csv");
    pnp_gateway::owner_only::create_dir_all(sample.parent().unwrap_or(&base))?;
    std::fs::rename(base.join("exports/generic/cad_export_2026-03.csv"), &sample)?;
    let mut tokens = serde_json::Map::new();
    for c in DEMO_CLIENTS {
        let token = pnp_gateway::service::tokens::mint_into(
            &base.join(format!("state/tokens/{c}.sha256")),
        )?;
        let file = base.join(format!("state/tokens/{c}.token"));
        pnp_gateway::owner_only::write(&file, token.as_bytes())?;
        tokens.insert(c.into(), file.display().to_string().into());
    }
    let gw = crate::load_gateway(&config)?;
    for f in [&gw.vault_key_file, &gw.audit_key_file, &gw.outbox_key_file]
        .into_iter()
        .flatten()
    {
        super::privacy::ensure_key_file(f)?;
    }
    let running = pnp_gateway::service::start(std::sync::Arc::new(gw), Default::default())?;
    let api = running.api.context("the demo config has no [server]")?;
    let url = format!("https://localhost:{}", api.port());
    let ca = base.join("state/tls/ca.pem");
    let endpoints = serde_json::json!({
        "api": url,
        "ca": ca.display().to_string(),
        "tokens": tokens,
        "receiver": format!("https://localhost:{}", receiver.addr.port()),
        "mllp": running
            .sources
            .iter()
            .filter_map(|b| Some((b.pipeline.clone(), serde_json::Value::from(b.addr?.to_string()))))
            .collect::<serde_json::Map<_, _>>(),
    });
    pnp_gateway::owner_only::write(
        &base.join("state/endpoints.json"),
        serde_json::to_string_pretty(&endpoints)?.as_bytes(),
    )?;
    let b = base.display();
    println!(
        "pnp-gateway demo --serve: the API on {url} (TLS by the demo's CA, {b}/state/tls/ca.pem)"
    );
    println!("endpoints and token files: {b}/state/endpoints.json");
    for s in &running.sources {
        if let Some(a) = s.addr {
            println!("{} listener for pipeline `{}` on {a}", s.kind, s.pipeline);
        }
    }
    println!("try:");
    println!(
        "  curl --cacert {b}/state/tls/ca.pem -H \"Authorization: Bearer $(cat {b}/state/tokens/agency.token)\" -H 'Idempotency-Key: march-2026' --data-binary @{b}/samples/cad_export_2026-03.csv {url}/v1/pipelines/generic-cad-csv/exports"
    );
    println!(
        "  curl --cacert {b}/state/tls/ca.pem -H \"Authorization: Bearer $(cat {b}/state/tokens/prss.token)\" -H 'Content-Type: application/json' --data-binary @{b}/prss/consents.json {url}/v1/consents"
    );
    println!(
        "  curl --cacert {b}/state/tls/ca.pem -H \"Authorization: Bearer $(cat {b}/state/tokens/prss.token)\" -H 'Content-Type: text/csv' --data-binary @{b}/prss/engagements.csv {url}/v1/engagements"
    );
    println!(
        "  curl --cacert {b}/state/tls/ca.pem -H \"Authorization: Bearer $(cat {b}/state/tokens/admin.token)\" {url}/readyz"
    );
    // The provider's side of the closed loop (REFERRAL-ID: `pnp-gateway referrals list`).
    println!(
        "  curl --cacert {b}/state/tls/ca.pem -H \"Authorization: Bearer $(cat {b}/state/tokens/prestera.token)\" -X PATCH -H 'Content-Type: application/json-patch+json' -d '[{{\"op\": \"replace\", \"path\": \"/status\", \"value\": \"accepted\"}}]' {url}/fhir/Task/REFERRAL-ID"
    );
    println!("Ctrl-C stops it.");
    running.run_until_signal();
    drop(receiver);
    Ok(ExitCode::SUCCESS)
}
