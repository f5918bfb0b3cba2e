-- Every directory import (a file, a scheduled export, an LDAP sync) with its report, and the
-- checked records of an import held by the safety brake until a person confirms or discards it.
CREATE TABLE directory_imports (
    id BIGSERIAL PRIMARY KEY,
    source TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    fingerprint TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL,
    share DOUBLE PRECISION NOT NULL DEFAULT 0,
    report TEXT NOT NULL DEFAULT '{}',
    error TEXT NOT NULL DEFAULT '',
    started_at BIGINT NOT NULL,
    finished_at BIGINT NOT NULL,
    decided_by TEXT NOT NULL DEFAULT '',
    decided_at BIGINT
);
CREATE INDEX directory_imports_source ON directory_imports (source, id);

CREATE TABLE directory_import_plans (
    import_id BIGINT NOT NULL REFERENCES directory_imports (id) ON DELETE CASCADE,
    part INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (import_id, part)
);
