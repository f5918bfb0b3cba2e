-- Scheduled drills: one row per occurrence (claimed before anything is sent, so an occurrence
-- fires once across restarts and processes), how far each schedule was looked at, and the
-- follow-up notes kept with an alert's or a drill's Clery record.
CREATE TABLE drill_runs (
    id INTEGER PRIMARY KEY,
    drill_name TEXT NOT NULL,
    scheduled_for INTEGER NOT NULL,
    source TEXT NOT NULL,
    status TEXT NOT NULL,
    missed INTEGER NOT NULL DEFAULT 0,
    claimed_by TEXT NOT NULL,
    claimed_at INTEGER NOT NULL,
    lease_until INTEGER NOT NULL,
    fired_at INTEGER,
    alert_id TEXT,
    detail TEXT NOT NULL DEFAULT '',
    UNIQUE (drill_name, scheduled_for)
);
CREATE INDEX drill_runs_status ON drill_runs (status, lease_until);
CREATE INDEX drill_runs_alert ON drill_runs (alert_id);

CREATE TABLE drill_schedule (
    drill_name TEXT PRIMARY KEY,
    checked_until INTEGER NOT NULL
);

CREATE TABLE alert_notes (
    id INTEGER PRIMARY KEY,
    alert_id TEXT NOT NULL REFERENCES alerts (id),
    at INTEGER NOT NULL,
    author TEXT NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX alert_notes_alert ON alert_notes (alert_id, id);
