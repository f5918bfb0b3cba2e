-- Every attempt to post an alert to a webhook subscriber: the delivery log each subscriber's
-- owner is shown (when, which try, the HTTP status or why there was none, how long it took).
-- The delivery row keeps the outcome; this keeps the history of its tries. No foreign key:
-- the retention purge removes a purged alert's attempts with its deliveries.
CREATE TABLE webhook_attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    subscriber TEXT NOT NULL,
    alert_id TEXT NOT NULL,
    delivery_id INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    at INTEGER NOT NULL,
    status INTEGER,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    ms INTEGER NOT NULL
);
CREATE INDEX webhook_attempts_subscriber ON webhook_attempts (subscriber, id);
CREATE INDEX webhook_attempts_alert ON webhook_attempts (alert_id);
