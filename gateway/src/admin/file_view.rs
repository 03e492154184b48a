//! File mode: the management API's reads answered from the configuration file now serving.
//!
//! The file has no timestamps, names or validation modes: an API's name is its id and its
//! instants are when the file was loaded; an application's name is its id; plans read as
//! `auto` validation.

use std::time::SystemTime;

use time::OffsetDateTime;
use tower_jwt_plan::definition::{JwtDefinition, ScopeModeDefinition};

use super::error::ApiError;
use super::wire::{
    Api, Application, ApplicationStatus, DeploymentState, Plan, PlanStatus, Security, Subscription,
    SubscriptionQuery, SubscriptionStatus, Validation, redacted,
};
use crate::config::{
    Config, PlanConfig, PlanStatusConfig, ScopeModeConfig, SecurityConfig, SubscriptionStatusConfig,
};

/// The file's content, as the management API shows it.
pub(crate) struct FileView<'a> {
    pub(crate) config: &'a Config,
    pub(crate) loaded_at: OffsetDateTime,
}

fn not_found(kind: &str, id: &str) -> ApiError {
    ApiError::new(http::StatusCode::NOT_FOUND, "NOT_FOUND", format!("{kind} `{id}` not found"))
}

fn jwt_of(plan: &PlanConfig) -> Option<JwtDefinition> {
    if plan.security == SecurityConfig::Keyless {
        return None;
    }
    let mut jwt = JwtDefinition::default();
    jwt.algorithms.clone_from(&plan.algorithms);
    jwt.jwks_url.clone_from(&plan.jwks_url);
    jwt.public_key_pem.clone_from(&plan.public_key_pem);
    jwt.hmac_secret.clone_from(&plan.hmac_secret);
    jwt.issuer.clone_from(&plan.issuer);
    jwt.audience.clone_from(&plan.audience);
    jwt.client_id_claim.clone_from(&plan.client_id_claim);
    jwt.user_claim.clone_from(&plan.user_claim);
    jwt.required_scopes.clone_from(&plan.required_scopes);
    jwt.scope_mode = plan.scope_mode.map(|mode| match mode {
        ScopeModeConfig::All => ScopeModeDefinition::All,
        ScopeModeConfig::Any => ScopeModeDefinition::Any,
    });
    jwt.leeway_secs = plan.leeway_secs;
    jwt.claims_to_headers.clone_from(&plan.claims_to_headers);
    jwt.propagate_auth_header = plan.propagate_auth_header;
    jwt.extract_claims = plan.extract_claims;
    jwt.max_lifetime_secs = plan.max_lifetime_secs;
    jwt.token_types.clone_from(&plan.token_types);
    redacted(Some(jwt))
}

fn instant(at: Option<SystemTime>) -> Option<OffsetDateTime> {
    at.map(OffsetDateTime::from)
}

impl FileView<'_> {
    pub(crate) fn apis(&self) -> Vec<Api> {
        let mut apis: Vec<Api> = self
            .config
            .api
            .iter()
            .map(|api| Api {
                id: api.id.clone(),
                name: api.id.clone(),
                context_path: api.context_path.clone(),
                backend: api.backend.clone(),
                deployment_state: DeploymentState::Deployed,
                deployed_at: Some(self.loaded_at),
                created_at: self.loaded_at,
                updated_at: self.loaded_at,
            })
            .collect();
        apis.sort_by(|a, b| a.id.cmp(&b.id));
        apis
    }

    pub(crate) fn api(&self, id: &str) -> Result<Api, ApiError> {
        self.apis().into_iter().find(|a| a.id == id).ok_or_else(|| not_found("api", id))
    }

    pub(crate) fn plans(&self, api: &str) -> Result<Vec<Plan>, ApiError> {
        let config =
            self.config.api.iter().find(|a| a.id == api).ok_or_else(|| not_found("api", api))?;
        let mut plans: Vec<Plan> = config
            .plan
            .iter()
            .map(|p| Plan {
                id: p.id.clone(),
                api: api.to_owned(),
                name: p.name.clone().unwrap_or_else(|| p.id.clone()),
                security: match p.security {
                    SecurityConfig::Jwt => Security::Jwt,
                    SecurityConfig::Keyless => Security::Keyless,
                },
                validation: Validation::Auto,
                jwt: jwt_of(p),
                restrictions: p.restrictions,
                status: match p.status {
                    PlanStatusConfig::Staging => PlanStatus::Staging,
                    PlanStatusConfig::Published => PlanStatus::Published,
                    PlanStatusConfig::Deprecated => PlanStatus::Deprecated,
                    PlanStatusConfig::Closed => PlanStatus::Closed,
                },
                created_at: None,
                updated_at: None,
            })
            .collect();
        plans.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(plans)
    }

    pub(crate) fn plan(&self, api: &str, id: &str) -> Result<Plan, ApiError> {
        self.plans(api)?.into_iter().find(|p| p.id == id).ok_or_else(|| not_found("plan", id))
    }

    pub(crate) fn applications(&self) -> Vec<Application> {
        let mut apps: Vec<Application> = self
            .config
            .application
            .iter()
            .map(|a| Application {
                id: a.id.clone(),
                name: a.id.clone(),
                client_id: a.client_id.clone(),
                status: ApplicationStatus::Active,
                created_at: None,
                updated_at: None,
            })
            .collect();
        apps.sort_by(|a, b| a.id.cmp(&b.id));
        apps
    }

    pub(crate) fn application(&self, id: &str) -> Result<Application, ApiError> {
        self.applications()
            .into_iter()
            .find(|a| a.id == id)
            .ok_or_else(|| not_found("application", id))
    }

    pub(crate) fn subscriptions(
        &self,
        api: &str,
        filter: &SubscriptionQuery,
    ) -> Result<Vec<Subscription>, ApiError> {
        self.api(api)?;
        let mut subs: Vec<Subscription> = self
            .config
            .subscription
            .iter()
            .filter(|s| s.api == api)
            .map(|s| Subscription {
                id: s.id.clone(),
                api: s.api.clone(),
                plan: s.plan.clone(),
                application: s.application.clone(),
                status: match s.status {
                    SubscriptionStatusConfig::Pending => SubscriptionStatus::Pending,
                    SubscriptionStatusConfig::Accepted => SubscriptionStatus::Accepted,
                    SubscriptionStatusConfig::Paused => SubscriptionStatus::Paused,
                    SubscriptionStatusConfig::Rejected => SubscriptionStatus::Rejected,
                    SubscriptionStatusConfig::Closed => SubscriptionStatus::Closed,
                },
                starting_at: instant(s.starting_at),
                ending_at: instant(s.ending_at),
                reason: None,
                created_at: None,
                updated_at: None,
            })
            .filter(|s| {
                filter.status.is_none_or(|st| st == s.status)
                    && filter.application.as_ref().is_none_or(|a| *a == s.application)
                    && filter.plan.as_ref().is_none_or(|p| *p == s.plan)
            })
            .collect();
        subs.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(subs)
    }

    pub(crate) fn subscription(&self, api: &str, id: &str) -> Result<Subscription, ApiError> {
        self.subscriptions(api, &SubscriptionQuery::default())?
            .into_iter()
            .find(|s| s.id == id)
            .ok_or_else(|| not_found("subscription", id))
    }
}
