//! APIs and deployments: the deployment state is computed from the deployed definition.

use super::{Tx, api_or_404, check_name, same_id};
use crate::catalog::CatalogError;
use crate::catalog::model::{
    Api, ApiDefinition, DeployedPlan, Deployment, DeploymentState, NewApi, PlanStatus, id_or_new,
    now,
};

fn check_api_fields(input: &NewApi) -> Result<(), CatalogError> {
    check_name("name", &input.name)?;
    let path = &input.context_path;
    let plain = path.starts_with('/')
        && path.len() <= 1024
        && path.chars().all(|c| c.is_ascii_graphic() && c != '?' && c != '#');
    let prefix = path.trim_end_matches('/');
    if !plain || prefix.split('/').skip(1).any(|seg| seg.is_empty() || seg == "." || seg == "..") {
        return Err(CatalogError::invalid(
            "context_path",
            "must start with `/`, be a plain path and have no empty, `.` or `..` segments",
        ));
    }
    let backend = url::Url::parse(&input.backend)
        .map_err(|_| CatalogError::invalid("backend", "must be an http or https URL"))?;
    if !matches!(backend.scheme(), "http" | "https") || backend.host_str().is_none() {
        return Err(CatalogError::invalid("backend", "must be an http or https URL"));
    }
    Ok(())
}

/// Two APIs cannot share a context path (a trailing `/` aside): a gateway could not tell which
/// of them a request is for. Checked inside the write transaction, which holds the catalog's
/// write lock, so two writers cannot both find the path free.
async fn context_path_free<T: Tx>(tx: &mut T, id: &str, path: &str) -> Result<(), CatalogError> {
    let prefix = path.trim_end_matches('/');
    let apis = tx.apis().await?;
    match apis
        .iter()
        .find(|other| other.id != id && other.context_path.trim_end_matches('/') == prefix)
    {
        Some(other) => Err(CatalogError::invalid(
            "context_path",
            format!("`{path}` is already used by api `{}`", other.id),
        )),
        None => Ok(()),
    }
}

/// The API's current definition: itself and its non-staging plans.
async fn definition_of<T: Tx>(tx: &mut T, api: &Api) -> Result<ApiDefinition, CatalogError> {
    let plans = tx
        .plans(&api.id)
        .await?
        .into_iter()
        .filter(|p| p.status != PlanStatus::Staging)
        .map(|p| DeployedPlan {
            id: p.id,
            name: p.name,
            security: p.security,
            validation: p.validation,
            status: p.status,
            jwt: p.jwt,
            restrictions: p.restrictions,
        })
        .collect();
    Ok(ApiDefinition {
        id: api.id.clone(),
        name: api.name.clone(),
        context_path: api.context_path.clone(),
        backend: api.backend.clone(),
        plans,
    })
}

/// Fill the computed fields: compare the current definition with the last deployed one.
async fn with_state<T: Tx>(tx: &mut T, mut api: Api) -> Result<Api, CatalogError> {
    let deployed = tx.last_deployment(&api.id).await?;
    let current = definition_of(tx, &api).await?;
    api.deployed_at = deployed.as_ref().map(|d| d.deployed_at);
    api.deployment_state = match deployed {
        Some(d) if d.definition == current => DeploymentState::Deployed,
        _ => DeploymentState::NeedRedeploy,
    };
    Ok(api)
}

pub(crate) async fn create_api<T: Tx>(tx: &mut T, input: &NewApi) -> Result<Api, CatalogError> {
    let id = id_or_new(input.id.as_deref())?;
    check_api_fields(input)?;
    if tx.api(&id).await?.is_some() {
        return Err(CatalogError::AlreadyExists { kind: "api", id });
    }
    context_path_free(tx, &id, &input.context_path).await?;
    let at = now();
    let api = Api {
        id,
        name: input.name.clone(),
        context_path: input.context_path.clone(),
        backend: input.backend.clone(),
        deployment_state: DeploymentState::NeedRedeploy,
        deployed_at: None,
        created_at: at,
        updated_at: at,
    };
    tx.put_api(&api, true)
        .await
        .map_err(|e| e.or(|| CatalogError::AlreadyExists { kind: "api", id: api.id.clone() }))?;
    Ok(api)
}

pub(crate) async fn get_api<T: Tx>(tx: &mut T, id: &str) -> Result<Api, CatalogError> {
    let api = api_or_404(tx, id).await?;
    with_state(tx, api).await
}

pub(crate) async fn list_apis<T: Tx>(tx: &mut T) -> Result<Vec<Api>, CatalogError> {
    let mut out = Vec::new();
    for api in tx.apis().await? {
        out.push(with_state(tx, api).await?);
    }
    Ok(out)
}

pub(crate) async fn update_api<T: Tx>(
    tx: &mut T,
    id: &str,
    input: &NewApi,
) -> Result<Api, CatalogError> {
    let mut api = api_or_404(tx, id).await?;
    same_id(input.id.as_deref(), id)?;
    check_api_fields(input)?;
    context_path_free(tx, id, &input.context_path).await?;
    api.name.clone_from(&input.name);
    api.context_path.clone_from(&input.context_path);
    api.backend.clone_from(&input.backend);
    api.updated_at = now();
    tx.put_api(&api, false).await.map_err(|e| e.or(|| CatalogError::store("conflict")))?;
    with_state(tx, api).await
}

pub(crate) async fn delete_api<T: Tx>(tx: &mut T, id: &str) -> Result<(), CatalogError> {
    api_or_404(tx, id).await?;
    let plans = tx.plans(id).await?;
    if plans.iter().any(|p| matches!(p.status, PlanStatus::Published | PlanStatus::Deprecated)) {
        return Err(CatalogError::ApiHasActivePlans { api: id.to_owned() });
    }
    tx.delete_api(id).await
}

pub(crate) async fn deploy<T: Tx>(
    tx: &mut T,
    id: &str,
    label: Option<&str>,
) -> Result<Deployment, CatalogError> {
    let api = api_or_404(tx, id).await?;
    if let Some(label) = label {
        check_name("label", label)?;
    }
    let revision = tx.last_deployment(id).await?.map_or(0, |d| d.revision) + 1;
    let deployment = Deployment {
        api: id.to_owned(),
        revision,
        label: label.map(str::to_owned),
        deployed_at: now(),
        definition: definition_of(tx, &api).await?,
    };
    tx.insert_deployment(&deployment)
        .await
        .map_err(|e| e.or(|| CatalogError::store("conflict")))?;
    Ok(deployment)
}

pub(crate) async fn last_deployment<T: Tx>(
    tx: &mut T,
    api: &str,
) -> Result<Option<Deployment>, CatalogError> {
    api_or_404(tx, api).await?;
    tx.last_deployment(api).await
}
