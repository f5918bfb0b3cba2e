-- The outbox's hot path at a cost per batch, not per alert. Claims read only due rows, in the
-- order of a partial index: queued by (channel, next_attempt_at, id) and leases by (channel,
-- lease_until, id), plus queued by (channel, id) for the fallback of an unavailable channel.
-- Progress and completion read `delivery_counts`: per alert, channel and state, rows of
-- counts whose sum is the number of deliveries. Statement triggers append one row per
-- (alert, channel, state) a statement changed, in the statement's own transaction; appending
-- takes no lock another writer waits for (several nodes settle at once), and
-- `DeliveryLedger.fold_counts` sums the appended rows of an alert into one now and then.
DROP INDEX deliveries_due;
CREATE INDEX deliveries_queued_due ON deliveries (channel, next_attempt_at, id)
    WHERE state = 'queued';
CREATE INDEX deliveries_queued_id ON deliveries (channel, id) WHERE state = 'queued';
CREATE INDEX deliveries_sending ON deliveries (channel, lease_until, id)
    WHERE state = 'sending';
CREATE TABLE delivery_counts (
    id BIGSERIAL PRIMARY KEY,
    alert_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    state TEXT NOT NULL,
    n INTEGER NOT NULL,
    folded BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX delivery_counts_alert ON delivery_counts (alert_id, channel, state);
CREATE INDEX delivery_counts_unfolded ON delivery_counts (alert_id) WHERE NOT folded;
INSERT INTO delivery_counts (alert_id, channel, state, n, folded)
    SELECT alert_id, channel, state, COUNT(*), TRUE FROM deliveries
    GROUP BY alert_id, channel, state;
CREATE FUNCTION delivery_counts_append() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO delivery_counts (alert_id, channel, state, n)
            SELECT alert_id, channel, state, COUNT(*) FROM new_rows
            GROUP BY alert_id, channel, state;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO delivery_counts (alert_id, channel, state, n)
            SELECT alert_id, channel, state, SUM(n) FROM (
                SELECT alert_id, channel, state, -1 AS n FROM old_rows
                UNION ALL SELECT alert_id, channel, state, 1 AS n FROM new_rows
            ) AS changes
            GROUP BY alert_id, channel, state HAVING SUM(n) <> 0;
    ELSE
        INSERT INTO delivery_counts (alert_id, channel, state, n)
            SELECT alert_id, channel, state, -COUNT(*) FROM old_rows
            GROUP BY alert_id, channel, state;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER deliveries_count_insert AFTER INSERT ON deliveries
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION delivery_counts_append();
CREATE TRIGGER deliveries_count_update AFTER UPDATE ON deliveries
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION delivery_counts_append();
CREATE TRIGGER deliveries_count_delete AFTER DELETE ON deliveries
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION delivery_counts_append()
