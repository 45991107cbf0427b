//! pnp-gateway: CAD/RMS exports in, canonical incidents out, and (in later stages) consented
//! referrals and de-identified program data to their recipients. See ARCHITECTURE.md.

pub mod config;
pub mod formats;
pub mod mapping;
pub mod model;
pub mod policy;
pub mod store;
pub mod pipeline;
pub mod ingest;
pub mod demo;
