-- The way back. Times are Unix milliseconds (UTC); JSON is stored as text.

-- The incident map: one row per problem sent to PagerDuty, written in the commit that stores
-- the alert's event, completed when PagerDuty names the incident.
CREATE TABLE incidents (
    routing_key        TEXT    NOT NULL,
    dedup_key          TEXT    NOT NULL,
    source             TEXT    NOT NULL,
    monitor_ref        TEXT    NOT NULL,
    problem_id         TEXT,
    problem_started_at INTEGER,
    -- When pagerbridge stored the current problem's first event (its own clock, comparable
    -- with PagerDuty's incident times, unlike the monitor's).
    problem_seen_at    INTEGER NOT NULL,
    monitor_state      TEXT    NOT NULL
                       CHECK (monitor_state IN ('problem', 'acknowledged', 'recovered')),
    monitor_changed_at INTEGER NOT NULL,
    incident_id        TEXT,
    incident_url       TEXT,
    service_id         TEXT,
    pd_status          TEXT,
    pd_changed_at      INTEGER,
    memo               TEXT,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    PRIMARY KEY (routing_key, dedup_key)
) WITHOUT ROWID;

CREATE INDEX incidents_incident_id ON incidents (incident_id) WHERE incident_id IS NOT NULL;
-- Webhooks name the incident key (= dedup key) and the service, not the routing key.
CREATE INDEX incidents_dedup_key ON incidents (dedup_key);

-- What PagerDuty told us, stored before the webhook is answered; processed in order.
CREATE TABLE sync_inbox (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    origin       TEXT    NOT NULL,
    external_id  TEXT    NOT NULL UNIQUE,
    body         BLOB    NOT NULL,
    received_at  INTEGER NOT NULL,
    processed_at INTEGER,
    outcome      TEXT
);

CREATE INDEX sync_inbox_pending ON sync_inbox (id) WHERE processed_at IS NULL;

-- Write-backs to the monitors, retried with backoff like deliveries.
CREATE TABLE writebacks (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    monitor         TEXT    NOT NULL,
    routing_key     TEXT    NOT NULL,
    dedup_key       TEXT    NOT NULL,
    change          TEXT    NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'done', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    detail          TEXT,
    created_at      INTEGER NOT NULL,
    finished_at     INTEGER
);

CREATE INDEX writebacks_due ON writebacks (next_attempt_at, id) WHERE state = 'pending';
-- Write-backs of one problem to one monitor apply in order: only the oldest pending one of each
-- is due (an acknowledgement's silence must exist before the resolve expires it).
CREATE INDEX writebacks_lane ON writebacks (monitor, routing_key, dedup_key, id)
    WHERE state = 'pending';

-- Changes acted on, by a key of their own, so one arriving a second way is recognised.
CREATE TABLE sync_seen (
    key     TEXT    PRIMARY KEY,
    seen_at INTEGER NOT NULL
) WITHOUT ROWID;

-- The poller's position in PagerDuty's log entries, and the like.
CREATE TABLE sync_cursors (
    name       TEXT    PRIMARY KEY,
    value      TEXT    NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;
