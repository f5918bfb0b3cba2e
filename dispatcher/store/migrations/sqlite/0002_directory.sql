-- The campus directory (people) and the devices directory.
CREATE TABLE people (
    id TEXT PRIMARY KEY,
    first_name TEXT NOT NULL DEFAULT '',
    last_name TEXT NOT NULL DEFAULT '',
    email TEXT NOT NULL DEFAULT '',
    phone TEXT NOT NULL DEFAULT '',
    push TEXT NOT NULL DEFAULT '',
    role TEXT NOT NULL DEFAULT '',
    building TEXT NOT NULL DEFAULT '',
    campus TEXT NOT NULL DEFAULT '',
    language TEXT NOT NULL DEFAULT 'en',
    groups TEXT NOT NULL DEFAULT '',
    attrs TEXT NOT NULL DEFAULT '{}',
    updated_at INTEGER NOT NULL
);
CREATE TABLE devices (
    id TEXT PRIMARY KEY,
    class TEXT NOT NULL,
    zone TEXT NOT NULL DEFAULT '',
    building TEXT NOT NULL DEFAULT '',
    lat REAL,
    lon REAL,
    updated_at INTEGER NOT NULL
);
