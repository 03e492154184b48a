//! Plans: lifecycle, the keyless refusal, and the cascade of a close.

use super::{Tx, api_or_404, check_name, plan_or_404, put_sub, same_id};
use crate::catalog::CatalogError;
use crate::catalog::model::{
    NewPlan, Plan, PlanSecurity, PlanStatus, SubscriptionStatus, id_or_new, now,
};

fn check_plan_fields(input: &NewPlan) -> Result<(), CatalogError> {
    check_name("name", &input.name)?;
    match (input.security, &input.jwt) {
        (PlanSecurity::Jwt, Some(jwt)) => jwt
            .validate()
            .map_err(|e| CatalogError::invalid(format!("jwt.{}", e.field()), e.message())),
        (PlanSecurity::Jwt, None) => {
            Err(CatalogError::invalid("jwt", "a jwt plan needs its JWT settings"))
        }
        (PlanSecurity::Keyless, Some(_)) => {
            Err(CatalogError::invalid("jwt", "a keyless plan takes no JWT settings"))
        }
        (PlanSecurity::Keyless, None) => Ok(()),
    }?;
    if input.security == PlanSecurity::Keyless && restrictions_of(input).is_some() {
        return Err(CatalogError::invalid("restrictions", "a keyless plan takes no restrictions"));
    }
    Ok(())
}

/// The input's restrictions, with empty ones read as none (so they never change the state).
fn restrictions_of(input: &NewPlan) -> Option<crate::limit::Restrictions> {
    input.restrictions.filter(|r| !r.is_empty())
}

pub(crate) async fn create_plan<T: Tx>(
    tx: &mut T,
    api: &str,
    input: &NewPlan,
) -> Result<Plan, CatalogError> {
    let id = id_or_new(input.id.as_deref())?;
    api_or_404(tx, api).await?;
    check_plan_fields(input)?;
    if tx.plan(&id).await?.is_some() {
        return Err(CatalogError::AlreadyExists { kind: "plan", id });
    }
    let at = now();
    let plan = Plan {
        id,
        api: api.to_owned(),
        name: input.name.clone(),
        security: input.security,
        validation: input.validation,
        jwt: input.jwt.clone(),
        restrictions: restrictions_of(input),
        status: PlanStatus::Staging,
        created_at: at,
        updated_at: at,
    };
    tx.put_plan(&plan, true)
        .await
        .map_err(|e| e.or(|| CatalogError::AlreadyExists { kind: "plan", id: plan.id.clone() }))?;
    Ok(plan)
}

pub(crate) async fn get_plan<T: Tx>(tx: &mut T, api: &str, id: &str) -> Result<Plan, CatalogError> {
    api_or_404(tx, api).await?;
    plan_or_404(tx, api, id).await
}

pub(crate) async fn list_plans<T: Tx>(tx: &mut T, api: &str) -> Result<Vec<Plan>, CatalogError> {
    api_or_404(tx, api).await?;
    tx.plans(api).await
}

pub(crate) async fn update_plan<T: Tx>(
    tx: &mut T,
    api: &str,
    id: &str,
    input: &NewPlan,
) -> Result<Plan, CatalogError> {
    let mut plan = get_plan(tx, api, id).await?;
    same_id(input.id.as_deref(), id)?;
    if plan.status == PlanStatus::Closed {
        return Err(transition(&plan, "update"));
    }
    check_plan_fields(input)?;
    if input.security == PlanSecurity::Keyless && plan.status != PlanStatus::Staging {
        return Err(CatalogError::KeylessPlanRefused { plan: plan.id });
    }
    plan.name.clone_from(&input.name);
    plan.security = input.security;
    plan.validation = input.validation;
    plan.jwt.clone_from(&input.jwt);
    plan.restrictions = restrictions_of(input);
    plan.updated_at = now();
    tx.put_plan(&plan, false).await.map_err(|e| e.or(|| CatalogError::store("conflict")))?;
    Ok(plan)
}

fn transition(plan: &Plan, action: &'static str) -> CatalogError {
    CatalogError::InvalidPlanTransition {
        plan: plan.id.clone(),
        from: plan.status.as_str(),
        action,
    }
}

pub(crate) async fn publish_plan<T: Tx>(
    tx: &mut T,
    api: &str,
    id: &str,
) -> Result<Plan, CatalogError> {
    let mut plan = get_plan(tx, api, id).await?;
    if plan.status != PlanStatus::Staging {
        return Err(transition(&plan, "publish"));
    }
    if plan.security == PlanSecurity::Keyless {
        return Err(CatalogError::KeylessPlanRefused { plan: plan.id });
    }
    set_plan_status(tx, &mut plan, PlanStatus::Published).await?;
    Ok(plan)
}

pub(crate) async fn deprecate_plan<T: Tx>(
    tx: &mut T,
    api: &str,
    id: &str,
) -> Result<Plan, CatalogError> {
    let mut plan = get_plan(tx, api, id).await?;
    if plan.status != PlanStatus::Published {
        return Err(transition(&plan, "deprecate"));
    }
    set_plan_status(tx, &mut plan, PlanStatus::Deprecated).await?;
    Ok(plan)
}

/// Close a plan and, at once and irreversibly, all its active subscriptions.
pub(crate) async fn close_plan<T: Tx>(
    tx: &mut T,
    api: &str,
    id: &str,
) -> Result<Plan, CatalogError> {
    let mut plan = get_plan(tx, api, id).await?;
    if plan.status == PlanStatus::Closed {
        return Err(transition(&plan, "close"));
    }
    set_plan_status(tx, &mut plan, PlanStatus::Closed).await?;
    let at = plan.updated_at;
    for mut sub in tx.subscriptions(Some(api)).await? {
        if sub.plan == plan.id && sub.status.is_active() {
            sub.status = SubscriptionStatus::Closed;
            sub.updated_at = at;
            put_sub(tx, &sub).await?;
        }
    }
    Ok(plan)
}

async fn set_plan_status<T: Tx>(
    tx: &mut T,
    plan: &mut Plan,
    status: PlanStatus,
) -> Result<(), CatalogError> {
    plan.status = status;
    plan.updated_at = now();
    tx.put_plan(plan, false).await.map_err(|e| e.or(|| CatalogError::store("conflict")))
}

pub(crate) async fn delete_plan<T: Tx>(
    tx: &mut T,
    api: &str,
    id: &str,
) -> Result<(), CatalogError> {
    let plan = get_plan(tx, api, id).await?;
    // Active subscriptions are the first reason given: they are what the publisher must act on.
    let subs = tx.subscriptions(Some(api)).await?;
    if subs.iter().any(|s| s.plan == plan.id && s.status.is_active()) {
        return Err(CatalogError::PlanHasSubscriptions { plan: plan.id });
    }
    let deletable = matches!(plan.status, PlanStatus::Staging | PlanStatus::Closed)
        || plan.security == PlanSecurity::Keyless;
    if !deletable {
        return Err(transition(&plan, "delete"));
    }
    tx.delete_plan(id).await
}
