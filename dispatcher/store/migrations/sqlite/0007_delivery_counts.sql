-- The outbox's hot path at a cost per batch, not per alert. Claims read only due rows, in the
-- order of a partial index: queued by (channel, next_attempt_at) and leases by (channel,
-- lease_until), plus queued by (channel, id) for the fallback of an unavailable channel.
-- Progress and completion read `delivery_counts` (deliveries per alert, channel and state),
-- kept by triggers in the same transaction as every insert, state change and delete of a
-- delivery, so no writer can forget it.
DROP INDEX deliveries_due;
CREATE INDEX deliveries_queued_due ON deliveries (channel, next_attempt_at, id)
    WHERE state = 'queued';
CREATE INDEX deliveries_queued_id ON deliveries (channel, id) WHERE state = 'queued';
CREATE INDEX deliveries_sending ON deliveries (channel, lease_until, id)
    WHERE state = 'sending';
CREATE TABLE delivery_counts (
    alert_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    state TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (alert_id, channel, state)
) WITHOUT ROWID;
INSERT INTO delivery_counts (alert_id, channel, state, n)
    SELECT alert_id, channel, state, COUNT(*) FROM deliveries GROUP BY alert_id, channel, state;
CREATE TRIGGER deliveries_count_insert AFTER INSERT ON deliveries
BEGIN
    INSERT INTO delivery_counts (alert_id, channel, state, n)
        VALUES (new.alert_id, new.channel, new.state, 1)
        ON CONFLICT (alert_id, channel, state) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER deliveries_count_update AFTER UPDATE OF state ON deliveries
    WHEN old.state IS NOT new.state
BEGIN
    UPDATE delivery_counts SET n = n - 1
        WHERE alert_id = old.alert_id AND channel = old.channel AND state = old.state;
    INSERT INTO delivery_counts (alert_id, channel, state, n)
        VALUES (new.alert_id, new.channel, new.state, 1)
        ON CONFLICT (alert_id, channel, state) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER deliveries_count_delete AFTER DELETE ON deliveries
BEGIN
    UPDATE delivery_counts SET n = n - 1
        WHERE alert_id = old.alert_id AND channel = old.channel AND state = old.state;
    DELETE FROM delivery_counts
        WHERE alert_id = old.alert_id AND channel = old.channel AND state = old.state AND n = 0;
END
