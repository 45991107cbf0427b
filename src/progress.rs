//! Progress of long work (a backfill's reading, deciding and delivering), reported by the stages
//! to an observer that the command supplies. The library prints nothing: `run --once`,
//! `normalize` and `preview` draw bars on a terminal (src/cmd/progress.rs), `run` watching and
//! the tests give no observer.

/// A stage of the path from an export to its destinations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    /// Exports read (units: bytes).
    Reading,
    /// Disclosure decisions made (units: decisions).
    Deciding,
    /// Outbox rows through an attempt (units: payloads).
    Delivering,
}

/// Sees a stage's work as it goes. Calls come from the thread doing the work, so they must be
/// cheap: a display should throttle its own drawing.
pub trait Observer: Send {
    /// The stage begins with `total` units to do (0 when not known).
    fn begin(&mut self, stage: Stage, total: u64);
    /// `n` more units are done.
    fn advance(&mut self, stage: Stage, n: u64);
    /// The stage is over (its work done, or stopped).
    fn end(&mut self, stage: Stage);
}
