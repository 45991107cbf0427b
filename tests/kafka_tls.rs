//! The Kafka source's TLS and SASL settings (`properties`, as for the Kafka destination) reach
//! librdkafka and are used: against a TLS endpoint of the test's own (tests/peers/tls_probe.py,
//! Python's ssl; librdkafka's mock cluster speaks neither TLS nor SASL), the gateway's consumer
//! completes a handshake that names the broker's host and then sends its first Kafka request,
//! and with a CA that did not sign the broker's certificate it refuses the handshake. SASL's
//! settings (SCRAM over TLS) are accepted by `check` and by librdkafka at start; the exchange
//! itself needs a broker and is not tested here.

mod common;

use common::peers::{Process, certs, python_peer};
use common::*;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The probe with `dir`'s server certificate; its port.
fn probe(dir: &Path, log: &Path) -> (Process, u16) {
    python_peer(
        "tls_probe.py",
        &[
            dir.join("server.pem"),
            dir.join("server.key"),
            log.to_path_buf(),
        ],
    )
}

fn gateway(dir: &Path, port: u16, ca: &Path) -> std::path::PathBuf {
    write_adapter(dir, "cad-stream", "kind = \"ndjson\"", SMALL_MAPPING);
    let cfg = dir.join("gateway.toml");
    std::fs::write(
        &cfg,
        format!(
            "[store]\npath = \"state/g.db\"\n[program]\ninclude = [\"overdose\"]\n\
             [[pipeline]]\nadapter = \"cad-stream\"\nfolder = \"drop\"\n\
             source = {{ kind = \"kafka\", brokers = \"localhost:{port}\", topic = \"cad.incidents\", group_id = \"pnp\", \
             properties = {{ \"security.protocol\" = \"sasl_ssl\", \"ssl.ca.location\" = \"{}\", \
             \"sasl.mechanisms\" = \"SCRAM-SHA-512\", \"sasl.username\" = \"pnp-gateway\", \"sasl.password\" = \"not-a-real-secret\" }} }}\n",
            ca.display()
        ),
    )
    .unwrap();
    success(&cli(&["check"], &cfg));
    cfg
}

fn run(cfg: &Path) -> Proc {
    Proc(
        bin()
            .args(["run", "--config"])
            .arg(cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

fn entries(log: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn wait_for(log: &Path, what: &str, f: impl Fn(&[serde_json::Value]) -> bool) {
    let t = Instant::now();
    while !f(&entries(log)) {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}: {:?}",
            entries(log)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_consumer_speaks_tls_to_the_broker_it_trusts_and_refuses_one_it_does_not() {
    let d = tempfile::tempdir().unwrap();
    let (trusted, other) = (d.path().join("ca"), d.path().join("other-ca"));
    std::fs::create_dir_all(&trusted).unwrap();
    std::fs::create_dir_all(&other).unwrap();
    let (ca, _, _) = certs(&trusted);
    certs(&other);

    // The broker's certificate is signed by the CA the gateway trusts.
    let log = d.path().join("probe.log");
    let (_probe, port) = probe(&trusted, &log);
    let gw_dir = d.path().join("gw");
    let cfg = gateway(&gw_dir, port, &ca);
    let gw = run(&cfg);
    wait_for(&log, "a handshake", |e| !e.is_empty());
    let first = &entries(&log)[0];
    assert_eq!(first["handshake"], "ok", "{first}");
    assert_eq!(
        first["sni"], "localhost",
        "the broker's host name is asked for"
    );
    // ApiVersions (18): the first Kafka request, over the TLS connection.
    assert_eq!(first["api_key"], 18, "{first}");
    drop(gw);

    // The broker's certificate is signed by another CA: no handshake completes.
    let log = d.path().join("probe-other.log");
    let (_probe, port) = probe(&other, &log);
    let gw_dir = d.path().join("gw-other");
    let cfg = gateway(&gw_dir, port, &ca);
    let _gw = run(&cfg);
    wait_for(&log, "refused handshakes", |e| e.len() >= 2);
    let all = entries(&log);
    assert!(
        all.iter().all(|e| e["handshake"] == "failed"),
        "an untrusted broker is refused: {all:?}"
    );
    // The client refused the certificate (its alert), not a connection that broke.
    assert!(
        all.iter().any(|e| e["reason"]
            .as_str()
            .is_some_and(|r| r.contains("UNKNOWN_CA"))),
        "{all:?}"
    );
}
