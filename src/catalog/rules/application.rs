//! Applications: client ids unique among active applications; archive.

use super::{Tx, check_name, put_sub, same_id};
use crate::catalog::CatalogError;
use crate::catalog::model::{
    Application, ApplicationStatus, NewApplication, SubscriptionStatus, id_or_new, now,
};

fn check_application_fields(input: &NewApplication) -> Result<(), CatalogError> {
    check_name("name", &input.name)?;
    let id = &input.client_id;
    if id.is_empty() || id.len() > 256 || id.chars().any(char::is_control) || id.trim() != id {
        return Err(CatalogError::invalid(
            "client_id",
            "must be 1 to 256 characters, no control characters or surrounding spaces",
        ));
    }
    Ok(())
}

async fn client_id_free<T: Tx>(
    tx: &mut T,
    client_id: &str,
    except: &str,
) -> Result<(), CatalogError> {
    let taken = tx.applications().await?.into_iter().any(|a| {
        a.status == ApplicationStatus::Active && a.client_id == client_id && a.id != except
    });
    if taken {
        return Err(CatalogError::ClientIdTaken { client_id: client_id.to_owned() });
    }
    Ok(())
}

fn client_id_taken(client_id: &str) -> impl FnOnce() -> CatalogError + '_ {
    move || CatalogError::ClientIdTaken { client_id: client_id.to_owned() }
}

pub(crate) async fn create_application<T: Tx>(
    tx: &mut T,
    input: &NewApplication,
) -> Result<Application, CatalogError> {
    let id = id_or_new(input.id.as_deref())?;
    check_application_fields(input)?;
    if tx.application(&id).await?.is_some() {
        return Err(CatalogError::AlreadyExists { kind: "application", id });
    }
    client_id_free(tx, &input.client_id, &id).await?;
    let at = now();
    let app = Application {
        id,
        name: input.name.clone(),
        client_id: input.client_id.clone(),
        status: ApplicationStatus::Active,
        created_at: at,
        updated_at: at,
    };
    tx.put_application(&app, true).await.map_err(|e| e.or(client_id_taken(&app.client_id)))?;
    Ok(app)
}

pub(crate) async fn get_application<T: Tx>(
    tx: &mut T,
    id: &str,
) -> Result<Application, CatalogError> {
    tx.application(id).await?.ok_or_else(|| CatalogError::not_found("application", id))
}

pub(crate) async fn list_applications<T: Tx>(tx: &mut T) -> Result<Vec<Application>, CatalogError> {
    tx.applications().await
}

/// Rename, or change the client id: every subscription follows at once, since subscriptions
/// refer to the application.
pub(crate) async fn update_application<T: Tx>(
    tx: &mut T,
    id: &str,
    input: &NewApplication,
) -> Result<Application, CatalogError> {
    let mut app = get_application(tx, id).await?;
    same_id(input.id.as_deref(), id)?;
    check_application_fields(input)?;
    if app.status == ApplicationStatus::Active {
        client_id_free(tx, &input.client_id, id).await?;
    }
    app.name.clone_from(&input.name);
    app.client_id.clone_from(&input.client_id);
    app.updated_at = now();
    tx.put_application(&app, false).await.map_err(|e| e.or(client_id_taken(&app.client_id)))?;
    Ok(app)
}

/// Archive: close the application's active subscriptions and free its client id.
pub(crate) async fn archive_application<T: Tx>(
    tx: &mut T,
    id: &str,
) -> Result<Application, CatalogError> {
    let mut app = get_application(tx, id).await?;
    if app.status == ApplicationStatus::Archived {
        return Ok(app);
    }
    app.status = ApplicationStatus::Archived;
    app.updated_at = now();
    tx.put_application(&app, false).await.map_err(|e| e.or(|| CatalogError::store("conflict")))?;
    for mut sub in tx.subscriptions(None).await? {
        if sub.application == app.id && sub.status.is_active() {
            sub.status = SubscriptionStatus::Closed;
            sub.updated_at = app.updated_at;
            put_sub(tx, &sub).await?;
        }
    }
    Ok(app)
}
