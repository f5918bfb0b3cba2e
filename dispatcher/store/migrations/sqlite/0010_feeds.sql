-- Upstream feeds (NWS, county CAP): each upstream message decided once (its row claimed before
-- anything is sent, so several nodes and restarts relay it once), the thread of messages about
-- one upstream alert with its campus alert, every decision made, and the proposals waiting for
-- a dispatcher.
CREATE TABLE feed_messages (
    message_key TEXT PRIMARY KEY,
    thread_key TEXT NOT NULL,
    feed TEXT NOT NULL,
    claimed_by TEXT NOT NULL,
    claimed_at INTEGER NOT NULL
);

CREATE TABLE feed_threads (
    thread_key TEXT PRIMARY KEY,
    feed TEXT NOT NULL,
    event TEXT NOT NULL,
    area_key TEXT NOT NULL,
    instruction_key TEXT NOT NULL,
    zones TEXT,
    alert_id TEXT,
    proposal_id TEXT,
    state TEXT NOT NULL,
    expires_at INTEGER,
    updated_at INTEGER NOT NULL
);
CREATE INDEX feed_threads_state ON feed_threads (state, expires_at);

CREATE TABLE feed_events (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    feed TEXT NOT NULL,
    message_key TEXT NOT NULL,
    thread_key TEXT NOT NULL,
    event TEXT NOT NULL,
    area_key TEXT NOT NULL,
    outcome TEXT NOT NULL,
    reason TEXT NOT NULL,
    alert_id TEXT,
    proposal_id TEXT
);
CREATE INDEX feed_events_repeat ON feed_events (event, area_key, outcome, at);

CREATE TABLE feed_proposals (
    id TEXT PRIMARY KEY,
    thread_key TEXT NOT NULL,
    feed TEXT NOT NULL,
    message_key TEXT NOT NULL,
    event TEXT NOT NULL,
    request TEXT NOT NULL,
    source TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    decided_by TEXT,
    decided_at INTEGER,
    alert_id TEXT
);
CREATE INDEX feed_proposals_state ON feed_proposals (state, created_at);
