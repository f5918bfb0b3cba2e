-- Alerts waiting for a second person's approval, and the request signatures seen lately.
CREATE TABLE approvals (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    kind TEXT NOT NULL,
    mode TEXT NOT NULL,
    audience TEXT NOT NULL,
    audience_total BIGINT NOT NULL,
    audience_counts TEXT NOT NULL,
    request TEXT NOT NULL,
    request_sha256 TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    requester_role TEXT NOT NULL,
    requester_scopes TEXT NOT NULL DEFAULT '[]',
    requested_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    idempotency_key TEXT UNIQUE,
    decided_by TEXT,
    decided_at BIGINT,
    reason TEXT NOT NULL DEFAULT '',
    alert_id TEXT
);
CREATE INDEX approvals_state ON approvals (state, requested_at);

CREATE TABLE request_signatures (
    digest TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX request_signatures_expiry ON request_signatures (expires_at);
