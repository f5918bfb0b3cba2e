-- Providers drained by hand before maintenance (`clarion provider drain NAME`): every node
-- reads this table, so each one sends the provider's share through the next provider.
CREATE TABLE provider_drains (
    name TEXT PRIMARY KEY,
    drained_by TEXT NOT NULL,
    drained_at BIGINT NOT NULL,
    reason TEXT NOT NULL DEFAULT ''
);
