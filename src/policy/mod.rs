//! Policy: decisions over canonical incidents. Pure functions; no I/O.

pub mod eligibility;

pub use eligibility::ProgramRules;
