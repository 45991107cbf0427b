//! pnp-gateway: CAD/RMS exports in, canonical incidents out, and (in later stages) consented
//! referrals and de-identified program data to their recipients. See ARCHITECTURE.md.

pub mod config;
pub mod deliver;
pub mod demo;
pub mod formats;
pub mod hex;
pub mod imports;
pub mod ingest;
pub mod mapping;
pub mod metrics;
pub mod model;
pub mod owner_only;
pub mod pipeline;
pub mod policy;
pub mod progress;
pub mod receiver;
pub mod report;
pub mod server;
pub mod service;
pub mod store;
pub mod tls;
