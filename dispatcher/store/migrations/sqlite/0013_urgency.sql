-- The order of urgency across alerts (a live emergency before a timely warning, an advisory,
-- then drills and tests; within a class the earlier alert first). An alert's urgency (a rank) is fixed
-- when it is created and copied onto each of its deliveries, so a claim reads the most urgent
-- due row first from one partial index: (channel, urgency, next_attempt_at, id) of queued rows.
-- The rows in flight are indexed by urgency too, so "what is the most urgent work on a channel"
-- costs two index probes. Pauses record when an alert waited behind a more urgent one, and
-- accepted rows are indexed by age for their reconciliation with the provider.
ALTER TABLE alerts ADD COLUMN urgency INTEGER NOT NULL DEFAULT 0;
UPDATE alerts SET urgency = (CASE WHEN mode <> 'live' THEN 3
    WHEN kind IN ('emergency', 'all_clear') THEN 0
    WHEN kind = 'timely_warning' THEN 1 ELSE 2 END) * 10000000000000 + created_at;
ALTER TABLE deliveries ADD COLUMN urgency INTEGER NOT NULL DEFAULT 0;
UPDATE deliveries SET urgency = (SELECT a.urgency FROM alerts a WHERE a.id = deliveries.alert_id)
    WHERE state IN ('queued', 'sending');
DROP INDEX deliveries_queued_due;
CREATE INDEX deliveries_queued_urgency ON deliveries (channel, urgency, next_attempt_at, id)
    WHERE state = 'queued';
CREATE INDEX deliveries_sending_urgency ON deliveries (channel, urgency) WHERE state = 'sending';
CREATE INDEX deliveries_accepted ON deliveries (channel, updated_at, id) WHERE state = 'accepted';
CREATE TABLE alert_pauses (
    id INTEGER PRIMARY KEY,
    alert_id TEXT NOT NULL REFERENCES alerts (id),
    channel TEXT NOT NULL,
    behind_alert_id TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    ended_at INTEGER
);
CREATE UNIQUE INDEX alert_pauses_open ON alert_pauses (alert_id, channel) WHERE ended_at IS NULL;
CREATE INDEX alert_pauses_alert ON alert_pauses (alert_id, started_at);
