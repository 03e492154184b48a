//! The plan model: a [`Plan`] has an id, a name, a [`PlanStatus`] and a [`PlanSecurity`], and a
//! [`PlanSet`] is the validated set of one API's plans that a layer serves.
//!
//! Only published and deprecated plans serve traffic (a deprecated plan keeps serving its
//! existing subscriptions); staging and closed plans serve nobody. A keyless plan that serves
//! traffic is refused when the set is built, so a JWT plan can never be bypassed, and a request
//! without a verified token never passes, whatever the configuration.
//!
//! Plan selection is deterministic: the servable JWT plans are tried in the order they were
//! given. A plan that lists issuers is skipped, without any cryptography, for tokens whose
//! `iss` it does not list. The request passes under the first plan whose keys and claim rules
//! verify the token and under which the token's client holds a usable subscription.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http::HeaderName;

use crate::context::PlanIds;
use crate::error::ConfigError;
use crate::verify::{ClaimRules, JwtSettings};

/// Where a plan is in its lifecycle. Serialised in lower case (`"published"`), as in the
/// gateway's files and the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlanStatus {
    /// Being prepared: serves nobody.
    Staging,
    /// Open for subscriptions and serving.
    Published,
    /// Closed to new subscriptions; existing ones keep being served.
    Deprecated,
    /// Ended: serves nobody.
    Closed,
}

impl PlanStatus {
    /// Whether plans in this status serve traffic.
    pub fn serves_traffic(self) -> bool {
        matches!(self, Self::Published | Self::Deprecated)
    }

    /// The lower-case name used in config files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Staging => "staging",
            Self::Published => "published",
            Self::Deprecated => "deprecated",
            Self::Closed => "closed",
        }
    }

    /// The status named by [`as_str`](Self::as_str), as stored by the catalog.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        [Self::Staging, Self::Published, Self::Deprecated, Self::Closed]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// How a plan secures its API.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum PlanSecurity {
    /// A verified JWT plus an accepted subscription of its client.
    Jwt(Box<JwtSettings>),
    /// No credential at all. Refused in any serving status.
    Keyless,
    /// API keys: in the model for later, not enforced; such plans never let a request through.
    ApiKey,
    /// OAuth2 introspection: in the model for later, not enforced; never lets a request through.
    OAuth2,
}

/// One plan of an API.
///
/// ```
/// use tower_jwt_plan::{JwtSettings, KeySource, Plan, PlanStatus};
/// use jsonwebtoken::Algorithm;
///
/// let settings = JwtSettings::new(KeySource::hmac_secret([7u8; 32])).algorithms([Algorithm::HS256]);
/// let gold = Plan::jwt("gold", "Gold", settings).with_status(PlanStatus::Deprecated);
/// assert!(gold.status().serves_traffic());
/// ```
#[derive(Debug, Clone)]
pub struct Plan {
    id: Arc<str>,
    name: Arc<str>,
    status: PlanStatus,
    security: PlanSecurity,
}

impl Plan {
    /// A published JWT plan.
    pub fn jwt(id: impl Into<Arc<str>>, name: impl Into<Arc<str>>, settings: JwtSettings) -> Self {
        Self::new(id, name, PlanStatus::Published, PlanSecurity::Jwt(Box::new(settings)))
    }

    /// A plan of any security type and status.
    pub fn new(
        id: impl Into<Arc<str>>,
        name: impl Into<Arc<str>>,
        status: PlanStatus,
        security: PlanSecurity,
    ) -> Self {
        Self { id: id.into(), name: name.into(), status, security }
    }

    /// Change the status.
    #[must_use]
    pub fn with_status(mut self, status: PlanStatus) -> Self {
        self.status = status;
        self
    }

    /// The plan's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The plan's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The plan's status.
    pub fn status(&self) -> PlanStatus {
        self.status
    }

    /// The plan's security.
    pub fn security(&self) -> &PlanSecurity {
        &self.security
    }
}

/// A servable JWT plan, with its rules built once.
pub(crate) struct ServedPlan {
    pub(crate) id: Arc<str>,
    /// The API's and this plan's ids, shared by every context granted under it.
    pub(crate) ids: Arc<PlanIds>,
    pub(crate) settings: JwtSettings,
    pub(crate) rules: ClaimRules,
    pub(crate) claims_to_headers: Vec<(String, HeaderName)>,
    /// The first served plan (this one or an earlier one) that checks a token's claims, scopes,
    /// client id and user exactly as this one does: a token gets one verdict from all such
    /// plans, so a request computes it once. Plans that check beyond the token (revocation, a
    /// certificate binding) are each their own.
    pub(crate) same_checks_as: usize,
}

/// The validated plans of one API, as served by a layer. Immutable; a redeploy swaps it whole.
///
/// Only published and deprecated plans serve. Servable JWT plans are tried in the order given;
/// a plan that lists issuers is skipped without any cryptography for tokens of other issuers.
/// The request passes under the first plan whose keys and rules verify the token and under
/// which its client holds a usable subscription.
pub struct PlanSet {
    id: u64,
    plans: Vec<Plan>,
    pub(crate) served: Vec<ServedPlan>,
    /// Every header any plan fills from claims: stripped from every request that passes.
    pub(crate) owned_headers: Vec<HeaderName>,
}

impl PlanSet {
    /// Validate plans: unique non-empty ids, no serving keyless plan, JWT settings coherent.
    ///
    /// ```
    /// use tower_jwt_plan::{ConfigError, Plan, PlanSecurity, PlanSet, PlanStatus};
    ///
    /// let open = Plan::new("free", "Free", PlanStatus::Published, PlanSecurity::Keyless);
    /// let err = PlanSet::new(vec![open]).unwrap_err();
    /// assert!(matches!(err, ConfigError::KeylessPlanServing { .. }));
    /// assert!(err.to_string().contains("keyless"));
    ///
    /// let parked = Plan::new("free", "Free", PlanStatus::Staging, PlanSecurity::Keyless);
    /// assert!(PlanSet::new(vec![parked]).is_ok());
    /// ```
    pub fn new(plans: Vec<Plan>) -> Result<Self, ConfigError> {
        // A set built here serves no layer, so no context names its API.
        Self::for_api(&Arc::from(""), plans)
    }

    /// [`new`](Self::new), for the layer of `api_id`.
    pub(crate) fn for_api(api_id: &Arc<str>, plans: Vec<Plan>) -> Result<Self, ConfigError> {
        let mut served = Vec::new();
        let mut owned_headers: Vec<HeaderName> = Vec::new();
        for (i, plan) in plans.iter().enumerate() {
            if plan.id.is_empty() {
                return Err(ConfigError::EmptyId("plan"));
            }
            if plans[..i].iter().any(|p| p.id == plan.id) {
                return Err(ConfigError::DuplicatePlan(plan.id.to_string()));
            }
            let settings = match &plan.security {
                PlanSecurity::Keyless if plan.status.serves_traffic() => {
                    return Err(ConfigError::KeylessPlanServing {
                        plan: plan.id.to_string(),
                        status: plan.status.as_str(),
                    });
                }
                PlanSecurity::Jwt(settings) => settings,
                _ => continue,
            };
            // Staging and closed plans are validated too, so that publishing one later cannot fail.
            let rules = settings.compile(&plan.id)?;
            let mut claims_to_headers = Vec::new();
            for (claim, header) in &settings.claims_to_headers {
                let name = HeaderName::from_bytes(header.as_bytes()).map_err(|_| {
                    ConfigError::InvalidSetting {
                        name: "claims_to_headers",
                        reason: format!("`{header}` is not a valid header name"),
                    }
                })?;
                if name == http::header::AUTHORIZATION || name == http::header::HOST {
                    return Err(ConfigError::InvalidSetting {
                        name: "claims_to_headers",
                        reason: format!("`{header}` cannot be set from a claim"),
                    });
                }
                if !owned_headers.contains(&name) {
                    owned_headers.push(name.clone());
                }
                claims_to_headers.push((claim.clone(), name));
            }
            if plan.status.serves_traffic() {
                let same_checks_as = served
                    .iter()
                    .position(|other: &ServedPlan| {
                        !settings.checks_beyond_the_token()
                            && !other.settings.checks_beyond_the_token()
                            && other.rules.same_checks(&rules)
                            && other.settings.user_claim == settings.user_claim
                    })
                    .unwrap_or(served.len());
                served.push(ServedPlan {
                    id: plan.id.clone(),
                    ids: PlanIds::new(api_id.clone(), plan.id.clone(), plan.name.clone()),
                    settings: JwtSettings::clone(settings),
                    rules,
                    claims_to_headers,
                    same_checks_as,
                });
            }
        }
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        Ok(Self { id, plans, served, owned_headers })
    }

    /// Identifies this set among all sets built in the process (cached results are tied to it).
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// All plans, in the order given.
    pub fn plans(&self) -> &[Plan] {
        &self.plans
    }

    /// The ids of the JWT plans that serve traffic, in selection order.
    pub fn serving_plan_ids(&self) -> impl Iterator<Item = &str> {
        self.served.iter().map(|p| &*p.id)
    }

    /// Candidate plans for a token whose (unverified) issuer is `iss`, from index `from` on.
    pub(crate) fn next_candidate(&self, from: usize, iss: Option<&str>) -> Option<usize> {
        (from..self.served.len()).find(|&i| self.served[i].rules.accepts_issuer(iss))
    }
}

impl fmt::Debug for PlanSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlanSet")
            .field("plans", &self.plans.iter().map(|p| (&*p.id, p.status)).collect::<Vec<_>>())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeySource;
    use jsonwebtoken::Algorithm;

    fn jwt(id: &str) -> Plan {
        let settings =
            JwtSettings::new(KeySource::hmac_secret([7u8; 32])).algorithms([Algorithm::HS256]);
        Plan::jwt(id, id, settings)
    }

    #[test]
    fn only_published_and_deprecated_serve() {
        let set = PlanSet::new(vec![
            jwt("a").with_status(PlanStatus::Staging),
            jwt("b"),
            jwt("c").with_status(PlanStatus::Deprecated),
            jwt("d").with_status(PlanStatus::Closed),
        ])
        .unwrap();
        assert_eq!(set.serving_plan_ids().collect::<Vec<_>>(), ["b", "c"]);
    }

    #[test]
    fn keyless_refused_when_serving_in_either_status() {
        for status in [PlanStatus::Published, PlanStatus::Deprecated] {
            let keyless = Plan::new("open", "Open", status, PlanSecurity::Keyless);
            let err = PlanSet::new(vec![jwt("gold"), keyless]).unwrap_err();
            let text = err.to_string();
            assert!(text.contains("`open`") && text.contains("keyless"), "{text}");
        }
        let closed = Plan::new("open", "Open", PlanStatus::Closed, PlanSecurity::Keyless);
        assert!(PlanSet::new(vec![jwt("gold"), closed]).is_ok());
    }

    #[test]
    fn duplicate_and_empty_ids_and_bad_headers() {
        assert!(matches!(
            PlanSet::new(vec![jwt("a"), jwt("a")]),
            Err(ConfigError::DuplicatePlan(_))
        ));
        assert!(matches!(PlanSet::new(vec![jwt("")]), Err(ConfigError::EmptyId(_))));
        let settings = JwtSettings::new(KeySource::hmac_secret([7u8; 32]))
            .algorithms([Algorithm::HS256])
            .claim_to_header("sub", "bad header");
        assert!(PlanSet::new(vec![Plan::jwt("a", "A", settings)]).is_err());
    }
}
