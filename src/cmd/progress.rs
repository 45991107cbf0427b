//! Progress bars on stderr for long work: one per stage (reading, deciding, delivering), each with
//! its rate and the time left, drawn by indicatif. Nothing at all is drawn when stderr is not a
//! terminal (a service's log, a pipe, the tests): every method returns at once.
//!
//! The stages report through [`Observer`] (the library prints nothing); the reading stage through
//! the byte callback that ingest already takes ([`Progress::update`]).

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use pnp_gateway::progress::{Observer, Stage};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The bars on the terminal, if any: log lines are written above them ([`LogWriter`]).
static SHOWN: Mutex<Option<MultiProgress>> = Mutex::new(None);

/// Where the log goes: stderr, above the bars while they are shown (rather than through them).
pub(crate) struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let shown = SHOWN.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match shown {
            Some(m) => m.suspend(|| std::io::stderr().write_all(buf))?,
            None => std::io::stderr().write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// The bars of one command. Clones share them (the dispatcher holds one as its observer).
#[derive(Clone)]
pub(crate) struct Progress {
    inner: Option<Arc<Mutex<Bars>>>,
}

struct Bars {
    multi: MultiProgress,
    bars: BTreeMap<Stage, ProgressBar>,
    /// The file the reading bar is about.
    file: Option<PathBuf>,
}

impl Progress {
    /// Bars on stderr when it is a terminal; otherwise none.
    pub(crate) fn new() -> Self {
        Self::drawn(std::io::stderr().is_terminal())
    }

    fn drawn(on: bool) -> Self {
        Progress {
            inner: on.then(|| {
                let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
                *SHOWN.lock().unwrap_or_else(|e| e.into_inner()) = Some(multi.clone());
                Arc::new(Mutex::new(Bars {
                    multi,
                    bars: BTreeMap::new(),
                    file: None,
                }))
            }),
        }
    }

    fn with(&self, f: impl FnOnce(&mut Bars)) {
        if let Some(b) = &self.inner {
            f(&mut b.lock().unwrap_or_else(|e| e.into_inner()));
        }
    }

    /// Reading `file`: `read` of its `total` bytes so far.
    pub(crate) fn update(&mut self, file: &Path, read: u64, total: u64) {
        self.with(|b| {
            if b.file.as_deref() != Some(file) {
                b.file = Some(file.to_owned());
                let bar = b.begin(Stage::Reading, total);
                bar.set_message(
                    file.file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
            if let Some(bar) = b.bars.get(&Stage::Reading) {
                bar.set_position(read);
            }
        });
    }
}

impl Bars {
    /// A new bar for `stage`; the bars of the stages before it are finished (left as they
    /// ended, with their totals and rates).
    fn begin(&mut self, stage: Stage, total: u64) -> ProgressBar {
        for (s, bar) in &self.bars {
            if *s != stage && !bar.is_finished() {
                bar.abandon();
            }
        }
        if let Some(old) = self.bars.remove(&stage) {
            old.finish_and_clear();
        }
        let (name, counts) = match stage {
            Stage::Reading => ("reading", "{bytes}/{total_bytes} {bytes_per_sec}"),
            Stage::Deciding => ("deciding", "{human_pos}/{human_len} decisions {rate}"),
            Stage::Delivering => ("delivering", "{human_pos}/{human_len} payloads {rate}"),
        };
        let style = ProgressStyle::with_template(&format!(
            "{{prefix:>10}} [{{bar:30}}] {counts}, {{eta}} left {{msg}}"
        ))
        .expect("the template is valid")
        .with_key("rate", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{:.0}/s", s.per_sec());
        })
        .progress_chars("=> ");
        let bar = self
            .multi
            .add(ProgressBar::new(total).with_style(style).with_prefix(name));
        self.bars.insert(stage, bar.clone());
        bar
    }
}

impl Observer for Progress {
    fn begin(&mut self, stage: Stage, total: u64) {
        self.with(|b| {
            b.begin(stage, total);
        });
    }

    fn advance(&mut self, stage: Stage, n: u64) {
        self.with(|b| {
            if let Some(bar) = b.bars.get(&stage) {
                bar.inc(n);
            }
        });
    }

    fn end(&mut self, stage: Stage) {
        self.with(|b| {
            if let Some(bar) = b.bars.get(&stage) {
                bar.abandon();
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_the_terminal_nothing_is_kept_or_drawn() {
        let mut p = Progress::drawn(false);
        p.update(Path::new("a.csv"), 10, 100);
        p.begin(Stage::Deciding, 4);
        p.advance(Stage::Deciding, 1);
        assert!(p.inner.is_none());
    }

    #[test]
    fn a_stage_that_begins_finishes_the_ones_before() {
        let mut p = Progress::drawn(true);
        p.update(Path::new("a.csv"), 10, 100);
        p.begin(Stage::Deciding, 4);
        p.advance(Stage::Deciding, 3);
        let b = p.inner.as_ref().unwrap().lock().unwrap();
        assert!(b.bars[&Stage::Reading].is_finished());
        assert!(!b.bars[&Stage::Deciding].is_finished());
        assert_eq!(b.bars[&Stage::Deciding].position(), 3);
        assert_eq!(b.bars[&Stage::Reading].position(), 10);
    }
}
