//! The commands that look at exports and config without the service: `check` (config, adapters
//! and mappings), `normalize` (an export to canonical JSON lines) and `quarantine list`.

use crate::{cmd, load_gateway, print_errors};
use anyhow::{Result, bail};
use pnp_gateway::config::{Adapter, ConfigErrors, Gateway};
use pnp_gateway::mapping::unmapped::shown;
use pnp_gateway::pipeline::sinks::JsonLines;
use pnp_gateway::pipeline::{FileRun, PipelineError, SinkError, Stats};
use pnp_gateway::policy::ProgramRules;
use pnp_gateway::store::Store;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub fn check(config: Option<&Path>, adapters_dir: &Path) -> Result<ExitCode> {
    let mut errors = ConfigErrors::default();
    let mut adapters = Vec::new();
    let mut rules = ProgramRules::default();
    let mut gateway = None;
    let dir = match config {
        Some(c) => match Gateway::load(c) {
            Ok(gw) => {
                for w in &gw.warnings {
                    eprintln!("warning: {w}");
                }
                rules = gw.program.clone();
                let d = gw.adapters_dir.clone();
                gateway = Some(gw);
                d
            }
            Err(e) => {
                print_errors(&e);
                return Ok(ExitCode::FAILURE);
            }
        },
        None => adapters_dir.to_owned(),
    };
    let mut paths: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect(),
        Err(e) => bail!("cannot list adapters in {}: {e}", dir.display()),
    };
    if let Some(gw) = &gateway {
        for p in &gw.pipelines {
            if !paths.contains(&p.adapter.path) {
                paths.push(p.adapter.path.clone());
            }
        }
    }
    paths.sort();
    for p in &paths {
        match Adapter::load(p) {
            Ok(a) => adapters.push(a),
            Err(e) => errors.0.extend(e.0),
        }
    }
    let mut examples = 0;
    for a in &adapters {
        errors
            .0
            .extend(a.mapping.run_examples(&a.provenance, &rules));
        examples += a.mapping.examples_len();
    }
    if let Some(gw) = &gateway {
        for (what, path, mode) in gw.readable_by_others() {
            eprintln!(
                "warning: {} ({what}) can be read by group or others (mode {mode:o}); make it the owner's only: chmod go-rwx {0}",
                path.display()
            );
        }
    }
    if let Some(gw) = &gateway
        && gw.store_path.exists()
    {
        let store = Store::open(&gw.store_path)?;
        let gaps = store.mapping_gaps()?;
        if !gaps.is_empty() {
            println!(
                "mapping gaps seen in {} (codes with no table entry; their incidents are `unmapped`):",
                gw.store_path.display()
            );
            for (adapter, table, code, n) in gaps {
                println!(
                    "  {adapter}: table `{table}`: code {} ({n} records)",
                    shown(&code)
                );
            }
        }
    }
    if errors.0.is_empty() {
        println!(
            "ok: {} adapter(s), {} example(s) checked",
            adapters.len(),
            examples
        );
        Ok(ExitCode::SUCCESS)
    } else {
        print_errors(&errors);
        eprintln!("{} error(s)", errors.0.len());
        Ok(ExitCode::FAILURE)
    }
}

pub fn normalize(
    adapter: &str,
    adapters_dir: &Path,
    config: Option<&Path>,
    inputs: &[PathBuf],
) -> Result<ExitCode> {
    let gw = config.map(load_gateway).transpose()?;
    let gap_key = cmd::normalize_gap_key(gw.as_ref())?;
    let (rules, dirs) = match gw {
        Some(gw) => (gw.program, vec![gw.adapters_dir, adapters_dir.to_owned()]),
        None => (ProgramRules::default(), vec![adapters_dir.to_owned()]),
    };
    let path = Adapter::resolve(adapter, &dirs).map_err(anyhow::Error::msg)?;
    let adapter = match Adapter::load(&path) {
        Ok(a) => a,
        Err(e) => {
            print_errors(&e);
            return Ok(ExitCode::from(2));
        }
    };
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let mut stats = Stats::default();
    let mut bars = cmd::progress::Progress::new();
    for input in inputs {
        let out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
        let err = std::io::BufWriter::new(stderr.lock());
        let mut sink = JsonLines::new(input.display().to_string(), out, err);
        let size = std::fs::metadata(input).map(|m| m.len()).unwrap_or(0);
        let mut shown = |read: u64| bars.update(input, read, size);
        let run = FileRun {
            adapter: &adapter,
            rules: &rules,
            gap_key: &gap_key,
            resume: None,
            limit: None,
            progress: Some(&mut shown),
        };
        match run.run(input, &mut sink, &mut stats) {
            Ok(_) => {}
            Err(PipelineError::File { path, source }) => {
                drop(sink);
                let line = serde_json::json!({"rejected": {"file": path, "record": 0, "line": 0, "kind": "unreadable_file", "reason": source.to_string()}});
                eprintln!("{line}");
            }
            Err(PipelineError::Sink(e)) if broken_pipe(&e) => {
                // The reader went away (`| head`): stop quietly, like other Unix filters.
                return Ok(ExitCode::SUCCESS);
            }
            Err(e) => return Err(e.into()),
        }
    }
    {
        use pnp_gateway::progress::Observer;
        bars.end(pnp_gateway::progress::Stage::Reading);
    }
    let gaps: Vec<_> = stats
        .gaps
        .iter()
        .map(|(g, n)| serde_json::json!({"table": g.table, "code": g.code, "records": n}))
        .collect();
    let summary = serde_json::json!({"summary": {
        "files": stats.files, "records": stats.records, "incidents": stats.incidents,
        "rejected": stats.rejected, "unmapped_codes": gaps,
    }});
    writeln!(std::io::stderr(), "{summary}")?;
    Ok(ExitCode::SUCCESS)
}

fn broken_pipe(e: &SinkError) -> bool {
    match e {
        SinkError::Io(e) => e.kind() == std::io::ErrorKind::BrokenPipe,
        SinkError::Json(e) => e.io_error_kind() == Some(std::io::ErrorKind::BrokenPipe),
        SinkError::Store(_) => false,
    }
}

pub fn quarantine_list(config: &Path, json: bool) -> Result<ExitCode> {
    let gw = load_gateway(config)?;
    let store = Store::open(&gw.store_path)?;
    let rows = store.quarantine()?;
    let mut o = std::io::stdout().lock();
    for r in &rows {
        if json {
            let v = serde_json::json!({"id": r.id, "at": r.at, "adapter": r.adapter, "file": r.file, "record": r.record, "line": r.line, "kind": r.kind, "field": r.field, "reason": r.reason});
            writeln!(o, "{v}")?;
        } else {
            let field = r
                .field
                .as_deref()
                .map(|f| format!(" field `{f}`:"))
                .unwrap_or_default();
            writeln!(
                o,
                "{}:{} (record {}) [{}] {}:{} {}",
                r.file, r.line, r.record, r.adapter, r.kind, field, r.reason
            )?;
        }
    }
    if !json {
        writeln!(o, "{} rejected record(s)", rows.len())?;
    }
    Ok(ExitCode::SUCCESS)
}
