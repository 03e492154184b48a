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
//! # DB mode: the catalog in SQLite (created if absent) or PostgreSQL (several gateways may
//! # share it), managed through the management API on --admin-listen (default 127.0.0.1:8081).
//! GATEWAY_ADMIN_TOKEN=... cargo run --release --example gateway -- --store sqlite:gateway.db
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
//! [tls]                            # optional; HTTPS only (ALPN h2, http/1.1); files re-read on SIGHUP
//! cert_file = "/etc/gateway/cert.pem"   # PEM chain, leaf first
//! key_file = "/etc/gateway/key.pem"     # PEM key (PKCS#8, PKCS#1, SEC1)
//! # client_ca_file = "/etc/gateway/clients.pem"  # ask for client certificates
//! # client_auth = "required"       # default with client_ca_file; or "optional"
//!
//! [[api]]
//! id = "echo"
//! context_path = "/echo"           # serves /echo and /echo/..., not /echoes; removed upstream
//! backend = "http://127.0.0.1:9000"  # http:// or https:// (verified); a path here is prefixed
//! # backend_ca_file = "/etc/gateway/backend-ca.pem"  # optional, https only: a CA to trust too
//! # resource_metadata = { resource = "https://api.example/echo",  # RFC 9728, optional; the
//! #   authorization_servers = ["https://idp.example"], scopes_supported = ["read"] }  # path is the context path
//!
//! [[api.plan]]
//! id = "gold"
//! name = "Gold"                    # optional, defaults to the id
//! security = "jwt"                 # "jwt" or "keyless"
//! status = "published"             # staging | published | deprecated | closed
//! algorithms = ["RS256", "ES256"]  # optional, default ["RS256"]
//! jwks_url = "https://idp.example/.well-known/jwks.json"  # exactly one of jwks_url,
//! # public_key_pem = "-----BEGIN PUBLIC KEY-----..."      # public_key_pem, hmac_secret,
//! # hmac_secret = "at least 32 bytes of shared secret...." # oidc_issuer
//! # oidc_issuer = "https://idp.example"  # OpenID Connect discovery; issuer defaults to it
//! issuer = "https://idp.example"   # optional, string or array
//! audience = ["api://echo"]        # optional, string or array
//! client_id_claim = "client_id"    # optional; default client_id, then azp
//! claims_to_headers = { sub = "x-user-id" }  # optional; client-sent copies are removed
//! propagate_auth_header = true     # optional; false removes Authorization upstream
//! # leeway_secs = 60, required_scopes = ["read"], scope_mode = "all" | "any",
//! # user_claim = "sub", extract_claims = true, max_lifetime_secs = 3600, token_types = ["JWT"]
//! # revocation_list_url = "https://idp.example/revoked"  # fail closed: 503 until first loaded
//! # confirmation = "off"           # "optional" | "required": RFC 8705 cnf.x5t#S256 vs client cert
//!
//! [api.plan.restrictions]          # optional, JWT plans; 429 past a limit, per subscription
//! rate_limit = { limit = 100, period_secs = 60 }  # also quota = { limit, period = "month" },
//! # spike_arrest = { limit, period_secs }; --rate-limit-store redis://... shares the counters
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
//! - Routing, on one canonical path that is also what is authorised and forwarded:
//!   1. percent-encoded unreserved characters (`A-Z a-z 0-9 - . _ ~`) are decoded
//!      (`/shop/%61dmin` is `/shop/admin`), other percent-encodings get upper-case hex; a
//!      malformed `%`, a byte outside printable ASCII or a path not starting with `/` is 400
//!      `BAD_PATH`;
//!   2. the longest `context_path` whose segments equal the path's first segments (each
//!      compared without its `;` parameters) wins; no match is 404 `NO_ROUTE`;
//!   3. a routed path is refused with 400 `BAD_PATH` when backends could read it otherwise:
//!      `.` or `..` segments (encoded or not, `..;` too), `%2F`, `%5C` or `\`, `%00`, an empty
//!      segment (`//`) anywhere but at the end, `;` in a segment of the context path;
//!   4. the normalised path, minus the context path, is forwarded after the backend's path.
//! - Request headers: names containing `_` are dropped (as nginx does), so no alias of a
//!   claim header or of `x-forwarded-*` reaches a CGI-style backend (`claims_to_headers` names
//!   with `_` are refused); two `Host` headers are 400 `BAD_HOST`; `Forwarded` gets this hop
//!   appended (`for=<client>;host=<Host>;proto=http`, as `x-forwarded-for` gets the client) and
//!   `X-Real-IP` is the client's address. A request body that cannot be read (malformed
//!   chunked encoding) is 400 `BAD_REQUEST_BODY`, not a backend error.
//! - Forwarding (HTTP/1.1, one pool of kept-alive connections per backend): method, path
//!   without the context path, query, headers and a streamed body. A connection is reused once
//!   its response has been read whole; idle ones close after 60 seconds, and at most 256 wait
//!   per backend. A request that a pooled connection could not start to send (the backend had
//!   closed it) goes out on another; one that was sent is never repeated. Hop-by-hop headers (`connection` and the names it lists,
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
//! - Shutdown (`SIGTERM`/`SIGINT`): both listeners stop accepting; the proxy's requests and
//!   the management API's calls in flight get [`SHUTDOWN_GRACE`](serve::SHUTDOWN_GRACE) (10 s)
//!   from the signal to finish.
//!
//! # Connection limits
//!
//! The optional `[limits]` table; the values are fixed at startup (a reload that changes them
//! is logged and waits for a restart). See [`limits`] for each key and its default.
//!
//! ```toml
//! [limits]
//! first_bytes_timeout_secs = 10        # first bytes of a connection, protocol detection included
//! header_read_timeout_secs = 10        # HTTP/1 request head, and HTTP/1 keep-alive idle time
//! http2_keep_alive_interval_secs = 20  # HTTP/2 PING interval
//! http2_keep_alive_timeout_secs = 20   # HTTP/2 PING answer deadline
//! http2_idle_timeout_secs = 60         # HTTP/2 connection with no request in flight
//! max_connections = 512                # beyond it, new connections wait in the listen backlog
//! max_request_head_bytes = 65536       # request line + headers; above it 431, exactly
//! ```
//!
//! Reaching `max_connections` and failing to accept (out of file descriptors) are logged at
//! most once every 10 s, with the count of what was not logged. Config errors never show the
//! user info of a URL (`http://***@host`).
//!
//! # Modules
//!
//! A request flows [`serve`] (accept, load the current table) -> [`routing`] (route, access
//! log) -> the API's `JwtPlanLayer` -> [`proxy`] (forward). [`config`] is the file's schema,
//! [`compile`] turns a [`config::Config`] into a routing table, [`demo`] is the no-argument
//! demo and [`cli`] the command line. [`store`] is DB mode (routing tables from the catalog's
//! live view) and [`admin`] the management API (its contract is in the README). [`limits`] is the `[limits]` table; private modules hold
//! the edge (connection limits), the canonical path, the header rules, the watched request
//! body; [`redact`] hides URL credentials. `ARCHITECTURE.md` beside this crate has the map.

pub mod admin;
mod body;
pub mod cli;
pub mod compile;

pub mod config;
pub mod demo;
mod edge;
mod headers;
pub mod limits;
mod path;
mod pool;
pub mod proxy;
pub mod redact;
pub mod routing;
pub mod serve;
pub mod store;
pub mod tls;
