-- Alerts, their content versions, the delivery outbox, receipts and the audit chain.
CREATE TABLE alerts (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    mode TEXT NOT NULL,
    state TEXT NOT NULL,
    audience TEXT NOT NULL,
    zones TEXT NOT NULL,
    channels TEXT NOT NULL,
    content_version INTEGER NOT NULL DEFAULT 1,
    references_id TEXT,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    confirmed_at INTEGER,
    sending_at INTEGER,
    resolved_at INTEGER,
    done_at INTEGER,
    expires_at INTEGER NOT NULL,
    idempotency_key TEXT UNIQUE,
    request_sha256 TEXT NOT NULL,
    audience_counts TEXT NOT NULL DEFAULT '{}',
    clery TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX alerts_state ON alerts (state);
CREATE INDEX alerts_created ON alerts (created_at);

CREATE TABLE alert_versions (
    alert_id TEXT NOT NULL REFERENCES alerts (id),
    version INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    request TEXT NOT NULL,
    rendered TEXT NOT NULL,
    PRIMARY KEY (alert_id, version)
);

CREATE TABLE deliveries (
    id INTEGER PRIMARY KEY,
    alert_id TEXT NOT NULL REFERENCES alerts (id),
    channel TEXT NOT NULL,
    recipient TEXT NOT NULL,
    address TEXT NOT NULL,
    language TEXT NOT NULL,
    role TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until INTEGER,
    provider_ref TEXT,
    detail TEXT,
    updated_at INTEGER NOT NULL,
    UNIQUE (alert_id, channel, recipient)
);
CREATE INDEX deliveries_due ON deliveries (channel, state, next_attempt_at);
CREATE INDEX deliveries_alert_state ON deliveries (alert_id, state, channel);
CREATE INDEX deliveries_provider_ref ON deliveries (provider_ref);

CREATE TABLE receipts (
    id INTEGER PRIMARY KEY,
    delivery_id INTEGER NOT NULL REFERENCES deliveries (id),
    alert_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    status TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    provider_ref TEXT NOT NULL DEFAULT '',
    at INTEGER NOT NULL
);
CREATE INDEX receipts_alert ON receipts (alert_id, at);
CREATE INDEX receipts_delivery ON receipts (delivery_id);

CREATE TABLE audit (
    seq INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    alert_id TEXT,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_alert ON audit (alert_id);
