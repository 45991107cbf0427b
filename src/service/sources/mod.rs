//! Live sources (`[[pipeline]] source`): each hands what it receives to the engine as a
//! [`Command::Push`] and acknowledges it to its peer only once the engine answered, that is after
//! the commit. docs/sources.md describes each kind, its settings and its acknowledgement rule.

mod http_poll;
mod kafka;
pub(crate) mod mllp;

pub(crate) use http_poll::read_auth_header;
pub use http_poll::render_url;
pub use kafka::RESERVED as KAFKA_RESERVED;

use super::engine::Command;
use super::{Health, ServiceError};
use crate::config::Gateway;
use crate::config::source::SourceSpec;
use std::sync::Arc;
use std::sync::mpsc::SyncSender;

/// What every source gets: its pipeline, the engine's queue, the service's health board and the
/// shutdown signal.
#[derive(Clone)]
pub(crate) struct Context {
    pub gw: Arc<Gateway>,
    pub pipeline: usize,
    pub engine: SyncSender<Command>,
    pub health: Arc<Health>,
    pub stop: crate::server::ShutdownSignal,
}

/// A source's bound address, for `state/endpoints.json` and the logs.
#[derive(Debug, Clone)]
pub struct Bound {
    pub pipeline: String,
    pub kind: &'static str,
    pub addr: Option<std::net::SocketAddr>,
}

/// Starts every pipeline's live source.
pub(crate) fn start_all(
    runtime: &tokio::runtime::Runtime,
    ctx: &Context,
) -> Result<Vec<Bound>, ServiceError> {
    let mut bound = Vec::new();
    for (i, p) in ctx.gw.pipelines.iter().enumerate() {
        let Some(spec) = &p.source else { continue };
        let ctx = Context {
            pipeline: i,
            ..ctx.clone()
        };
        let addr = match spec {
            SourceSpec::Mllp { .. } => Some(mllp::start(runtime, ctx, spec)?),
            SourceSpec::Kafka { .. } => {
                kafka::start(ctx, spec)?;
                None
            }
            SourceSpec::HttpPoll { .. } => {
                http_poll::start(ctx, spec)?;
                None
            }
        };
        bound.push(Bound {
            pipeline: p.id.clone(),
            kind: spec.kind(),
            addr,
        });
    }
    Ok(bound)
}
