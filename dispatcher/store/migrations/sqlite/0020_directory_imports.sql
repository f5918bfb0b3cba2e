-- Every directory import (a file, a scheduled export, an LDAP sync) with its report, and the
-- checked records of an import held by the safety brake until a person confirms or discards it.
CREATE TABLE directory_imports (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    fingerprint TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL,
    share REAL NOT NULL DEFAULT 0,
    report TEXT NOT NULL DEFAULT '{}',
    error TEXT NOT NULL DEFAULT '',
    started_at INTEGER NOT NULL,
    finished_at INTEGER NOT NULL,
    decided_by TEXT NOT NULL DEFAULT '',
    decided_at INTEGER
);
CREATE INDEX directory_imports_source ON directory_imports (source, id);

CREATE TABLE directory_import_plans (
    import_id INTEGER NOT NULL REFERENCES directory_imports (id) ON DELETE CASCADE,
    part INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (import_id, part)
);
