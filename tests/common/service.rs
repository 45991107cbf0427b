//! The service (`demo --serve`, `run`) as the API and live-source tests drive it.

use super::*;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// A line of `r` without its line end (lossily: a line that is not UTF-8 does not end the
/// reading); `None` at the end.
fn read_line(r: &mut impl BufRead) -> Option<String> {
    let mut buf = Vec::new();
    match r.read_until(b'\n', &mut buf) {
        Ok(n) if n > 0 => Some(String::from_utf8_lossy(&buf).trim_end().to_string()),
        _ => None,
    }
}

/// A running service, killed when dropped.
pub struct Service {
    pub child: Child,
    pub url: String,
    pub base: PathBuf,
    /// The MLLP listener of the demo's HL7 pipeline.
    pub mllp: Option<std::net::SocketAddr>,
    /// What `run` printed on standard error since it listened (`demo --serve`'s is not kept).
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Service {
    /// `demo --serve` into `dir`, once its endpoints are written.
    pub fn demo(dir: &Path) -> Service {
        Service::demo_with(dir, &[])
    }

    /// `demo --serve` with more environment variables (test hooks).
    pub fn demo_with(dir: &Path, env: &[(&str, &str)]) -> Service {
        let out = dir.join("demo");
        let child = bin()
            .args(["demo", "--serve", "--listen", "127.0.0.1:0", "--out"])
            .arg(&out)
            .env("PNP_GATEWAY_TODAY", TODAY)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let base = out.join("examples/demo");
        let endpoints = base.join("state/endpoints.json");
        let start = Instant::now();
        while !endpoints.exists() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "demo --serve did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(100));
        let e: Value = serde_json::from_str(&std::fs::read_to_string(&endpoints).unwrap()).unwrap();
        Service {
            child,
            url: e["api"].as_str().unwrap().to_string(),
            base,
            mllp: e["mllp"]["hl7v2"].as_str().map(|a| a.parse().unwrap()),
            log: Default::default(),
        }
    }

    /// `run --config` on a tree an earlier `demo --serve` wrote, once its API listens.
    pub fn run(base: &Path) -> Service {
        Service::run_with(base, &[])
    }

    pub fn run_with(base: &Path, env: &[(&str, &str)]) -> Service {
        let mut child = bin()
            .args(["run", "--config"])
            .arg(base.join("gateway.toml"))
            .env("PNP_GATEWAY_TODAY", TODAY)
            .envs(env.iter().copied())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let wants_mllp = std::fs::read_to_string(base.join("gateway.toml"))
            .unwrap()
            .contains("kind = \"mllp\"");
        let (mut port, mut mllp) = (None, None);
        while port.is_none() || (wants_mllp && mllp.is_none()) {
            let line = read_line(&mut err).expect("run ended before it listened");
            if let Some(rest) = line.strip_prefix("API on https://") {
                port = Some(rest.rsplit(':').next().unwrap().trim().to_string());
            }
            if let Some(rest) = line.strip_prefix("mllp for pipeline hl7v2 on ") {
                mllp = Some(rest.trim().parse().unwrap());
            }
        }
        let port = port.unwrap();
        let log: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
        let keep = log.clone();
        // Drained to the end, so that `run` never blocks writing to it.
        std::thread::spawn(move || {
            while let Some(line) = read_line(&mut err) {
                keep.lock().unwrap().push(line);
            }
        });
        Service {
            child,
            url: format!("https://localhost:{port}"),
            base: base.to_owned(),
            mllp,
            log,
        }
    }

    pub fn cfg(&self) -> PathBuf {
        self.base.join("gateway.toml")
    }

    pub fn token(&self, client: &str) -> String {
        std::fs::read_to_string(self.base.join(format!("state/tokens/{client}.token"))).unwrap()
    }

    /// The Prometheus text of `/metrics`, read with the admin's token as a monitoring system
    /// would.
    #[allow(dead_code)] // not every test binary reads the metrics
    pub fn metrics(&self) -> String {
        let r = self.client(
            "request",
            json!({"path": "/metrics", "token": self.token("admin")}),
        );
        assert_eq!(r["status"], 200, "{r}");
        r["body"].as_str().unwrap().to_string()
    }

    /// One call of the Python client.
    pub fn client(&self, cmd: &str, mut args: Value) -> Value {
        args["url"] = json!(self.url);
        args["ca"] = json!(self.base.join("state/tls/ca.pem"));
        super::peers::run_peer("api_client.py", cmd, &args)
    }

    pub fn sample(&self) -> PathBuf {
        self.base.join("samples/cad_export_2026-03.csv")
    }

    /// Pushes the generic sample export as `client` under `key`.
    pub fn push(&self, client: &str, key: &str) -> Value {
        let file = self.sample().display().to_string();
        self.push_body(client, key, ("body_file", file.into()))
    }

    /// Pushes `body` (CSV) to the generic CAD pipeline under `key`.
    #[allow(dead_code)] // not every test binary pushes a body of its own
    pub fn push_csv(&self, client: &str, key: &str, body: &str) -> Value {
        self.push_body(client, key, ("body", body.into()))
    }

    /// A push to the generic CAD pipeline, its body given as the client script takes it.
    fn push_body(&self, client: &str, key: &str, (field, body): (&str, Value)) -> Value {
        let mut request = json!({
            "method": "POST",
            "path": "/v1/pipelines/generic-cad-csv/exports",
            "token": self.token(client),
            "headers": {"Idempotency-Key": key, "Content-Type": "text/csv"},
        });
        request[field] = body;
        self.client("request", request)
    }

    pub fn post(&self, client: &str, path: &str, content_type: &str, body: &str) -> Value {
        self.client(
            "request",
            json!({
                "method": "POST", "path": path, "token": self.token(client),
                "headers": {"Content-Type": content_type}, "body": body,
            }),
        )
    }

    /// The demo's March export pushed by the agency, and the PRSS's consents and engagements
    /// imported, over the API: the demo's consented referrals are then decided.
    pub fn refer(&self) {
        assert_eq!(self.push("agency", "march")["status"], 202);
        let consents = std::fs::read_to_string(prss_file(&self.cfg(), "consents.json")).unwrap();
        let r = self.post(
            "prss",
            "/v1/consents?accept_incomplete=true",
            "application/json",
            &consents,
        );
        assert_eq!(r["status"], 200, "{r}");
        let engagements =
            std::fs::read_to_string(prss_file(&self.cfg(), "engagements.csv")).unwrap();
        let r = self.post("prss", "/v1/engagements", "text/csv", &engagements);
        assert_eq!(r["status"], 200, "{r}");
    }

    /// [`Service::refer`], then waits until a referral to Prestera is delivered.
    pub fn refer_and_deliver_to_prestera(&self) {
        self.refer();
        self.wait_for("the referral to Prestera delivered", |s| {
            outbox_count(&s.cfg(), "prestera", "delivered") > 0
        });
    }

    pub fn count(&self, sql: &str) -> i64 {
        store_count(&self.cfg(), sql)
    }

    /// Incidents staged from pushed exports (their spool files).
    pub fn pushed_incidents(&self) -> i64 {
        self.count("SELECT count(*) FROM incidents WHERE file LIKE '%/spool/%'")
    }

    pub fn wait_for(&self, what: &str, mut done: impl FnMut(&Service) -> bool) {
        let start = Instant::now();
        while !done(self) {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "timed out: {what}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the service (kill -9), lets `edit` change its config's text, and starts it again
    /// with `run`.
    pub fn restart(mut self, edit: impl FnOnce(String) -> String) -> Service {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        let cfg = self.cfg();
        let text = std::fs::read_to_string(&cfg).unwrap();
        std::fs::write(&cfg, edit(text)).unwrap();
        let base = self.base.clone();
        drop(self);
        Service::run(&base)
    }

    /// Sends HL7 messages (and files of one message each) to the MLLP listener with the Python
    /// peer: one ACK summary per message, `{"code", "control", "err"}` or `{"error"}`.
    pub fn mllp_send(&self, extra: Value) -> Vec<Value> {
        let addr = self.mllp.expect("an MLLP listener");
        let mut args = json!({"host": addr.ip().to_string(), "port": addr.port()});
        for (k, v) in extra.as_object().unwrap() {
            args[k] = v.clone();
        }
        let python = std::env::var("PNP_PEERS_PYTHON").unwrap_or_else(|_| "python3".into());
        let out = std::process::Command::new(python)
            .arg(repo().join("tests/peers/mllp_client.py"))
            .arg(args.to_string())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// The demo's config with Prestera's intake down: its referrals go to a port where nothing
/// listens, and wait in the outbox.
pub fn prestera_down(text: String) -> String {
    let down = text.replace(
        "deliver = { kind = \"file\", folder = \"deliveries/prestera\" }",
        "deliver = { kind = \"webhook\", url = \"https://127.0.0.1:9/intake\", secret_file = \"state/dhhr-research.secret\", timeout_ms = 500 }",
    );
    assert_ne!(down, text, "the demo's Prestera delivery");
    down
}
