-- The way back. Times are Unix milliseconds (UTC); JSON is stored as text, byte for byte what
-- the SQLite backend keeps.

-- The incident map: one row per problem sent to PagerDuty, written in the commit that stores
-- the alert's event, completed when PagerDuty names the incident.
CREATE TABLE incidents (
    routing_key        TEXT    NOT NULL,
    dedup_key          TEXT    NOT NULL,
    source             TEXT    NOT NULL,
    monitor_ref        TEXT    NOT NULL,
    problem_id         TEXT,
    problem_started_at BIGINT,
    problem_seen_at    BIGINT  NOT NULL,
    monitor_state      TEXT    NOT NULL
                       CHECK (monitor_state IN ('problem', 'acknowledged', 'recovered')),
    monitor_changed_at BIGINT  NOT NULL,
    incident_id        TEXT,
    incident_url       TEXT,
    service_id         TEXT,
    pd_status          TEXT,
    pd_changed_at      BIGINT,
    memo               TEXT,
    created_at         BIGINT  NOT NULL,
    updated_at         BIGINT  NOT NULL,
    PRIMARY KEY (routing_key, dedup_key)
);

CREATE INDEX incidents_incident_id ON incidents (incident_id) WHERE incident_id IS NOT NULL;
CREATE INDEX incidents_dedup_key ON incidents (dedup_key);

-- What PagerDuty told us, stored before the webhook is answered; processed in order. The
-- unique external id makes a webhook retried to another replica a duplicate, not a second row.
CREATE TABLE sync_inbox (
    id           BIGSERIAL PRIMARY KEY,
    origin       TEXT    NOT NULL,
    external_id  TEXT    NOT NULL UNIQUE,
    body         BYTEA   NOT NULL,
    received_at  BIGINT  NOT NULL,
    processed_at BIGINT,
    outcome      TEXT
);

CREATE INDEX sync_inbox_pending ON sync_inbox (id) WHERE processed_at IS NULL;

-- Write-backs to the monitors, retried with backoff like deliveries. A replica about to carry
-- one out claims it (`claimed_by`, `lease_until`) so no other replica does it too.
CREATE TABLE writebacks (
    id              BIGSERIAL PRIMARY KEY,
    monitor         TEXT    NOT NULL,
    routing_key     TEXT    NOT NULL,
    dedup_key       TEXT    NOT NULL,
    change          TEXT    NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'done', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT  NOT NULL,
    last_error      TEXT,
    detail          TEXT,
    created_at      BIGINT  NOT NULL,
    finished_at     BIGINT,
    claimed_by      TEXT,
    lease_until     BIGINT
);

CREATE INDEX writebacks_due ON writebacks (next_attempt_at, id) WHERE state = 'pending';
CREATE INDEX writebacks_lane ON writebacks (monitor, routing_key, dedup_key, id)
    WHERE state = 'pending';

-- Changes acted on, by a key of their own, so one arriving a second way is recognised.
CREATE TABLE sync_seen (
    key     TEXT    PRIMARY KEY,
    seen_at BIGINT  NOT NULL
);

-- The poller's position in PagerDuty's log entries, and the like.
CREATE TABLE sync_cursors (
    name       TEXT    PRIMARY KEY,
    value      TEXT    NOT NULL,
    updated_at BIGINT  NOT NULL
);
