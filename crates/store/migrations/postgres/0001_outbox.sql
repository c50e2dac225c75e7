-- The outbox, shared by every replica. Times are Unix milliseconds (UTC), as in the SQLite
-- schema, so both backends compare and round them alike.
CREATE TABLE events (
    id              BIGSERIAL PRIMARY KEY,
    lane            TEXT    NOT NULL,
    kind            TEXT    NOT NULL CHECK (kind IN ('events_v2', 'change', 'events_v1')),
    routing_key     TEXT    NOT NULL,
    dedup_key       TEXT,
    action          TEXT    CHECK (action IN ('trigger', 'acknowledge', 'resolve')),
    body            BYTEA   NOT NULL,
    source          TEXT    NOT NULL,
    received_at     BIGINT  NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'delivered', 'dead', 'coalesced', 'dropped')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_attempt_at BIGINT,
    last_status     INTEGER,
    last_error      TEXT,
    response        TEXT,
    finished_at     BIGINT,
    coalesced_into  BIGINT
);

-- The head of a lane, and a lane's backlog, are index seeks.
CREATE INDEX events_lane_pending ON events (lane, id) WHERE state = 'pending';
CREATE INDEX events_dead ON events (id) WHERE state = 'dead';
-- Purging by age and counting finished records without touching the pending ones.
CREATE INDEX events_finished ON events (finished_at, state)
    WHERE state IN ('delivered', 'coalesced', 'dropped');

-- One row per lane with pending events: what the dispatchers scan, and what they lock. A
-- replica claims a lane by locking its row (`FOR UPDATE SKIP LOCKED`, so replicas never wait
-- on each other) and writing its name and lease here; the lane is another's again once
-- `lease_until` has passed (a crashed replica's claim).
CREATE TABLE lanes (
    lane            TEXT    PRIMARY KEY,
    routing_key     TEXT    NOT NULL,
    pending         BIGINT  NOT NULL,
    next_attempt_at BIGINT  NOT NULL,
    claimed_by      TEXT,
    lease_until     BIGINT
);

CREATE INDEX lanes_due ON lanes (next_attempt_at);
CREATE INDEX lanes_routing_key ON lanes (routing_key);
