//! `gateway`: the example API gateway built on `tower-jwt-plan`.
//!
//! A reverse proxy that serves several APIs, each under its own context path, each protected by
//! the crate's `JwtPlanLayer`: a request reaches an API's backend only with a verified JWT whose
//! client holds an accepted subscription to one of the API's serving plans. APIs, plans,
//! applications and subscriptions come from a TOML file that is re-read on `SIGHUP`.
//!
//! # Run with
//!
//! From the repository root (`cargo run -p tower-jwt-plan-gateway` runs the same program):
//!
//! ```text
//! # Self-contained demo: built-in echo upstream, demo IdP (JWKS), one API `echo` at /echo.
//! # It prints a ready-to-paste curl line with a valid one-hour token.
//! cargo run --release --example gateway
//!
//! # Your own APIs, from a file; --listen overrides the file's `listen`.
//! cargo run --release --example gateway -- --config gateway.toml [--listen 127.0.0.1:8080]
//!
//! # Validate a file and exit (0: valid; 1 and a one-line reason on stderr otherwise).
//! cargo run --release --example gateway -- --config gateway.toml --check
//!
//! # Reload the file without dropping traffic; stop gracefully.
//! kill -HUP <pid>
//! kill -TERM <pid>
//! ```
//!
//! # Try it
//!
//! ```text
//! $ curl -i -H "Authorization: Bearer $TOKEN" 'http://127.0.0.1:8080/echo/hello?name=world'
//! HTTP/1.1 200 OK          (the echo upstream's JSON: method, path "/hello", query, headers)
//! $ curl -i 'http://127.0.0.1:8080/echo/hello'
//! HTTP/1.1 401 Unauthorized
//! www-authenticate: Bearer
//! {"error":"JWT_MISSING_TOKEN","message":"Unauthorized: a bearer token is required","http_status_code":401}
//! $ curl -i 'http://127.0.0.1:8080/nothing-here'
//! HTTP/1.1 404 Not Found
//! {"error":"NO_ROUTE","message":"no API is served at this path","http_status_code":404}
//! ```
//!
//! # Configuration file
//!
//! Unknown keys are errors. A file is validated whole before it is used, at startup and on
//! every `SIGHUP`.
//!
//! ```toml
//! listen = "127.0.0.1:8080"        # optional; default 127.0.0.1:8080; --listen overrides it
//! backend_timeout_secs = 30        # optional; time to the backend's response headers
//!
//! [[api]]
//! id = "echo"
//! context_path = "/echo"           # serves /echo and /echo/..., not /echoes; removed upstream
//! backend = "http://127.0.0.1:9000"  # http:// only; a path here is prefixed upstream
//!
//! [[api.plan]]
//! id = "gold"
//! name = "Gold"                    # optional, defaults to the id
//! security = "jwt"                 # "jwt" or "keyless"
//! status = "published"             # staging | published | deprecated | closed
//! algorithms = ["RS256", "ES256"]  # optional, default ["RS256"]
//! jwks_url = "https://idp.example/.well-known/jwks.json"  # exactly one of jwks_url,
//! # public_key_pem = "-----BEGIN PUBLIC KEY-----..."      # public_key_pem, hmac_secret
//! # hmac_secret = "at least 32 bytes of shared secret...."
//! issuer = "https://idp.example"   # optional, string or array
//! audience = ["api://echo"]        # optional, string or array
//! client_id_claim = "client_id"    # optional; default client_id, then azp
//! claims_to_headers = { sub = "x-user-id" }  # optional; client-sent copies are removed
//! propagate_auth_header = true     # optional; false removes Authorization upstream
//! # leeway_secs = 60, required_scopes = ["read"], scope_mode = "all" | "any",
//! # user_claim = "sub", extract_claims = true, max_lifetime_secs = 3600, token_types = ["JWT"]
//!
//! [[application]]
//! id = "app-1"
//! client_id = "my-client"
//!
//! [[subscription]]
//! id = "sub-1"
//! api = "echo"
//! plan = "gold"
//! application = "app-1"
//! status = "accepted"              # pending | accepted | paused | rejected | closed
//! starting_at = "2026-01-01T00:00:00Z"  # optional, RFC 3339, exclusive
//! ending_at = "2027-01-01T00:00:00Z"    # optional, RFC 3339, exclusive
//! ```
//!
//! A keyless plan that serves traffic (published or deprecated) is refused: it would let anyone
//! bypass the JWT plans. Plans sharing a JWKS URL share one `JwksCache`. The gateway starts even
//! when an IdP is unreachable: that IdP's plans answer 503 `JWKS_UNAVAILABLE` until keys arrive.
//!
//! # Behaviour
//!
//! - Routing: longest `context_path` on a path-segment boundary; no match is 404 `NO_ROUTE`.
//!   Paths with `.` or `..` segments are refused with 400 `BAD_PATH`.
//! - Forwarding (hyper-util's client): method, path without the context path, query, headers
//!   and a streamed body. Hop-by-hop headers (`connection` and the names it lists,
//!   `keep-alive`, `proxy-*`, `te`, `trailer`, `transfer-encoding`, `upgrade`) are dropped both
//!   ways, `Host` is the backend's, `x-forwarded-for`/`-host`/`-proto` are set. An unreachable
//!   backend is 502 `BACKEND_UNAVAILABLE`; no response headers within `backend_timeout_secs` is
//!   504 `BACKEND_TIMEOUT` (a response body already streaming is not cut). WebSocket upgrades
//!   and `CONNECT` are not supported.
//! - Reload (`SIGHUP`): the file is re-read and validated whole; a new routing table (routes,
//!   one `JwtPlanLayer` per API, one `InMemoryResolver`) replaces the old one behind a single
//!   `ArcSwap`, so each request sees the old configuration or the new one, never a mix, and
//!   APIs may be added or removed. JWKS caches are kept per URL across reloads. A refused file
//!   is logged and the previous configuration keeps serving. `listen` changes need a restart.
//! - Shutdown (`SIGTERM`/`SIGINT`): stop accepting, let in-flight requests finish (at most
//!
//! # Modules
//!
//! A request flows [`serve`] (accept, load the current table) -> [`routing`] (route, access
//! log) -> the API's `JwtPlanLayer` -> [`proxy`] (forward). [`config`] is the file's schema,
//! [`compile`] turns a [`config::Config`] into a routing table, [`demo`] is the no-argument
//! demo and [`cli`] the command line. `ARCHITECTURE.md` beside this crate has the map.

mod body;
pub mod cli;
pub mod compile;
pub mod config;
pub mod demo;
mod edge;
mod headers;
pub mod limits;
mod path;
pub mod proxy;
pub mod redact;
pub mod routing;
pub mod serve;
