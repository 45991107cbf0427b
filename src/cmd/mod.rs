//! Command handlers that would crowd main.rs: the privacy engine's commands.

pub mod outbox;
pub mod privacy;
pub mod receive;
