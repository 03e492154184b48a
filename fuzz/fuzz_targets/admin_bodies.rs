//! The management API's request bodies, read by the same strict parser as the routes
//! (`JsonBody::parse`): every input type must refuse with a one-line message naming the field,
//! never panic; a plan body that parses must also survive the definition's own checks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_jwt_plan_gateway::admin::error::{ApiError, JsonBody};
use tower_jwt_plan_gateway::admin::wire::{
    AcceptInput, ApiInput, ApplicationInput, DeploymentInput, PlanInput, RejectInput,
    SubscriptionInput,
};

fn one_line<T>(result: Result<T, ApiError>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(err) => {
            let text = format!("{err:?}");
            assert!(!text.contains('\n'), "refusals are one line: {text}");
            None
        }
    }
}

fuzz_target!(|data: &[u8]| {
    one_line(JsonBody::<ApiInput>::parse(data));
    one_line(JsonBody::<ApplicationInput>::parse(data));
    one_line(JsonBody::<SubscriptionInput>::parse(data));
    one_line(JsonBody::<AcceptInput>::parse(data));
    one_line(JsonBody::<RejectInput>::parse(data));
    one_line(JsonBody::<DeploymentInput>::parse(data));
    if let Some(plan) = one_line(JsonBody::<PlanInput>::parse(data)) {
        if let Some(jwt) = plan.jwt {
            let _ = jwt.validate();
        }
    }
});
