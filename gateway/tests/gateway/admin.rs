//! The management API through the binary: the source document's flow over HTTP, every error
//! code, the token on every route, the OpenAPI document, restart on one SQLite file, 20
//! concurrent subscribes, file mode's read-only API, and the README's tutorial.

use super::*;

pub(crate) const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// Every route of the contract, as (method, path) with `{…}` parameters.
pub(crate) const ROUTES: &[(&str, &str)] = &[
    ("POST", "/apis"),
    ("GET", "/apis"),
    ("GET", "/apis/{api}"),
    ("PUT", "/apis/{api}"),
    ("DELETE", "/apis/{api}"),
    ("POST", "/apis/{api}/deployments"),
    ("POST", "/apis/{api}/plans"),
    ("GET", "/apis/{api}/plans"),
    ("GET", "/apis/{api}/plans/{plan}"),
    ("PUT", "/apis/{api}/plans/{plan}"),
    ("DELETE", "/apis/{api}/plans/{plan}"),
    ("POST", "/apis/{api}/plans/{plan}/_publish"),
    ("POST", "/apis/{api}/plans/{plan}/_deprecate"),
    ("POST", "/apis/{api}/plans/{plan}/_close"),
    ("POST", "/applications"),
    ("GET", "/applications"),
    ("GET", "/applications/{app}"),
    ("PUT", "/applications/{app}"),
    ("DELETE", "/applications/{app}"),
    ("POST", "/apis/{api}/subscriptions"),
    ("GET", "/apis/{api}/subscriptions"),
    ("GET", "/apis/{api}/subscriptions/{sub}"),
    ("POST", "/apis/{api}/subscriptions/{sub}/_accept"),
    ("POST", "/apis/{api}/subscriptions/{sub}/_reject"),
    ("POST", "/apis/{api}/subscriptions/{sub}/_pause"),
    ("POST", "/apis/{api}/subscriptions/{sub}/_resume"),
    ("POST", "/apis/{api}/subscriptions/{sub}/_close"),
    ("POST", "/apis/{api}/subscriptions/{sub}/_transfer"),
];

/// A gateway process in DB mode with its management API.
pub(crate) struct Managed {
    pub(crate) gw: GatewayProcess,
    pub(crate) admin: String,
}

impl Managed {
    pub(crate) async fn start(store: &str) -> Self {
        let mut gw =
            GatewayProcess::spawn_env(&["--store", store], &[("GATEWAY_ADMIN_TOKEN", ADMIN_TOKEN)])
                .await;
        let line =
            gw.wait_for(Stream::Out, 0, |l| l.starts_with("admin listening on http://")).await;
        let admin = line.trim_start_matches("admin listening on ").to_owned();
        Self { gw, admin }
    }

    pub(crate) async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        admin_call(&self.admin, Some(ADMIN_TOKEN), method, path, body).await
    }

    /// A call that must answer `status`; returns its JSON (or `null`).
    pub(crate) async fn expect(
        &self,
        status: u16,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Value {
        let reply = self.call(method, path, body).await;
        assert_eq!(reply.status.as_u16(), status, "{method} {path}: {reply:?}");
        if reply.body.is_empty() { Value::Null } else { reply.json() }
    }

    /// A refusal with `status` and `code`; returns its message.
    pub(crate) async fn refuse(
        &self,
        status: u16,
        code: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> String {
        let reply = self.call(method, path, body).await;
        assert_eq!(reply.status.as_u16(), status, "{method} {path}: {reply:?}");
        assert_eq!(reply.code(), code, "{method} {path}");
        reply.json()["message"].as_str().unwrap_or_default().to_owned()
    }
}

pub(crate) async fn admin_call(
    base: &str,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Reply {
    let mut req = Request::builder().method(method).uri(format!("{base}{path}"));
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    let body = match body {
        Some(value) => Full::new(Bytes::from(value.to_string())).boxed_unsync(),
        None => empty(),
    };
    send(req.header("content-type", "application/json").body(body).expect("request")).await
}

/// The JWT plan of the tests, on the fixture's IdP.
pub(crate) fn gold_plan(f: &Fixture, id: &str, validation: &str) -> Value {
    json!({
        "id": id, "name": format!("Plan {id}"), "security": "jwt", "validation": validation,
        "jwt": {
            "algorithms": ["ES256"], "jwks_url": f.idp.jwks_url, "issuer": f.idp.issuer,
            "audience": AUDIENCE, "claims_to_headers": {"sub": "x-user-id"}
        }
    })
}

/// Poll `url` with `token` until it answers `status`, within `bound`; returns how long it took.
pub(crate) async fn served_within(
    url: &str,
    token: Option<&str>,
    status: u16,
    bound: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        let reply = get(url, token).await;
        if reply.status.as_u16() == status {
            return started.elapsed();
        }
        assert!(started.elapsed() < bound, "{url} still answers {reply:?} after {bound:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The propagation bound of the contract (1 s), plus one poll interval of this test.
pub(crate) const PROPAGATION: Duration = Duration::from_millis(1100);

/// Create the echo API with plan `gold` published and deployed, application `app-1` with
/// `client-1`, subscribed.
pub(crate) async fn set_up_echo(m: &Managed, f: &Fixture) {
    let backend = format!("http://{}", f.upstream);
    m.expect(
        201,
        "POST",
        "/apis",
        Some(json!({"id": "echo", "name": "Echo", "context_path": "/echo", "backend": backend})),
    )
    .await;
    m.expect(201, "POST", "/apis/echo/plans", Some(gold_plan(f, "gold", "auto"))).await;
    m.expect(200, "POST", "/apis/echo/plans/gold/_publish", None).await;
    m.expect(202, "POST", "/apis/echo/deployments", None).await;
    m.expect(
        201,
        "POST",
        "/applications",
        Some(json!({"id": "app-1", "name": "App", "client_id": "client-1"})),
    )
    .await;
    m.expect(
        201,
        "POST",
        "/apis/echo/subscriptions",
        Some(json!({"application": "app-1", "plan": "gold"})),
    )
    .await;
}

#[tokio::test]
async fn the_source_document_flow_over_http() {
    let f = Fixture::start().await;
    let db = f.dir.0.join("flow.db");
    let m = Managed::start(&format!("sqlite:{}", db.display())).await;
    let url = format!("{}/echo/hello", m.gw.base);
    let token = f.token("client-1");

    // Publisher: the API, a keyless plan (as a new API has), the JWT plan with auto validation.
    let backend = format!("http://{}", f.upstream);
    let api = m
        .expect(
            201,
            "POST",
            "/apis",
            Some(
                json!({"id": "echo", "name": "Echo", "context_path": "/echo", "backend": backend}),
            ),
        )
        .await;
    assert_eq!(api["deployment_state"], "need_redeploy");
    assert!(api["deployed_at"].is_null() && api["updated_at"].is_string());
    let keyless = m.expect(201, "POST", "/apis/echo/plans", Some(json!({"id": "keyless", "name": "Keyless", "security": "keyless", "validation": "auto"}))).await;
    assert_eq!(keyless["status"], "staging");
    let gold = m.expect(201, "POST", "/apis/echo/plans", Some(gold_plan(&f, "gold", "auto"))).await;
    assert_eq!(gold["status"], "staging");
    assert_eq!(gold["jwt"]["jwks_url"], f.idp.jwks_url.as_str());
    let published = m.expect(200, "POST", "/apis/echo/plans/gold/_publish", None).await;
    assert_eq!(published["status"], "published");
    m.refuse(409, "KEYLESS_PLAN_REFUSED", "POST", "/apis/echo/plans/keyless/_publish", None).await;
    m.expect(204, "DELETE", "/apis/echo/plans/keyless", None).await;
    m.refuse(404, "NOT_FOUND", "GET", "/apis/echo/plans/keyless", None).await;

    // Out of sync until deployed; nothing is routed before the first deployment.
    assert_eq!(m.expect(200, "GET", "/apis/echo", None).await["deployment_state"], "need_redeploy");
    assert_eq!(get(&url, Some(&token)).await.code(), "NO_ROUTE");
    let deployment =
        m.expect(202, "POST", "/apis/echo/deployments", Some(json!({"label": "first"}))).await;
    assert_eq!(deployment["api"], "echo");
    assert_eq!(deployment["revision"], 1);
    assert!(deployment["deployed_at"].is_string());
    let api = m.expect(200, "GET", "/apis/echo", None).await;
    assert_eq!(api["deployment_state"], "deployed");
    let apis = m.expect(200, "GET", "/apis", None).await;
    assert_eq!(apis.as_array().map(Vec::len), Some(1));

    // Consumer: an application with its client id, a subscription accepted at once.
    let app = m
        .expect(
            201,
            "POST",
            "/applications",
            Some(json!({"id": "app-1", "name": "My app", "client_id": "client-1"})),
        )
        .await;
    assert_eq!(app["client_id"], "client-1");
    let sub = m
        .expect(
            201,
            "POST",
            "/apis/echo/subscriptions",
            Some(json!({"application": "app-1", "plan": "gold"})),
        )
        .await;
    assert_eq!(sub["status"], "accepted");
    for key in [
        "id",
        "api",
        "plan",
        "application",
        "starting_at",
        "ending_at",
        "reason",
        "created_at",
        "updated_at",
    ] {
        assert!(sub.get(key).is_some(), "subscription lacks {key}: {sub}");
    }
    let sub_id = sub["id"].as_str().expect("id").to_owned();

    // The call: 200 within a second, with the claims forwarded as configured.
    served_within(&url, Some(&token), 200, PROPAGATION).await;
    let reply = get(&url, Some(&token)).await;
    assert_eq!(reply.echoed_header("x-user-id").as_deref(), Some("user-1"));
    assert_eq!(get(&url, None).await.code(), "JWT_MISSING_TOKEN");

    // A change to the API marks it out of sync, and the deployed definition keeps serving.
    m.expect(
        200,
        "PUT",
        "/apis/echo",
        Some(json!({"name": "Echo v2", "context_path": "/echo", "backend": backend})),
    )
    .await;
    assert_eq!(m.expect(200, "GET", "/apis/echo", None).await["deployment_state"], "need_redeploy");
    assert_eq!(get(&url, Some(&token)).await.status, StatusCode::OK);

    // Subscription changes need no deployment: pause stops, resume restores.
    m.expect(200, "POST", &format!("/apis/echo/subscriptions/{sub_id}/_pause"), None).await;
    served_within(&url, Some(&token), 403, PROPAGATION).await;
    m.expect(200, "POST", &format!("/apis/echo/subscriptions/{sub_id}/_resume"), None).await;
    served_within(&url, Some(&token), 200, PROPAGATION).await;
    let listed = m
        .expect(200, "GET", "/apis/echo/subscriptions?status=accepted&application=app-1", None)
        .await;
    assert_eq!(listed.as_array().map(Vec::len), Some(1));

    // Closing the plan closes its subscriptions at once.
    m.expect(200, "POST", "/apis/echo/plans/gold/_close", None).await;
    let closed = m.expect(200, "GET", &format!("/apis/echo/subscriptions/{sub_id}"), None).await;
    assert_eq!(closed["status"], "closed");
    let refused = served_within(&url, Some(&token), 403, PROPAGATION).await;
    assert!(refused < PROPAGATION);
}

#[tokio::test]
async fn every_error_code_of_the_contract() {
    let f = Fixture::start().await;
    let m = Managed::start(&format!("sqlite:{}", f.dir.0.join("codes.db").display())).await;
    let backend = format!("http://{}", f.upstream);
    let api = |id: &str, path: &str| json!({"id": id, "name": "A", "context_path": path, "backend": backend});

    // 400 INVALID_REQUEST, naming the field.
    let msg = m
        .refuse(
            400,
            "INVALID_REQUEST",
            "POST",
            "/apis",
            Some(json!({"name": "A", "context_path": "/a", "backend": backend, "colour": 1})),
        )
        .await;
    assert!(msg.contains("colour"), "{msg}");
    let msg = m
        .refuse(
            400,
            "INVALID_REQUEST",
            "POST",
            "/apis",
            Some(json!({"name": "A", "backend": backend})),
        )
        .await;
    assert!(msg.contains("context_path"), "{msg}");
    let msg = m
        .refuse(
            400,
            "INVALID_REQUEST",
            "POST",
            "/apis",
            Some(json!({"name": 5, "context_path": "/a", "backend": backend})),
        )
        .await;
    assert!(msg.starts_with("name"), "{msg}");
    let msg = m
        .refuse(
            400,
            "INVALID_REQUEST",
            "POST",
            "/apis",
            Some(json!({"id": "bad id!", "name": "A", "context_path": "/a", "backend": backend})),
        )
        .await;
    assert!(msg.contains("id"), "{msg}");
    let msg = m.refuse(400, "INVALID_REQUEST", "POST", "/apis", Some(api("a", "no-slash"))).await;
    assert!(msg.contains("context_path"), "{msg}");
    let msg = m
        .refuse(
            400,
            "INVALID_REQUEST",
            "POST",
            "/apis",
            Some(json!({"name": "A", "context_path": "/a", "backend": "ftp://x"})),
        )
        .await;
    assert!(msg.contains("backend"), "{msg}");
    let reply = admin_call(&m.admin, Some(ADMIN_TOKEN), "POST", "/applications", None).await;
    assert_eq!(reply.code(), "INVALID_REQUEST");
    let raw = Request::post(format!("{}/apis", m.admin))
        .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
        .body(Full::new(Bytes::from_static(b"{\"name\":")).boxed_unsync())
        .expect("request");
    let reply = send(raw).await;
    assert_eq!(reply.code(), "INVALID_REQUEST");
    assert!(reply.json()["message"].as_str().unwrap_or_default().contains("JSON"));

    m.expect(201, "POST", "/apis", Some(api("echo", "/echo"))).await;
    let mut two_keys = gold_plan(&f, "two", "auto");
    two_keys["jwt"]["hmac_secret"] = json!("0123456789abcdef0123456789abcdef");
    let msg = m.refuse(400, "INVALID_REQUEST", "POST", "/apis/echo/plans", Some(two_keys)).await;
    assert!(msg.contains("jwt."), "{msg}");
    let mut no_key = gold_plan(&f, "none", "auto");
    no_key["jwt"].as_object_mut().expect("object").remove("jwks_url");
    m.refuse(400, "INVALID_REQUEST", "POST", "/apis/echo/plans", Some(no_key)).await;
    let msg = m
        .refuse(
            400,
            "INVALID_REQUEST",
            "POST",
            "/apis/echo/plans",
            Some(json!({"name": "X", "security": "oauth", "validation": "auto"})),
        )
        .await;
    assert!(msg.starts_with("security"), "{msg}");
    let msg = m
        .refuse(400, "INVALID_REQUEST", "GET", "/apis/echo/subscriptions?status=maybe", None)
        .await;
    assert!(msg.starts_with("status"), "{msg}");
    let msg = m.refuse(400, "INVALID_REQUEST", "POST", "/apis", Some(api("other", "/echo/"))).await;
    assert!(msg.contains("context_path"), "{msg}");

    // 413 over 1 MiB.
    let big = json!({"name": "x".repeat(1 << 20), "context_path": "/big", "backend": backend});
    let reply = m.call("POST", "/apis", Some(big)).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reply.code(), "PAYLOAD_TOO_LARGE");

    // 404 NOT_FOUND: unknown ids and unknown paths.
    m.refuse(404, "NOT_FOUND", "GET", "/apis/nope", None).await;
    m.refuse(404, "NOT_FOUND", "GET", "/apis/echo/plans/nope", None).await;
    m.refuse(404, "NOT_FOUND", "GET", "/applications/nope", None).await;
    m.refuse(404, "NOT_FOUND", "GET", "/apis/echo/subscriptions/nope", None).await;
    m.refuse(404, "NOT_FOUND", "GET", "/nothing/here", None).await;

    // 409 ALREADY_EXISTS.
    m.refuse(409, "ALREADY_EXISTS", "POST", "/apis", Some(api("echo", "/elsewhere"))).await;

    m.expect(201, "POST", "/apis/echo/plans", Some(gold_plan(&f, "gold", "auto"))).await;
    m.expect(201, "POST", "/apis/echo/plans", Some(gold_plan(&f, "silver", "manual"))).await;
    m.expect(
        201,
        "POST",
        "/apis/echo/plans",
        Some(json!({"id": "open", "name": "Open", "security": "keyless", "validation": "auto"})),
    )
    .await;
    m.refuse(
        409,
        "ALREADY_EXISTS",
        "POST",
        "/apis/echo/plans",
        Some(gold_plan(&f, "gold", "auto")),
    )
    .await;
    m.refuse(409, "KEYLESS_PLAN_REFUSED", "POST", "/apis/echo/plans/open/_publish", None).await;
    m.refuse(409, "INVALID_PLAN_TRANSITION", "POST", "/apis/echo/plans/gold/_deprecate", None)
        .await;
    m.expect(
        201,
        "POST",
        "/applications",
        Some(json!({"id": "app-1", "name": "A", "client_id": "client-1"})),
    )
    .await;
    m.refuse(
        409,
        "CLIENT_ID_TAKEN",
        "POST",
        "/applications",
        Some(json!({"id": "app-2", "name": "B", "client_id": "client-1"})),
    )
    .await;
    m.refuse(
        409,
        "ALREADY_EXISTS",
        "POST",
        "/applications",
        Some(json!({"id": "app-1", "name": "B", "client_id": "client-9"})),
    )
    .await;
    m.refuse(
        409,
        "PLAN_NOT_SUBSCRIBABLE",
        "POST",
        "/apis/echo/subscriptions",
        Some(json!({"application": "app-1", "plan": "gold"})),
    )
    .await;
    m.expect(200, "POST", "/apis/echo/plans/gold/_publish", None).await;
    m.expect(200, "POST", "/apis/echo/plans/silver/_publish", None).await;
    m.refuse(409, "API_HAS_ACTIVE_PLANS", "DELETE", "/apis/echo", None).await;
    let sub = m
        .expect(
            201,
            "POST",
            "/apis/echo/subscriptions",
            Some(json!({"id": "s1", "application": "app-1", "plan": "gold"})),
        )
        .await;
    assert_eq!(sub["status"], "accepted");
    m.refuse(
        409,
        "ALREADY_SUBSCRIBED",
        "POST",
        "/apis/echo/subscriptions",
        Some(json!({"application": "app-1", "plan": "silver"})),
    )
    .await;
    m.refuse(409, "PLAN_HAS_SUBSCRIPTIONS", "DELETE", "/apis/echo/plans/gold", None).await;
    m.refuse(
        409,
        "INVALID_SUBSCRIPTION_TRANSITION",
        "POST",
        "/apis/echo/subscriptions/s1/_resume",
        None,
    )
    .await;
    m.refuse(
        409,
        "INVALID_SUBSCRIPTION_TRANSITION",
        "POST",
        "/apis/echo/subscriptions/s1/_accept",
        Some(json!({})),
    )
    .await;

    // Manual validation: pending, then accepted with dates; transfer; reject; archive.
    m.expect(
        201,
        "POST",
        "/applications",
        Some(json!({"id": "app-2", "name": "B", "client_id": "client-2"})),
    )
    .await;
    let pending = m
        .expect(
            201,
            "POST",
            "/apis/echo/subscriptions",
            Some(json!({"id": "s2", "application": "app-2", "plan": "silver"})),
        )
        .await;
    assert_eq!(pending["status"], "pending");
    let msg = m
        .refuse(
            400,
            "INVALID_REQUEST",
            "POST",
            "/apis/echo/subscriptions/s2/_accept",
            Some(json!({"starting_at": "yesterday"})),
        )
        .await;
    assert!(msg.starts_with("starting_at"), "{msg}");
    let accepted = m
        .expect(
            200,
            "POST",
            "/apis/echo/subscriptions/s2/_accept",
            Some(
                json!({"starting_at": "2020-01-01T00:00:00Z", "ending_at": "2999-01-01T00:00:00Z"}),
            ),
        )
        .await;
    assert_eq!(accepted["status"], "accepted");
    assert_eq!(accepted["ending_at"], "2999-01-01T00:00:00Z");
    let moved = m
        .expect(200, "POST", "/apis/echo/subscriptions/s2/_transfer", Some(json!({"plan": "gold"})))
        .await;
    assert_eq!(moved["plan"], "gold");
    m.expect(200, "POST", "/apis/echo/subscriptions/s2/_close", None).await;
    m.expect(
        201,
        "POST",
        "/apis/echo/subscriptions",
        Some(json!({"id": "s3", "application": "app-2", "plan": "silver"})),
    )
    .await;
    let rejected = m
        .expect(200, "POST", "/apis/echo/subscriptions/s3/_reject", Some(json!({"reason": "no"})))
        .await;
    assert_eq!(
        (rejected["status"].as_str(), rejected["reason"].as_str()),
        (Some("rejected"), Some("no"))
    );
    m.expect(
        200,
        "PUT",
        "/applications/app-2",
        Some(json!({"name": "B2", "client_id": "client-22"})),
    )
    .await;
    m.expect(204, "DELETE", "/applications/app-2", None).await;
    assert_eq!(m.expect(200, "GET", "/applications/app-2", None).await["status"], "archived");
    m.expect(200, "PUT", "/apis/echo/plans/silver", Some(gold_plan(&f, "silver", "auto"))).await;
    assert_eq!(
        m.expect(200, "GET", "/apis/echo/plans", None).await.as_array().map(Vec::len),
        Some(3)
    );
    m.expect(200, "POST", "/apis/echo/plans/silver/_deprecate", None).await;
    m.refuse(405, "METHOD_NOT_ALLOWED", "PATCH", "/apis/echo", None).await;
}

/// Fill a route's parameters with ids that exist (or not: auth comes first either way).
fn concrete(path: &str) -> String {
    path.replace("{api}", "echo")
        .replace("{plan}", "gold")
        .replace("{app}", "app-1")
        .replace("{sub}", "s1")
}

#[tokio::test]
async fn the_admin_token_guards_every_route_and_the_document_lists_them() {
    let f = Fixture::start().await;
    let m = Managed::start(&format!("sqlite:{}", f.dir.0.join("auth.db").display())).await;
    for (method, path) in ROUTES {
        let path = concrete(path);
        for token in [None, Some("wrong-token-0123456789"), Some("")] {
            let reply = admin_call(&m.admin, token, method, &path, Some(json!({}))).await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{method} {path} with {token:?}");
            assert_eq!(reply.code(), "ADMIN_UNAUTHORIZED");
        }
    }
    assert_eq!(
        admin_call(&m.admin, None, "GET", "/unknown", None).await.code(),
        "ADMIN_UNAUTHORIZED"
    );
    // The management API is never served on the proxy's listener.
    let reply = admin_call(&m.gw.base, Some(ADMIN_TOKEN), "GET", "/apis", None).await;
    assert_eq!(reply.code(), "NO_ROUTE");

    let reply = admin_call(&m.admin, None, "GET", "/openapi.json", None).await;
    assert_eq!(reply.status, StatusCode::OK);
    let doc = reply.json();
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1.")), "{}", doc["openapi"]);
    for (method, path) in ROUTES {
        let op = &doc["paths"][*path][method.to_lowercase()];
        assert!(op.is_object(), "the document lacks {method} {path}");
        assert!(op["responses"].is_object(), "{method} {path} has no responses");
    }
    for schema in
        ["Api", "ApiInput", "Plan", "PlanInput", "Application", "Subscription", "ErrorBody"]
    {
        assert!(doc["components"]["schemas"][schema].is_object(), "no schema {schema}");
    }
}

#[tokio::test]
async fn a_restart_on_the_same_sqlite_file_serves_at_once() {
    let f = Fixture::start().await;
    let store = format!("sqlite:{}", f.dir.0.join("restart.db").display());
    let token = f.token("client-1");
    {
        let m = Managed::start(&store).await;
        set_up_echo(&m, &f).await;
        served_within(&format!("{}/echo/x", m.gw.base), Some(&token), 200, PROPAGATION).await;
        let mut gw = m.gw;
        gw.signal("TERM");
        assert!(gw.wait_exit().await.success());
    }
    let m = Managed::start(&store).await;
    // The first request after the restart is served: the deployed state is loaded at start.
    let reply = get(&format!("{}/echo/x", m.gw.base), Some(&token)).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let api = m.expect(200, "GET", "/apis/echo", None).await;
    assert_eq!(api["deployment_state"], "deployed");
    let subs = m.expect(200, "GET", "/apis/echo/subscriptions", None).await;
    assert_eq!(subs[0]["status"], "accepted");
}

#[tokio::test]
async fn twenty_concurrent_subscribes_give_one_201() {
    let f = Fixture::start().await;
    let m = Managed::start(&format!("sqlite:{}", f.dir.0.join("race.db").display())).await;
    let backend = format!("http://{}", f.upstream);
    m.expect(
        201,
        "POST",
        "/apis",
        Some(json!({"id": "echo", "name": "Echo", "context_path": "/echo", "backend": backend})),
    )
    .await;
    m.expect(201, "POST", "/apis/echo/plans", Some(gold_plan(&f, "gold", "auto"))).await;
    m.expect(200, "POST", "/apis/echo/plans/gold/_publish", None).await;
    m.expect(
        201,
        "POST",
        "/applications",
        Some(json!({"id": "app-1", "name": "A", "client_id": "client-1"})),
    )
    .await;
    let attempts = (0..20).map(|_| {
        let admin = m.admin.clone();
        tokio::spawn(async move {
            admin_call(
                &admin,
                Some(ADMIN_TOKEN),
                "POST",
                "/apis/echo/subscriptions",
                Some(json!({"application": "app-1", "plan": "gold"})),
            )
            .await
        })
    });
    let mut created = 0;
    for attempt in attempts.collect::<Vec<_>>() {
        let reply = attempt.await.expect("task");
        match reply.status.as_u16() {
            201 => created += 1,
            409 => assert_eq!(reply.code(), "ALREADY_SUBSCRIBED"),
            other => panic!("unexpected {other}: {reply:?}"),
        }
    }
    assert_eq!(created, 1);
}

#[tokio::test]
async fn file_mode_reads_the_file_and_refuses_writes() {
    let f = Fixture::start().await;
    let path = f.write("gateway.toml", &f.simple_config());
    let mut gw = GatewayProcess::spawn_env(
        &["--config", path.to_str().expect("utf-8")],
        &[("GATEWAY_ADMIN_TOKEN", ADMIN_TOKEN)],
    )
    .await;
    let line = gw.wait_for(Stream::Out, 0, |l| l.starts_with("admin listening on http://")).await;
    let admin = line.trim_start_matches("admin listening on ").to_owned();
    let call = |method: &'static str, path: &'static str| {
        let admin = admin.clone();
        async move { admin_call(&admin, Some(ADMIN_TOKEN), method, path, Some(json!({}))).await }
    };
    let apis = call("GET", "/apis").await.json();
    assert_eq!(apis[0]["id"], "echo");
    assert_eq!(apis[0]["deployment_state"], "deployed");
    assert_eq!(call("GET", "/apis/echo/plans/gold").await.json()["status"], "published");
    assert_eq!(call("GET", "/applications").await.json().as_array().map(Vec::len), Some(2));
    assert_eq!(call("GET", "/apis/echo/subscriptions/sub-1").await.json()["status"], "accepted");
    assert_eq!(call("GET", "/apis/nope").await.code(), "NOT_FOUND");
    for (method, path) in ROUTES.iter().filter(|(m, _)| *m != "GET") {
        let reply =
            admin_call(&admin, Some(ADMIN_TOKEN), method, &concrete(path), Some(json!({}))).await;
        assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert_eq!(reply.code(), "READ_ONLY_CONFIG");
    }
    // Without a token, still 401 first.
    assert_eq!(admin_call(&admin, None, "POST", "/apis", None).await.code(), "ADMIN_UNAUTHORIZED");
}
