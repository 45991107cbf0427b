//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod browser;
pub mod consents;
pub mod peers;
pub mod program;
pub mod service;

use pnp_gateway::config::Adapter;
use pnp_gateway::formats::{Checkpoint, Position, Rejection};
use pnp_gateway::mapping::Gap;
use pnp_gateway::model::Incident;
use pnp_gateway::pipeline::{FileRun, Sink, SinkError, Stats};
use pnp_gateway::policy::ProgramRules;
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn adapter(name: &str) -> Adapter {
    Adapter::load(&repo().join("adapters").join(format!("{name}.toml"))).expect("adapter loads")
}

/// Collects everything a file run produces.
#[derive(Default)]
pub struct Collect {
    pub incidents: Vec<(Position, Incident)>,
    pub rejected: Vec<(Position, Rejection)>,
    pub gaps: Vec<Gap>,
    pub checkpoints: Vec<(Checkpoint, bool)>,
}

impl Sink for Collect {
    fn incident(&mut self, pos: Position, inc: Incident) -> Result<(), SinkError> {
        self.incidents.push((pos, inc));
        Ok(())
    }
    fn rejected(&mut self, pos: Position, r: Rejection) -> Result<(), SinkError> {
        self.rejected.push((pos, r));
        Ok(())
    }
    fn gap(&mut self, gap: Gap) -> Result<(), SinkError> {
        self.gaps.push(gap);
        Ok(())
    }
    fn checkpoint(&mut self, cp: Checkpoint, done: bool) -> Result<(), SinkError> {
        self.checkpoints.push((cp, done));
        Ok(())
    }
}

pub fn read(adapter: &Adapter, path: &Path) -> Collect {
    let mut c = Collect::default();
    let mut stats = Stats::default();
    FileRun {
        adapter,
        rules: &ProgramRules::default(),
        gap_key: &pnp_gateway::mapping::unmapped::GapKey::ephemeral(),
        resume: None,
        limit: None,
        progress: None,
    }
    .run(path, &mut c, &mut stats)
    .expect("file run");
    c
}

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pnp-gateway"))
}

/// Writes `adapters/NAME.toml` and `mappings/NAME.toml` into `dir`.
pub fn write_adapter(dir: &Path, name: &str, format: &str, mapping: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("adapters")).unwrap();
    std::fs::create_dir_all(dir.join("mappings")).unwrap();
    std::fs::write(dir.join("mappings").join(format!("{name}.toml")), mapping).unwrap();
    let a = dir.join("adapters").join(format!("{name}.toml"));
    std::fs::write(
        &a,
        format!("mapping = \"../mappings/{name}.toml\"\n[format]\n{format}\n"),
    )
    .unwrap();
    a
}

/// A small mapping over columns id, when, code, name, note.
pub const SMALL_MAPPING: &str = include_str!("small_mapping.toml");

/// The date the CLI tests decide as of (`PNP_GATEWAY_TODAY`), so that their consents stay valid.
pub const TODAY: &str = "2026-11-27";

/// The demo's eligible incidents: each goes to DHHR's destinations once (the generic export's
/// repeated autumn hour is taken and flagged, its spring-gap time rejected).
#[allow(dead_code)]
pub const DEMO_ELIGIBLE: usize = 30;

/// `pnp-gateway ARGS --config CFG`, as of [`TODAY`].
pub fn cli(args: &[&str], cfg: &Path) -> std::process::Output {
    bin()
        .args(args)
        .arg("--config")
        .arg(cfg)
        .env("PNP_GATEWAY_TODAY", TODAY)
        .output()
        .unwrap()
}

/// `pnp-gateway ARGS --config CFG`, as of [`TODAY`], started and left running (for a test that
/// stops it, SIGKILL, part-way); its output is dropped.
pub fn cli_spawn(args: &[&str], cfg: &Path) -> std::process::Child {
    bin()
        .args(args)
        .arg("--config")
        .arg(cfg)
        .env("PNP_GATEWAY_TODAY", TODAY)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// The command's stdout, after asserting it succeeded.
pub fn success(o: &std::process::Output) -> String {
    assert!(
        o.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A number from the config's store.
pub fn store_count(cfg: &Path, sql: &str) -> i64 {
    rusqlite::Connection::open(cfg.parent().unwrap().join("state/gateway.db"))
        .unwrap()
        .query_row(sql, [], |r| r.get(0))
        .unwrap()
}

/// A file of the demo's PRSS records.
/// The demo's identifying values (Jane Doe's name, phone, street, birth date, and the police
/// incident number): none may reach a de-identified destination.
pub fn assert_deidentified(text: &str, where_: &str) {
    for leak in [
        "DOE",
        "3045550100",
        "EXAMPLE AVE",
        "1990-07-04",
        "2026-000101",
    ] {
        assert!(!text.contains(leak), "{leak} reached {where_}");
    }
}

/// Outbox rows of a destination in a status (`pending`, `delivered`, `dead`, `withdrawn`).
pub fn outbox_count(cfg: &Path, destination: &str, status: &str) -> i64 {
    store_count(
        cfg,
        &format!(
            "SELECT count(*) FROM outbox WHERE destination = '{destination}' AND status = '{status}'"
        ),
    )
}

pub fn prss_file(cfg: &Path, f: &str) -> PathBuf {
    cfg.parent().unwrap().join("prss").join(f)
}

/// Imports the demo's PRSS consents (defective ones too) and engagements.
pub fn import_demo_records(cfg: &Path) {
    let consents = prss_file(cfg, "consents.json");
    success(&cli(
        &[
            "consent",
            "import",
            "--accept-incomplete",
            "--today",
            TODAY,
            consents.to_str().unwrap(),
        ],
        cfg,
    ));
    let engagements = prss_file(cfg, "engagements.csv");
    success(&cli(
        &["engagement", "import", engagements.to_str().unwrap()],
        cfg,
    ));
}
