//! Compile a configuration into a routing table: one route per API, each with its own
//! `JwtPlanLayer` over a proxy to the API's backend, all sharing one `InMemoryResolver` that
//! holds the subscriptions.
//!
//! The whole configuration is validated before anything is used; an error names the item
//! (`api `echo`, plan `gold`: ...`) on one line. Compiling spawns nothing: the JWKS workers of
//! new URLs are handed back, to be spawned by the caller only if the table is used. The input
//! is the plain [`Config`] data, whatever produced it (the TOML file today). Imports
//! [`crate::config`], [`crate::limits`], [`crate::redact`], [`crate::routing`] and
//! [`crate::proxy`].

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::time::Duration;

use tower::Layer;
use tower_jwt_plan::definition::{Remotes, SharedRemotes};
use tower_jwt_plan::limit::{PlanLimitLayer, PlanLimits, Restrictions};
use tower_jwt_plan::{
    Algorithm, InMemoryResolver, JwtPlanLayer, JwtSettings, KeySource, Plan, PlanSecurity,
    PlanStatus, ProtectedResourceMetadata, ScopeMode, Subscription,
};

use crate::config::{
    Config, DEFAULT_BACKEND_TIMEOUT, PlanConfig, ResourceMetadataConfig, ScopeModeConfig,
    SecurityConfig,
};
use crate::limits::Limits;
use crate::proxy::{Backend, HttpClient, Proxy, http_client_with};
use crate::redact::redact_userinfo;
use crate::routing::{Route, RoutingTable, Summary};

/// A routing table with the JWKS caches and revocation lists it uses (one per URL or issuer),
/// holding the workers of the new ones.
pub(crate) struct Compiled {
    pub(crate) table: RoutingTable,
    /// Each API's plan restrictions, to put in the `PlanLimitLayer`'s table once used.
    pub(crate) restrictions: Vec<(String, Vec<(String, Restrictions)>)>,
    pub(crate) remotes: SharedRemotes,
}

/// Validate a configuration whole, as `--check` does: nothing is fetched or spawned.
pub fn check_config(config: &Config) -> Result<Summary, String> {
    let limit = PlanLimitLayer::new(PlanLimits::new());
    compile(config, &SharedRemotes::new(), &http_client_with(None)?, &limit)
        .map(|c| c.table.summary)
}

fn context_prefix(context_path: &str) -> Result<String, &'static str> {
    if !context_path.starts_with('/') {
        return Err("must start with `/`");
    }
    let plain = context_path.chars().all(|c| c.is_ascii_graphic() && c != '?' && c != '#');
    if !plain {
        return Err("must be a plain path (no spaces, `?` or `#`)");
    }
    let prefix = context_path.trim_end_matches('/');
    if prefix.split('/').skip(1).any(|seg| seg.is_empty() || seg == "." || seg == "..") {
        return Err("must not have empty, `.` or `..` segments");
    }
    Ok(prefix.to_owned())
}

fn check_id(kind: &str, id: &str) -> Result<(), String> {
    if id.trim().is_empty() {
        return Err(format!("{kind} id must not be empty"));
    }
    Ok(())
}

/// The RFC 9728 document of an API at `prefix`, and the path it is served at.
fn resource_metadata(
    config: &ResourceMetadataConfig,
    prefix: &str,
) -> Result<(String, ProtectedResourceMetadata, String), String> {
    let mut metadata = ProtectedResourceMetadata::new(config.resource.as_str());
    for server in &config.authorization_servers {
        metadata = metadata.authorization_server(server.as_str());
    }
    for scope in &config.scopes_supported {
        metadata = metadata.scope(scope.as_str());
    }
    let url = metadata.well_known_url().map_err(|e| format!("resource_metadata: {e}"))?;
    let path = config
        .resource
        .parse::<http::Uri>()
        .map(|u| u.path().trim_end_matches('/').to_owned())
        .map_err(|_| "resource_metadata: `resource` is not a URL".to_owned())?;
    if path != prefix {
        return Err(format!(
            "resource_metadata: the path of `resource` ({path:?}) must be the context path"
        ));
    }
    Ok((format!("/.well-known/oauth-protected-resource{prefix}"), metadata, url))
}

fn build_plan(plan: &PlanConfig, remotes: &mut SharedRemotes) -> Result<Plan, String> {
    let name = plan.name.clone().unwrap_or_else(|| plan.id.clone());
    let status = PlanStatus::from(plan.status);
    if plan.security == SecurityConfig::Keyless {
        let jwt_only = [
            ("algorithms", plan.algorithms.is_some()),
            ("jwks_url", plan.jwks_url.is_some()),
            ("public_key_pem", plan.public_key_pem.is_some()),
            ("hmac_secret", plan.hmac_secret.is_some()),
            ("oidc_issuer", plan.oidc_issuer.is_some()),
            ("issuer", plan.issuer.is_some()),
            ("audience", plan.audience.is_some()),
            ("client_id_claim", plan.client_id_claim.is_some()),
            ("claims_to_headers", plan.claims_to_headers.is_some()),
            ("propagate_auth_header", plan.propagate_auth_header.is_some()),
            ("leeway_secs", plan.leeway_secs.is_some()),
            ("required_scopes", plan.required_scopes.is_some()),
            ("scope_mode", plan.scope_mode.is_some()),
            ("user_claim", plan.user_claim.is_some()),
            ("extract_claims", plan.extract_claims.is_some()),
            ("max_lifetime_secs", plan.max_lifetime_secs.is_some()),
            ("token_types", plan.token_types.is_some()),
            ("restrictions", plan.restrictions.is_some()),
            ("revocation_list_url", plan.revocation_list_url.is_some()),
            ("confirmation", plan.confirmation.is_some()),
        ];
        if let Some((field, _)) = jwt_only.iter().find(|(_, set)| *set) {
            return Err(format!("`{field}` does not apply to a keyless plan"));
        }
        return Ok(Plan::new(plan.id.as_str(), name, status, PlanSecurity::Keyless));
    }
    let keys = match (&plan.jwks_url, &plan.public_key_pem, &plan.hmac_secret, &plan.oidc_issuer) {
        (Some(url), None, None, None) => {
            KeySource::jwks(remotes.jwks(url).map_err(|e| e.to_string())?)
        }
        (None, Some(pem), None, None) => {
            KeySource::public_key_pem(pem).map_err(|e| format!("public_key_pem: {e}"))?
        }
        (None, None, Some(secret), None) => KeySource::hmac_secret(secret.as_bytes()),
        (None, None, None, Some(issuer)) => {
            KeySource::jwks(remotes.oidc_issuer(issuer).map_err(|e| format!("oidc_issuer: {e}"))?)
        }
        _ => {
            return Err("a jwt plan needs exactly one of `jwks_url`, `public_key_pem`, \
                 `hmac_secret`, `oidc_issuer`"
                .into());
        }
    };
    let mut settings = JwtSettings::new(keys);
    if let Some(url) = &plan.revocation_list_url {
        let list = remotes.revocation_list(url).map_err(|e| format!("revocation_list_url: {e}"))?;
        settings = settings.revocation_list(list);
    }
    if let Some(policy) = plan.confirmation {
        settings = settings.confirmation(policy.into());
    }
    if let Some(names) = &plan.algorithms {
        let algorithms = names
            .iter()
            .map(|name| {
                Algorithm::from_str(name).map_err(|_| format!("unknown algorithm `{name}`"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        settings = settings.algorithms(algorithms);
    }
    for issuer in plan.issuer.iter().flatten() {
        settings = settings.issuer(issuer.as_str());
    }
    for audience in plan.audience.iter().flatten() {
        settings = settings.audience(audience.as_str());
    }
    if let Some(claim) = &plan.client_id_claim {
        settings = settings.client_id_claim(claim.as_str());
    }
    for (claim, header) in plan.claims_to_headers.iter().flatten() {
        // The edge drops client headers with `_`; a claim header must not be an alias of one.
        if header.contains('_') {
            return Err(format!("claims_to_headers: header name `{header}` must not contain `_`"));
        }
        settings = settings.claim_to_header(claim.as_str(), header.as_str());
    }
    if let Some(on) = plan.propagate_auth_header {
        settings = settings.propagate_auth_header(on);
    }
    if let Some(secs) = plan.leeway_secs {
        settings = settings.leeway(Duration::from_secs(secs));
    }
    if plan.scope_mode.is_some() && plan.required_scopes.is_none() {
        return Err("`scope_mode` needs `required_scopes`".into());
    }
    if let Some(scopes) = &plan.required_scopes {
        let mode = match plan.scope_mode {
            Some(ScopeModeConfig::Any) => ScopeMode::Any,
            Some(ScopeModeConfig::All) | None => ScopeMode::All,
        };
        settings = settings.required_scopes(scopes.iter().map(String::as_str), mode);
    }
    if let Some(claim) = &plan.user_claim {
        settings = settings.user_claim(claim.as_str());
    }
    if let Some(on) = plan.extract_claims {
        settings = settings.extract_claims(on);
    }
    if let Some(secs) = plan.max_lifetime_secs {
        settings = settings.max_lifetime(Duration::from_secs(secs));
    }
    if let Some(types) = &plan.token_types {
        settings = settings.token_types(types.iter().map(String::as_str));
    }
    Ok(Plan::jwt(plan.id.as_str(), name, settings).with_status(status))
}

/// Validate a configuration whole and build its routing table. Nothing is spawned: the
/// workers of new JWKS caches and revocation lists are returned, to be spawned only if the
/// table is used; those of `known` still used are reused.
///
/// Errors never show the user info of a URL ([`redact_userinfo`]).
pub(crate) fn compile(
    config: &Config,
    known: &SharedRemotes,
    client: &HttpClient,
    limit: &PlanLimitLayer,
) -> Result<Compiled, String> {
    compile_checked(config, known, client, limit).map_err(|e| redact_userinfo(&e))
}

fn compile_checked(
    config: &Config,
    known: &SharedRemotes,
    client: &HttpClient,
    limit: &PlanLimitLayer,
) -> Result<Compiled, String> {
    Limits::from_config(&config.limits)?;
    if let Some(tls) = &config.tls {
        tls.load()?;
    }
    let timeout = match config.backend_timeout_secs {
        None => DEFAULT_BACKEND_TIMEOUT,
        Some(0) => return Err("`backend_timeout_secs` must be more than zero".into()),
        Some(secs) => Duration::from_secs(secs),
    };
    let listen = config.listen_addr()?;
    if config.api.is_empty() {
        return Err("no [[api]] is defined".into());
    }

    let resolver = InMemoryResolver::default();
    let mut remotes = SharedRemotes::reusing(known);
    let mut routes = Vec::new();
    let mut metadata = Vec::new();
    let mut prefixes: HashMap<String, &str> = HashMap::new();
    let mut plans_of: HashMap<&str, HashSet<&str>> = HashMap::new();
    let mut summary = Summary::default();
    let mut restrictions = Vec::new();

    for api in &config.api {
        check_id("api", &api.id)?;
        if plans_of.contains_key(api.id.as_str()) {
            return Err(format!("duplicate api id `{}`", api.id));
        }
        let prefix = context_prefix(&api.context_path)
            .map_err(|r| format!("api `{}`: context_path `{}` {r}", api.id, api.context_path))?;
        if let Some(other) = prefixes.insert(prefix.clone(), &api.id) {
            return Err(format!(
                "api `{}`: context_path `{}` is already used by api `{other}`",
                api.id, api.context_path
            ));
        }
        let backend = Backend::parse(&api.backend)
            .map_err(|r| format!("api `{}`: backend `{}` {r}", api.id, api.backend))?;
        // An API with its own CA gets its own client (and connection pool).
        let api_client = match &api.backend_ca_file {
            None => client.clone(),
            Some(_) if !api.backend.starts_with("https://") => {
                return Err(format!("api `{}`: backend_ca_file needs an https:// backend", api.id));
            }
            Some(path) => {
                http_client_with(Some(path)).map_err(|e| format!("api `{}`: {e}", api.id))?
            }
        };
        let mut plans = Vec::with_capacity(api.plan.len());
        for plan in &api.plan {
            let built = build_plan(plan, &mut remotes)
                .map_err(|e| format!("api `{}`, plan `{}`: {e}", api.id, plan.id))?;
            plans.push(built);
        }
        // Checks plan ids (empty, duplicate), keyless plans that would serve, algorithms
        // against keys, claim header names.
        let mut builder = JwtPlanLayer::builder(api.id.as_str()).plans(plans);
        if let Some(config) = &api.resource_metadata {
            let (path, document, url) =
                resource_metadata(config, &prefix).map_err(|e| format!("api `{}`: {e}", api.id))?;
            builder = builder.resource_metadata(url);
            metadata.push((path, document.service()));
        }
        let layer = builder
            .resolver(resolver.clone())
            .build()
            .map_err(|e| format!("api `{}`: {e}", api.id))?;
        plans_of.insert(&api.id, api.plan.iter().map(|p| p.id.as_str()).collect());
        summary.plans += api.plan.len();
        restrictions.push((
            api.id.clone(),
            api.plan
                .iter()
                .filter_map(|p| Some((p.id.clone(), p.restrictions.filter(|r| !r.is_empty())?)))
                .collect(),
        ));
        let proxy = Proxy::new(prefix.len(), backend, timeout, &api_client);
        // The restrictions sit inside the JWT layer: they count only authorised requests.
        let service = layer.layer(limit.layer(proxy.clone()));
        routes.push(Route { api: api.id.as_str().into(), prefix, service, proxy });
    }
    routes.sort_by_key(|route| std::cmp::Reverse(route.prefix.len()));
    summary.apis = routes.len();

    let mut client_of: HashMap<&str, &str> = HashMap::new();
    let mut app_of_client: HashMap<&str, &str> = HashMap::new();
    for app in &config.application {
        check_id("application", &app.id)?;
        if client_of.contains_key(app.id.as_str()) {
            return Err(format!("duplicate application id `{}`", app.id));
        }
        if app.client_id.is_empty() {
            return Err(format!("application `{}`: client_id must not be empty", app.id));
        }
        if let Some(other) = app_of_client.insert(&app.client_id, &app.id) {
            return Err(format!(
                "application `{}`: client_id `{}` is already used by application `{other}`",
                app.id, app.client_id
            ));
        }
        client_of.insert(&app.id, &app.client_id);
    }
    summary.applications = client_of.len();

    let mut subscriptions = Vec::with_capacity(config.subscription.len());
    let mut sub_ids = HashSet::new();
    let mut holder: HashMap<(&str, &str, &str), &str> = HashMap::new();
    for sub in &config.subscription {
        check_id("subscription", &sub.id)?;
        if !sub_ids.insert(sub.id.as_str()) {
            return Err(format!("duplicate subscription id `{}`", sub.id));
        }
        let Some(plans) = plans_of.get(sub.api.as_str()) else {
            return Err(format!("subscription `{}`: unknown api `{}`", sub.id, sub.api));
        };
        if !plans.contains(sub.plan.as_str()) {
            return Err(format!(
                "subscription `{}`: api `{}` has no plan `{}`",
                sub.id, sub.api, sub.plan
            ));
        }
        let Some(client_id) = client_of.get(sub.application.as_str()) else {
            return Err(format!(
                "subscription `{}`: unknown application `{}`",
                sub.id, sub.application
            ));
        };
        if let (Some(start), Some(end)) = (sub.starting_at, sub.ending_at)
            && start >= end
        {
            return Err(format!("subscription `{}`: starting_at is not before ending_at", sub.id));
        }
        let key = (sub.api.as_str(), sub.plan.as_str(), sub.application.as_str());
        if let Some(other) = holder.insert(key, &sub.id) {
            return Err(format!(
                "subscription `{}`: application `{}` already holds subscription `{other}` to plan `{}` of api `{}`",
                sub.id, sub.application, sub.plan, sub.api
            ));
        }
        let mut subscription = Subscription::new(
            sub.id.as_str(),
            sub.api.as_str(),
            sub.plan.as_str(),
            sub.application.as_str(),
            *client_id,
            sub.status.into(),
        );
        if let Some(at) = sub.starting_at {
            subscription = subscription.starting_at(at);
        }
        if let Some(at) = sub.ending_at {
            subscription = subscription.ending_at(at);
        }
        subscriptions.push(subscription);
    }
    summary.subscriptions = subscriptions.len();
    resolver.replace_all(subscriptions);

    Ok(Compiled {
        table: RoutingTable { routes, metadata, listen, summary },
        restrictions,
        remotes,
    })
}
