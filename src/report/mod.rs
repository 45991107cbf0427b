//! Program reporting for DHHR: counts, never rows. The disclosure stage records each incident's
//! facts ([`facts`]); a report counts them by month, county, category, agency and the program's
//! funnel ([`build`]) and times the closed loop's referrals ([`times`]), suppresses small counts
//! and the counts that would give them back ([`suppress`], [`table`]), and renders the same tables as JSON, CSV or one self-contained
//! HTML page with SVG charts ([`render`]). Pure: the store reads and writes the facts.

pub mod build;
pub mod facts;
pub mod render;
pub mod suppress;
pub mod table;
pub mod times;

pub use build::{Month, Report, build};
pub use facts::Fact;
pub use table::{Table, suppress_all};

/// The default threshold: counts from 1 to 10 are suppressed (the CMS cell size suppression
/// policy).
pub const DEFAULT_MIN_CELL: u64 = 10;
