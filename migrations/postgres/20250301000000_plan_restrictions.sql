-- A plan's restrictions (rate limit, quota, spike arrest) as JSON; NULL: unrestricted.
ALTER TABLE plans ADD COLUMN restrictions JSONB;
