//! Request bodies read into memory within a budget: each at most `max_body` bytes (a declared
//! `Content-Length` over it is refused before a byte is read), all of them together at most
//! `max_inflight` bytes (a tokio semaphore whose permits are KiB, taken before the bytes are
//! buffered and given back when the request is done), and each within the idle timeout. Without
//! the total, a few dozen strangers sending bodies just under the per-request cap could make the
//! process hold gigabytes; the budget is refused (503, to retry) rather than waited for, so a
//! request never holds part of it while waiting for the rest.

use super::Limits;
use http_body_util::BodyExt;
use hyper::body::{Body, Bytes, Incoming};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Why a body was not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyRefused {
    #[error("the body is larger than this receiver takes")]
    TooLarge,
    #[error("too many bodies in flight; try again")]
    Busy,
    #[error("the body was cut off or came too slowly")]
    CutOff,
}

/// The shared budget of one listener; clone it into the handler.
#[derive(Clone)]
pub struct BodyBudget {
    max_body: usize,
    timeout: Duration,
    kib: Arc<Semaphore>,
}

/// A body read, holding its share of the budget until dropped.
pub struct ReadBody {
    pub bytes: Bytes,
    _share: OwnedSemaphorePermit,
}

fn kib(bytes: usize) -> usize {
    bytes.div_ceil(1024)
}

impl BodyBudget {
    pub fn new(limits: &Limits) -> Self {
        BodyBudget {
            max_body: limits.max_body,
            timeout: limits.idle_timeout,
            kib: Arc::new(Semaphore::new(
                kib(limits.max_inflight).min(Semaphore::MAX_PERMITS),
            )),
        }
    }

    /// Takes `total_kib` KiB of the budget in all for `share`, or refuses.
    fn grow(&self, share: &mut OwnedSemaphorePermit, total_kib: usize) -> Result<(), BodyRefused> {
        let more = total_kib.saturating_sub(share.num_permits());
        if more > 0 {
            let n = u32::try_from(more).map_err(|_| BodyRefused::TooLarge)?;
            let extra = self
                .kib
                .clone()
                .try_acquire_many_owned(n)
                .map_err(|_| BodyRefused::Busy)?;
            share.merge(extra);
        }
        Ok(())
    }

    /// Reads `body` into memory within the budget.
    pub async fn read(&self, body: Incoming) -> Result<ReadBody, BodyRefused> {
        match tokio::time::timeout(self.timeout, self.read_within(body)).await {
            Ok(r) => r,
            Err(_) => Err(BodyRefused::CutOff),
        }
    }

    async fn read_within(&self, mut body: Incoming) -> Result<ReadBody, BodyRefused> {
        let declared = body.size_hint().exact();
        let declared = match declared.map(usize::try_from) {
            Some(Ok(n)) if n <= self.max_body => Some(n),
            Some(_) => return Err(BodyRefused::TooLarge),
            None => None,
        };
        let mut share = self
            .kib
            .clone()
            .try_acquire_many_owned(0)
            .map_err(|_| BodyRefused::Busy)?;
        let mut buf = Vec::new();
        if let Some(n) = declared {
            self.grow(&mut share, kib(n))?;
            buf.reserve_exact(n);
        }
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| BodyRefused::CutOff)?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            let want = buf.len() + data.len();
            if want > self.max_body {
                return Err(BodyRefused::TooLarge);
            }
            if want > buf.capacity() {
                // Grow by doubling (as Vec would), the budget first.
                let cap = want.max(buf.capacity() * 2).min(self.max_body);
                self.grow(&mut share, kib(cap))?;
                buf.reserve_exact(cap - buf.len());
            }
            buf.extend_from_slice(&data);
        }
        Ok(ReadBody {
            bytes: Bytes::from(buf),
            _share: share,
        })
    }
}
