-- The catalog (tower-jwt-plan). Timestamps are Unix milliseconds.

-- Bumped by the first statement of every write transaction: it takes the write lock at once,
-- and live views poll it to learn that something changed.
CREATE TABLE catalog_revision (
    id INT PRIMARY KEY CHECK (id = 1),
    revision BIGINT NOT NULL
);
INSERT INTO catalog_revision (id, revision) VALUES (1, 0);

CREATE TABLE apis (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    context_path TEXT NOT NULL,
    backend TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE plans (
    id TEXT PRIMARY KEY,
    api TEXT NOT NULL REFERENCES apis (id),
    name TEXT NOT NULL,
    security TEXT NOT NULL CHECK (security IN ('jwt', 'keyless')),
    validation TEXT NOT NULL CHECK (validation IN ('auto', 'manual')),
    status TEXT NOT NULL CHECK (status IN ('staging', 'published', 'deprecated', 'closed')),
    jwt JSONB,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    CHECK ((security = 'jwt') = (jwt IS NOT NULL)),
    CHECK (security = 'jwt' OR status IN ('staging', 'closed'))
);
CREATE INDEX plans_api ON plans (api);

CREATE TABLE applications (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    client_id TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'archived')),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
-- A client id names one active application.
CREATE UNIQUE INDEX applications_active_client_id ON applications (client_id)
    WHERE status = 'active';

-- A subscription refers to its application: the client id is never copied here.
CREATE TABLE subscriptions (
    id TEXT PRIMARY KEY,
    api TEXT NOT NULL REFERENCES apis (id),
    plan TEXT NOT NULL REFERENCES plans (id),
    application TEXT NOT NULL REFERENCES applications (id),
    status TEXT NOT NULL CHECK (status IN ('pending', 'accepted', 'paused', 'rejected', 'closed')),
    starting_at BIGINT,
    ending_at BIGINT,
    reason TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
-- At most one pending, accepted or paused subscription per application and API.
CREATE UNIQUE INDEX subscriptions_one_active_per_api ON subscriptions (application, api)
    WHERE status IN ('pending', 'accepted', 'paused');
CREATE INDEX subscriptions_api ON subscriptions (api);

CREATE TABLE deployments (
    api TEXT NOT NULL REFERENCES apis (id),
    revision BIGINT NOT NULL,
    label TEXT,
    deployed_at BIGINT NOT NULL,
    definition JSONB NOT NULL,
    PRIMARY KEY (api, revision)
);

-- Live views LISTEN on `tjp_catalog`; the notification is delivered when the write commits.
CREATE FUNCTION tjp_catalog_notify() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('tjp_catalog', NEW.revision::text);
    RETURN NEW;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER catalog_revision_notify AFTER UPDATE ON catalog_revision
    FOR EACH ROW EXECUTE FUNCTION tjp_catalog_notify();
