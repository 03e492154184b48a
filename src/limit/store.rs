//! What a counter store answers: a verdict at once (memory, or Redis while it is down) or a
//! future that always ends in one (Redis, with the in-memory fallback inside).

use std::future::Future;
use std::pin::Pin;

use super::decision::Decision;

/// A decision that may still be on its way from Redis.
pub(crate) type DecisionFuture = Pin<Box<dyn Future<Output = Decision> + Send>>;

pub(crate) enum Decided {
    Now(Decision),
    // Only a Redis store answers later; without the feature it is never built.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    Later(DecisionFuture),
}
