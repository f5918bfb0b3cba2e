-- Incidents for the daily crime log: the public fields in columns, victim and reporter details
-- sealed (Fernet) in `private_sealed`; disposition history; the timely-warning decision; the
-- alerts sent about an incident; each year's request to local police for their statistics.
CREATE TABLE incidents (
    id TEXT PRIMARY KEY,
    reported_at BIGINT NOT NULL,
    occurred_from BIGINT,
    occurred_to BIGINT,
    entered_at BIGINT NOT NULL,
    location TEXT NOT NULL,
    geography TEXT NOT NULL,
    category TEXT,
    bias TEXT,
    nature TEXT NOT NULL,
    disposition TEXT NOT NULL,
    source TEXT NOT NULL,
    created_by TEXT NOT NULL,
    private_sealed TEXT,
    held_reason TEXT,
    held_at BIGINT,
    held_by TEXT,
    released_at BIGINT,
    released_by TEXT
);
CREATE INDEX incidents_reported ON incidents (reported_at);

CREATE TABLE incident_dispositions (
    id BIGSERIAL PRIMARY KEY,
    incident_id TEXT NOT NULL REFERENCES incidents (id),
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    disposition TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT ''
);
CREATE INDEX incident_dispositions_incident ON incident_dispositions (incident_id, id);

CREATE TABLE incident_decisions (
    incident_id TEXT PRIMARY KEY REFERENCES incidents (id),
    opened_at BIGINT NOT NULL,
    decided_at BIGINT,
    decided_by TEXT,
    warn BOOLEAN,
    reasons TEXT NOT NULL DEFAULT ''
);
CREATE INDEX incident_decisions_open ON incident_decisions (decided_at, opened_at);

CREATE TABLE incident_alerts (
    incident_id TEXT NOT NULL REFERENCES incidents (id),
    alert_id TEXT NOT NULL REFERENCES alerts (id),
    linked_at BIGINT NOT NULL,
    linked_by TEXT NOT NULL,
    PRIMARY KEY (incident_id, alert_id)
);

CREATE TABLE statistics_requests (
    id BIGSERIAL PRIMARY KEY,
    year BIGINT NOT NULL,
    requested_on TEXT NOT NULL,
    agency TEXT NOT NULL,
    response TEXT NOT NULL DEFAULT '',
    recorded_at BIGINT NOT NULL,
    recorded_by TEXT NOT NULL
);
CREATE INDEX statistics_requests_year ON statistics_requests (year, id);
