//! [`PlanLimits`]: the restrictions of each (API, plan), shared by every limiter built from it
//! and replaceable while requests flow.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::restrictions::Restrictions;

type Table = HashMap<Arc<str>, HashMap<Arc<str>, Restrictions>>;

/// The restrictions of each plan, by API id and plan id.
///
/// Cheap to clone: clones share one table. Reads are lock-free (`ArcSwap`); every write
/// publishes a new table atomically, so a redeploy can change a plan's restrictions while
/// requests flow. A request is judged against the table it found when it arrived. Counters are
/// keyed by the restriction's own settings (window length, calendar period, spacing), so
/// changing only a limit keeps the counts of the current window, and changing a period starts
/// fresh ones.
///
/// A plan with no entry (or an empty [`Restrictions`]) is not limited.
///
/// ```
/// use tower_jwt_plan::limit::{PlanLimits, RateLimit, Restrictions};
///
/// let limits = PlanLimits::new();
/// limits.set("echo", "silver", Restrictions::none().with_rate_limit(RateLimit::new(10, 1)?));
/// assert_eq!(limits.get("echo", "silver").and_then(|r| r.rate_limit()).map(|r| r.limit()), Some(10));
///
/// // A redeploy of the API replaces all its plans at once.
/// limits.replace_api("echo", [("gold", Restrictions::none())]);
/// assert!(limits.get("echo", "silver").is_none());
/// # Ok::<(), tower_jwt_plan::limit::RestrictionsError>(())
/// ```
#[derive(Clone, Default)]
pub struct PlanLimits {
    table: Arc<ArcSwap<Table>>,
}

impl PlanLimits {
    /// An empty table: nothing is limited.
    pub fn new() -> Self {
        Self::default()
    }

    /// Set (or replace) the restrictions of one plan.
    pub fn set(
        &self,
        api: impl Into<Arc<str>>,
        plan: impl Into<Arc<str>>,
        restrictions: Restrictions,
    ) {
        let (api, plan) = (api.into(), plan.into());
        self.table.rcu(|table| {
            let mut table = Table::clone(table);
            table.entry(api.clone()).or_default().insert(plan.clone(), restrictions);
            table
        });
    }

    /// Remove one plan's restrictions.
    pub fn remove(&self, api: &str, plan: &str) {
        self.table.rcu(|table| {
            let mut table = Table::clone(table);
            if let Some(plans) = table.get_mut(api) {
                plans.remove(plan);
                if plans.is_empty() {
                    table.remove(api);
                }
            }
            table
        });
    }

    /// Replace all plans of one API at once (what a redeploy does): plans not listed lose
    /// their restrictions.
    pub fn replace_api<P: Into<Arc<str>>>(
        &self,
        api: impl Into<Arc<str>>,
        plans: impl IntoIterator<Item = (P, Restrictions)>,
    ) {
        let api = api.into();
        let plans: HashMap<Arc<str>, Restrictions> =
            plans.into_iter().map(|(plan, r)| (plan.into(), r)).collect();
        self.table.rcu(|table| {
            let mut table = Table::clone(table);
            if plans.is_empty() {
                table.remove(&api);
            } else {
                table.insert(api.clone(), plans.clone());
            }
            table
        });
    }

    /// One plan's restrictions, if set.
    pub fn get(&self, api: &str, plan: &str) -> Option<Restrictions> {
        self.table.load().get(api)?.get(plan).copied()
    }
}

impl fmt::Debug for PlanLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.table.load().iter()).finish()
    }
}
