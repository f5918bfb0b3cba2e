-- The example incidents are loaded once per store: the node that inserts this row loads them,
-- so two nodes starting together on an empty store do not both load them.
CREATE TABLE incident_example_loads (
    name TEXT PRIMARY KEY,
    loaded_at INTEGER NOT NULL
);
