//! Subscriptions: subscribe and the status transitions.

use time::OffsetDateTime;

use super::application::get_application;
use super::{Tx, api_or_404, plan_or_404, put_sub};
use crate::catalog::CatalogError;
use crate::catalog::model::{
    AcceptOptions, ApplicationStatus, NewSubscription, Plan, PlanSecurity, PlanStatus,
    Subscription, SubscriptionFilter, SubscriptionStatus, Validation, from_millis, id_or_new, now,
    to_millis,
};

fn subscribable(plan: &Plan) -> Result<(), CatalogError> {
    if plan.status != PlanStatus::Published || plan.security != PlanSecurity::Jwt {
        return Err(CatalogError::PlanNotSubscribable {
            plan: plan.id.clone(),
            status: plan.status.as_str(),
        });
    }
    Ok(())
}

pub(crate) async fn subscribe<T: Tx>(
    tx: &mut T,
    api: &str,
    input: &NewSubscription,
) -> Result<Subscription, CatalogError> {
    let id = id_or_new(input.id.as_deref())?;
    api_or_404(tx, api).await?;
    let plan = plan_or_404(tx, api, &input.plan).await?;
    let app = get_application(tx, &input.application).await?;
    if app.status != ApplicationStatus::Active {
        return Err(CatalogError::invalid("application", "the application is archived"));
    }
    subscribable(&plan)?;
    if tx.subscription(&id).await?.is_some() {
        return Err(CatalogError::AlreadyExists { kind: "subscription", id });
    }
    let already =
        CatalogError::AlreadySubscribed { application: app.id.clone(), api: api.to_owned() };
    let subs = tx.subscriptions(Some(api)).await?;
    if subs.iter().any(|s| s.application == app.id && s.status.is_active()) {
        return Err(already);
    }
    let at = now();
    let (status, starting_at) = match plan.validation {
        Validation::Auto => (SubscriptionStatus::Accepted, Some(at)),
        Validation::Manual => (SubscriptionStatus::Pending, None),
    };
    let sub = Subscription {
        id,
        api: api.to_owned(),
        plan: plan.id,
        application: app.id,
        status,
        starting_at,
        ending_at: None,
        reason: None,
        created_at: at,
        updated_at: at,
    };
    tx.put_subscription(&sub, true).await.map_err(|e| e.or(|| already))?;
    Ok(sub)
}

pub(crate) async fn get_subscription<T: Tx>(
    tx: &mut T,
    api: &str,
    id: &str,
) -> Result<Subscription, CatalogError> {
    api_or_404(tx, api).await?;
    match tx.subscription(id).await? {
        Some(s) if s.api == api => Ok(s),
        _ => Err(CatalogError::not_found("subscription", id)),
    }
}

pub(crate) async fn list_subscriptions<T: Tx>(
    tx: &mut T,
    api: &str,
    filter: &SubscriptionFilter,
) -> Result<Vec<Subscription>, CatalogError> {
    api_or_404(tx, api).await?;
    let subs = tx.subscriptions(Some(api)).await?;
    Ok(subs.into_iter().filter(|s| filter.matches(s)).collect())
}

/// What a subscription action does.
pub(crate) enum SubscriptionAction<'a> {
    Accept(&'a AcceptOptions),
    Reject(Option<&'a str>),
    Pause,
    Resume,
    Close,
    Transfer(&'a str),
}

fn truncate(at: Option<OffsetDateTime>) -> Option<OffsetDateTime> {
    at.map(|t| from_millis(to_millis(t)))
}

pub(crate) async fn act<T: Tx>(
    tx: &mut T,
    api: &str,
    id: &str,
    action: SubscriptionAction<'_>,
) -> Result<Subscription, CatalogError> {
    use SubscriptionStatus::{Accepted, Closed, Paused, Pending, Rejected};
    let mut sub = get_subscription(tx, api, id).await?;
    let refuse = |sub: &Subscription, action| CatalogError::InvalidSubscriptionTransition {
        subscription: sub.id.clone(),
        from: sub.status.as_str(),
        action,
    };
    let at = now();
    match action {
        SubscriptionAction::Accept(options) => {
            if sub.status != Pending {
                return Err(refuse(&sub, "accept"));
            }
            let plan = plan_or_404(tx, api, &sub.plan).await?;
            if plan.status == PlanStatus::Closed {
                return Err(refuse(&sub, "accept"));
            }
            let starting_at = truncate(options.starting_at).unwrap_or(at);
            let ending_at = truncate(options.ending_at);
            if ending_at.is_some_and(|end| end <= starting_at) {
                return Err(CatalogError::invalid("ending_at", "must be after starting_at"));
            }
            sub.status = Accepted;
            sub.starting_at = Some(starting_at);
            sub.ending_at = ending_at;
        }
        SubscriptionAction::Reject(reason) => {
            if sub.status != Pending {
                return Err(refuse(&sub, "reject"));
            }
            if reason.is_some_and(|r| r.chars().count() > 1024) {
                return Err(CatalogError::invalid("reason", "must be at most 1024 characters"));
            }
            sub.status = Rejected;
            sub.reason = reason.map(str::to_owned);
        }
        SubscriptionAction::Pause => {
            if sub.status != Accepted {
                return Err(refuse(&sub, "pause"));
            }
            sub.status = Paused;
        }
        SubscriptionAction::Resume => {
            if sub.status != Paused {
                return Err(refuse(&sub, "resume"));
            }
            sub.status = Accepted;
        }
        SubscriptionAction::Close => {
            if !sub.status.is_active() {
                return Err(refuse(&sub, "close"));
            }
            sub.status = Closed;
        }
        SubscriptionAction::Transfer(target) => {
            if !matches!(sub.status, Accepted | Paused) {
                return Err(refuse(&sub, "transfer"));
            }
            let plan = plan_or_404(tx, api, target).await?;
            if plan.id == sub.plan {
                return Err(CatalogError::invalid(
                    "plan",
                    "the subscription is already on this plan",
                ));
            }
            subscribable(&plan)?;
            sub.plan = plan.id;
        }
    }
    sub.updated_at = at;
    put_sub(tx, &sub).await?;
    Ok(sub)
}
