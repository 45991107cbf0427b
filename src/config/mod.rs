//! Configuration files: gateway.toml and adapters. Each is parsed with unknown fields denied,
//! then checked (no I/O beyond reading the files it names) before anything runs.

pub mod adapter;
pub mod delivery;
pub mod destination;
pub mod error;
pub mod followup;
pub mod gateway;
pub mod sasl;
pub mod server;
pub mod source;

pub use adapter::Adapter;
pub use error::{ConfigError, ConfigErrors};
pub use gateway::Gateway;
