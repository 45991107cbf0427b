//! Independent peers the tests talk to: an HTTPS receiver written in Python
//! (tests/peers/webhook_receiver.py) behind a private CA made with the openssl CLI.

use super::repo;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A peer's process, killed when dropped.
pub struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a peer that prints `PORT <n>` once it listens.
fn spawn(cmd: &mut Command) -> (Process, u16) {
    let mut child = cmd.stdout(Stdio::piped()).spawn().expect("the peer starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .strip_prefix("PORT ")
        .expect("the peer prints its port")
        .parse()
        .unwrap();
    (Process(child), port)
}

/// The Python the peers run with (scripts/test.sh sets up a venv with their packages).
pub fn python() -> String {
    std::env::var("PNP_PEERS_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Starts the Python peer tests/peers/SCRIPT with `args`; it prints `PORT <n>` once it listens.
pub fn python_peer<S: AsRef<std::ffi::OsStr>>(script: &str, args: &[S]) -> (Process, u16) {
    spawn(
        Command::new(python())
            .arg(repo().join("tests/peers").join(script))
            .args(args),
    )
}

/// Runs the Python peer tests/peers/SCRIPT once with a command and its JSON arguments; what it
/// printed, as JSON, once it succeeded.
pub fn run_peer(script: &str, cmd: &str, args: &serde_json::Value) -> serde_json::Value {
    let out = Command::new(python())
        .arg(repo().join("tests/peers").join(script))
        .arg(cmd)
        .arg(args.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script} {cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// JSON lines a peer recorded.
fn recorded(log: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

pub struct Receiver {
    _process: Process,
    pub port: u16,
    log: PathBuf,
    mode: PathBuf,
}

impl Receiver {
    pub fn set(&self, status: u16) {
        std::fs::write(&self.mode, status.to_string()).unwrap();
    }

    /// Answers `status` with `Retry-After: secs`.
    pub fn set_retry_after(&self, status: u16, secs: u64) {
        std::fs::write(&self.mode, format!("{status} {secs}")).unwrap();
    }

    /// Records each request and answers nothing until [`Receiver::set`] (its status is 0 in
    /// [`Receiver::requests`]).
    pub fn hold(&self) {
        std::fs::write(&self.mode, "hold").unwrap();
    }

    pub fn requests(&self) -> Vec<serde_json::Value> {
        recorded(&self.log)
    }
}

/// A private CA and a server certificate for localhost, made with the openssl CLI.
pub fn certs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let o = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(
            o.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=pnp test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}

pub fn receiver(dir: &Path, secret: &Path) -> Receiver {
    let (_, cert, key) = certs(dir);
    let log = dir.join("requests.ndjson");
    let mode = dir.join("mode");
    std::fs::write(&mode, "200").unwrap();
    let (process, port) = spawn(
        Command::new("python3")
            .arg(repo().join("tests/peers/webhook_receiver.py"))
            .args([&cert, &key, &secret.to_path_buf(), &log, &mode]),
    );
    Receiver {
        _process: process,
        port,
        log,
        mode,
    }
}

/// The MLLP peer (tests/peers/mllp_peer.py: python-hl7's MLLP server, hl7apy validation).
pub struct MllpPeer {
    _process: Process,
    pub port: u16,
    log: PathBuf,
    mode: PathBuf,
}

impl MllpPeer {
    pub fn ack_with(&self, code: &str) {
        std::fs::write(&self.mode, code).unwrap();
    }

    pub fn messages(&self) -> Vec<serde_json::Value> {
        recorded(&self.log)
    }
}

/// The MLLP peer; with `tls`, over TLS with a certificate from [`certs`] (its CA in
/// `dir/ca.pem`).
pub fn mllp_peer(dir: &Path, python: &str, tls: bool) -> MllpPeer {
    let log = dir.join("mllp.ndjson");
    let mode = dir.join("ack");
    std::fs::write(&mode, "AA").unwrap();
    let mut cmd = Command::new(python);
    cmd.arg(repo().join("tests/peers/mllp_peer.py"))
        .args([&log, &mode]);
    if tls {
        let (_, cert, key) = certs(dir);
        cmd.args([cert, key]);
    }
    let (process, port) = spawn(&mut cmd);
    MllpPeer {
        _process: process,
        port,
        log,
        mode,
    }
}

/// The demo tree (keys made, exports read) with one of its file destinations (`dest`: prestera,
/// qrt-kanawha, dhhr-program) delivering over HTTPS to a fresh receiver instead: `kind` is
/// `webhook` or `fhir`, then any more keys of the deliver table after a comma (`webhook,
/// batch_max = 10`), `path` the URL path, `extra` more TOML for that destination (a `retry` table, say).
pub fn demo_with_https(
    dir: &Path,
    dest: &str,
    kind: &str,
    path: &str,
    extra: &str,
) -> (Receiver, PathBuf) {
    let secret = dir.join(format!("{dest}.secret"));
    std::fs::write(&secret, "a-shared-secret-for-the-receiver-0123456789\n").unwrap();
    let rx = receiver(dir, &secret);
    let (kind, more) = kind.split_once(',').unwrap_or((kind, ""));
    let more = if more.is_empty() {
        String::new()
    } else {
        format!(",{more}")
    };
    let cfg = pnp_gateway::demo::write_tree(&dir.join("demo")).unwrap();
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        &format!("deliver = {{ kind = \"file\", folder = \"deliveries/{dest}\" }}"),
        &format!(
            "deliver = {{ kind = \"{kind}\", url = \"https://localhost:{}{path}\", secret_file = \"{}\", ca_file = \"{}\"{more} }}\n{extra}",
            rx.port,
            secret.display(),
            dir.join("ca.pem").display()
        ),
    );
    std::fs::write(&cfg, text).unwrap();
    super::success(&super::cli(&["check"], &cfg));
    super::success(&super::cli(&["keys", "init"], &cfg));
    super::success(&super::cli(&["run", "--once"], &cfg));
    (rx, cfg)
}

/// Runs tests/peers/fhir_validate.py (fhir.resources R4 models and the official R4 JSON Schema)
/// on `resource`, written into `dir` as `name`; with `types`, the validator also checks that
/// the Bundle holds resources of those types. `Ok` or the validator's output.
#[allow(dead_code)]
pub fn validate_fhir(
    dir: &Path,
    name: &str,
    resource: &serde_json::Value,
    types: &[&str],
) -> Result<(), String> {
    let python = std::env::var("PNP_PEERS_PYTHON").unwrap_or_else(|_| "python3".into());
    let schema = std::env::var("PNP_FHIR_SCHEMA")
        .expect("PNP_FHIR_SCHEMA is not set: run the tests with scripts/test.sh, which fetches the R4 schema and the Python peers");
    let f = dir.join(name);
    std::fs::write(&f, serde_json::to_vec(resource).unwrap()).unwrap();
    let out = Command::new(&python)
        .arg(repo().join("tests/peers/fhir_validate.py"))
        .arg(&f)
        .arg(&schema)
        .args(types)
        .output()
        .expect("python");
    let said = String::from_utf8_lossy(&out.stdout);
    if out.status.success() && said.trim() == "valid" {
        Ok(())
    } else {
        Err(format!("{said}{}", String::from_utf8_lossy(&out.stderr)))
    }
}
