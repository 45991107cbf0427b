//! Kafka's TLS and SASL settings (`properties`, and the SASL password's `sasl_password_file` or
//! `sasl_password_env`) reach librdkafka and are used. librdkafka's mock cluster speaks neither
//! TLS nor SASL, so the tests stand endpoints of their own where a broker would be:
//! - a TLS endpoint (tests/peers/tls_probe.py, Python's ssl): the gateway's consumer completes a
//!   handshake that names the broker's host and then sends its first Kafka request, and with a
//!   CA that did not sign the broker's certificate it refuses the handshake;
//! - a SASL endpoint (tests/peers/sasl_probe.py: kafka-python's protocol classes answer
//!   ApiVersions, SaslHandshake and SaslAuthenticate, `scramp` checks SCRAM): the consumer (over
//!   TLS, SCRAM-SHA-512, the password from a file) and the producer (SCRAM-SHA-256, the password
//!   from an environment variable) authenticate with the configured password, and one that is
//!   wrong is refused; the password is written nowhere, in the store or in what the gateway
//!   prints. Neither endpoint is a broker: nothing is consumed or delivered through them.

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

/// A gateway in `dir` consuming from the broker at localhost:`port` over SASL_SSL with
/// SCRAM-SHA-512, trusting `ca`; `password` is the source's setting that gives the password
/// (`sasl_password_file = ...`, or `"sasl.password" = ...` among the properties).
fn consumer_config(dir: &Path, port: u16, ca: &Path, password: &str) -> std::path::PathBuf {
    write_adapter(dir, "cad-stream", "kind = \"ndjson\"", SMALL_MAPPING);
    let (setting, property) = match password.strip_prefix("\"sasl.password\"") {
        Some(_) => ("", format!(", {password}")),
        None => (password, String::new()),
    };
    let cfg = dir.join("gateway.toml");
    std::fs::write(
        &cfg,
        format!(
            "[store]\npath = \"state/g.db\"\n[program]\ninclude = [\"overdose\"]\n\
             [[pipeline]]\nadapter = \"cad-stream\"\nfolder = \"drop\"\n\
             source = {{ kind = \"kafka\", brokers = \"localhost:{port}\", topic = \"cad.incidents\", group_id = \"pnp\", {setting} \
             properties = {{ \"security.protocol\" = \"sasl_ssl\", \"ssl.ca.location\" = \"{}\", \
             \"sasl.mechanisms\" = \"SCRAM-SHA-512\", \"sasl.username\" = \"pnp-gateway\"{property} }} }}\n",
            ca.display()
        ),
    )
    .unwrap();
    cfg
}

fn gateway(dir: &Path, port: u16, ca: &Path) -> std::path::PathBuf {
    let cfg = consumer_config(dir, port, ca, "\"sasl.password\" = \"not-a-real-secret\"");
    // The password written in the config works, with a warning that does not quote it.
    let out = cli(&["check"], &cfg);
    success(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning") && err.contains("sasl_password_file"),
        "{err}"
    );
    assert!(!err.contains("not-a-real-secret"), "{err}");
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

/// The SASL endpoint, knowing the user `pnp-gateway` and `password`; TLS with `tls`'s
/// server certificate when given.
fn sasl_probe(log: &Path, password: &str, tls: Option<&Path>) -> (Process, u16) {
    let mut args = vec![
        "pnp-gateway".to_string(),
        password.to_string(),
        log.display().to_string(),
    ];
    if let Some(dir) = tls {
        args.push(dir.join("server.pem").display().to_string());
        args.push(dir.join("server.key").display().to_string());
    }
    python_peer("sasl_probe.py", &args)
}

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// `run` with its standard error kept in `err` and `env` set.
fn run_logged(cfg: &Path, err: &Path, env: &[(&str, &str)]) -> Proc {
    Proc(
        bin()
            .args(["run", "--config"])
            .arg(cfg)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(err).unwrap())
            .spawn()
            .unwrap(),
    )
}

/// The authentication outcomes the endpoint recorded.
fn outcomes(log: &Path) -> Vec<serde_json::Value> {
    entries(log)
        .into_iter()
        .filter(|e| e.get("auth").is_some())
        .collect()
}

/// Neither the store `db` (which must exist) nor its WAL nor `text` holds `password`.
fn assert_nowhere(db: &Path, text: &str, password: &str) {
    assert!(!text.contains(password), "the password was printed");
    assert!(db.exists(), "no store at {}", db.display());
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    for f in [db.to_path_buf(), std::path::PathBuf::from(wal)] {
        if let Ok(b) = std::fs::read(&f) {
            assert!(
                !b.windows(password.len()).any(|w| w == password.as_bytes()),
                "the password is in {}",
                f.display()
            );
        }
    }
}

#[test]
fn the_consumer_authenticates_with_scram_over_tls_with_the_password_from_its_file() {
    const PASSWORD: &str = "consumer-pw-5f3a9c1e";
    let d = tempfile::tempdir().unwrap();
    let tls = d.path().join("ca");
    std::fs::create_dir_all(&tls).unwrap();
    let (ca, _, _) = certs(&tls);
    let log = d.path().join("sasl.log");
    let (_probe, port) = sasl_probe(&log, PASSWORD, Some(&tls));

    let consumer = |name: &str, password: &str| {
        let dir = d.path().join(name);
        std::fs::create_dir_all(dir.join("secrets")).unwrap();
        std::fs::write(dir.join("secrets/kafka.pw"), format!("{password}\n")).unwrap();
        let cfg = consumer_config(
            &dir,
            port,
            &ca,
            "sasl_password_file = \"secrets/kafka.pw\",",
        );
        // Written 0644 (the umask's usual): `check` names the file, never what it holds.
        let pw = dir.join("secrets/kafka.pw");
        set_mode(&pw, 0o644);
        let out = cli(&["check"], &cfg);
        success(&out);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("warning: {} (a SASL password)", pw.display())),
            "{err}"
        );
        assert!(!err.contains(password), "{err}");
        set_mode(&pw, 0o600);
        let out = cli(&["check"], &cfg);
        assert!(!String::from_utf8_lossy(&out.stderr).contains("warning"));
        (dir, cfg)
    };

    // The right password: the exchange succeeds, and the client goes on with Kafka requests.
    let (dir, cfg) = consumer("gw", PASSWORD);
    let err = d.path().join("gw.err");
    let gw = run_logged(&cfg, &err, &[]);
    wait_for(&log, "an authenticated request", |e| {
        e.iter().any(|e| e["authenticated"] == true)
    });
    drop(gw);
    let first = &outcomes(&log)[0];
    assert_eq!(first["mechanism"], "SCRAM-SHA-512", "{first}");
    assert_eq!(first["user"], "pnp-gateway", "{first}");
    assert_eq!(first["auth"], "ok", "{first}");
    assert_nowhere(
        &dir.join("state/g.db"),
        &std::fs::read_to_string(&err).unwrap(),
        PASSWORD,
    );

    // A wrong password: the endpoint refuses it, and nothing goes on.
    std::fs::remove_file(&log).unwrap();
    let (dir, cfg) = consumer("gw-wrong", "not-the-password");
    let err = d.path().join("gw-wrong.err");
    let gw = run_logged(&cfg, &err, &[]);
    wait_for(&log, "a refused exchange", |e| {
        e.iter().any(|e| e["auth"] == "failed")
    });
    drop(gw);
    let all = entries(&log);
    assert!(
        all.iter().all(|e| e["auth"] == "failed"),
        "only refusals: {all:?}"
    );
    assert_nowhere(
        &dir.join("state/g.db"),
        &std::fs::read_to_string(&err).unwrap(),
        "not-the-password",
    );
}

#[test]
fn the_producer_authenticates_with_the_password_from_its_environment_variable() {
    const PASSWORD: &str = "producer-pw-0b7e44d2";
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("sasl.log");
    let (_probe, port) = sasl_probe(&log, PASSWORD, None);
    let cfg = pnp_gateway::demo::write_tree(&d.path().join("demo")).unwrap();
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "deliver = { kind = \"file\", folder = \"deliveries/dhhr-program\" }",
        &format!(
            "deliver = {{ kind = \"kafka\", brokers = \"127.0.0.1:{port}\", topic = \"pnp.program\", timeout_ms = 2000, \
             sasl_password_env = \"PNP_TEST_KAFKA_PASSWORD\", \
             properties = {{ \"security.protocol\" = \"sasl_plaintext\", \"sasl.mechanisms\" = \"SCRAM-SHA-256\", \"sasl.username\" = \"pnp-gateway\" }} }}"
        ),
    );
    std::fs::write(&cfg, text).unwrap();
    success(&cli(&["check"], &cfg));
    success(&cli(&["keys", "init"], &cfg));
    let dir = cfg.parent().unwrap().to_path_buf();
    let run_once = |password: &str| {
        bin()
            .args(["run", "--once", "--config"])
            .arg(&cfg)
            .env("PNP_GATEWAY_TODAY", TODAY)
            .env("PNP_TEST_KAFKA_PASSWORD", password)
            .output()
            .unwrap()
    };

    // The right password: the exchange succeeds. The endpoint is not a broker, so the
    // payloads stay queued for a retry, as with a broker that does not answer.
    let out = run_once(PASSWORD);
    let first = &outcomes(&log)[0];
    assert_eq!(first["mechanism"], "SCRAM-SHA-256", "{first}");
    assert_eq!(first["user"], "pnp-gateway", "{first}");
    assert_eq!(first["auth"], "ok", "{first}");
    assert!(entries(&log).iter().any(|e| e["authenticated"] == true));
    assert_eq!(outbox_count(&cfg, "dhhr-program", "delivered"), 0);
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_nowhere(&dir.join("state/gateway.db"), &printed, PASSWORD);

    // A wrong password: refused, and the retry's reason says so.
    std::fs::remove_file(&log).unwrap();
    let out = run_once("not-the-password");
    let all = outcomes(&log);
    assert!(
        !all.is_empty() && all.iter().all(|e| e["auth"] == "failed"),
        "{all:?}"
    );
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_nowhere(&dir.join("state/gateway.db"), &printed, "not-the-password");
    // The warning and the rows' reason name the refused login, not only "all brokers down".
    assert!(printed.contains("SASL authentication error"), "{printed}");
    assert_eq!(
        store_count(
            &cfg,
            "SELECT count(*) FROM outbox WHERE destination = 'dhhr-program' AND status = 'pending' AND last_error LIKE '%SASL authentication error%'"
        ),
        DEMO_ELIGIBLE as i64
    );
}

#[test]
fn a_variable_that_is_not_set_is_named_and_the_rows_wait() {
    let d = tempfile::tempdir().unwrap();
    let cfg = pnp_gateway::demo::write_tree(&d.path().join("demo")).unwrap();
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "deliver = { kind = \"file\", folder = \"deliveries/dhhr-program\" }",
        "deliver = { kind = \"kafka\", brokers = \"127.0.0.1:9\", topic = \"pnp.program\", timeout_ms = 500, \
         sasl_password_env = \"PNP_TEST_KAFKA_UNSET\", \
         properties = { \"security.protocol\" = \"sasl_plaintext\", \"sasl.mechanisms\" = \"PLAIN\", \"sasl.username\" = \"pnp-gateway\" } }",
    );
    std::fs::write(&cfg, text).unwrap();
    success(&cli(&["keys", "init"], &cfg));
    let out = cli(&["run", "--once"], &cfg);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("PNP_TEST_KAFKA_UNSET"),
        "the warning names the variable"
    );
    assert_eq!(outbox_count(&cfg, "dhhr-program", "delivered"), 0);
    assert_eq!(
        store_count(
            &cfg,
            "SELECT count(*) FROM outbox WHERE destination = 'dhhr-program' AND status = 'pending' AND last_error LIKE '%PNP_TEST_KAFKA_UNSET%'"
        ),
        DEMO_ELIGIBLE as i64
    );
}
