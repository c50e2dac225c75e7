-- The outbox. Times are Unix milliseconds (UTC).
CREATE TABLE events (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    lane            TEXT    NOT NULL,
    kind            TEXT    NOT NULL CHECK (kind IN ('events_v2', 'change', 'events_v1')),
    routing_key     TEXT    NOT NULL,
    dedup_key       TEXT,
    action          TEXT    CHECK (action IN ('trigger', 'acknowledge', 'resolve')),
    body            BLOB    NOT NULL,
    source          TEXT    NOT NULL,
    received_at     INTEGER NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'delivered', 'dead', 'coalesced', 'dropped')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_attempt_at INTEGER,
    last_status     INTEGER,
    last_error      TEXT,
    response        TEXT,
    finished_at     INTEGER,
    coalesced_into  INTEGER
);

-- The head of a lane, and a lane's backlog, are index seeks.
CREATE INDEX events_lane_pending ON events (lane, id) WHERE state = 'pending';
CREATE INDEX events_dead ON events (id) WHERE state = 'dead';
-- Purging by age and counting finished records without touching the pending ones.
CREATE INDEX events_finished ON events (finished_at, state)
    WHERE state IN ('delivered', 'coalesced', 'dropped');

-- One row per lane with pending events: what the dispatcher scans, so that its cost follows the
-- number of lanes, not the number of queued events.
CREATE TABLE lanes (
    lane            TEXT    PRIMARY KEY,
    routing_key     TEXT    NOT NULL,
    pending         INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE INDEX lanes_due ON lanes (next_attempt_at);
CREATE INDEX lanes_routing_key ON lanes (routing_key);
