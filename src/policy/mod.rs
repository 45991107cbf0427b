//! Policy: decisions over canonical incidents. Pure functions; no I/O.

mod age;
pub mod consent;
pub mod deid;
pub mod eligibility;

pub use eligibility::ProgramRules;
pub mod disclose;
pub mod fields;
pub mod hl7_answer;
pub mod indicators;
pub mod lifecycle;
pub mod narrative;
pub mod profile;
pub mod scrub;
pub mod spellings;
