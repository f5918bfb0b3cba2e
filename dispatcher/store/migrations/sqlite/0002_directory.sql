-- The campus directory (people, with their groups and imported attributes) and the devices.
-- Values that segment terms match (role, building, campus, language, attributes) are stored
-- lowercased; contact addresses are normalized (E.164 phones) at import.
CREATE TABLE people (
    id TEXT PRIMARY KEY,
    first_name TEXT NOT NULL DEFAULT '',
    last_name TEXT NOT NULL DEFAULT '',
    email TEXT NOT NULL DEFAULT '',
    phone TEXT NOT NULL DEFAULT '',
    push TEXT NOT NULL DEFAULT '',
    role TEXT NOT NULL,
    building TEXT NOT NULL DEFAULT '',
    campus TEXT NOT NULL DEFAULT '',
    language TEXT NOT NULL DEFAULT 'en',
    groups TEXT NOT NULL DEFAULT '',
    channels TEXT NOT NULL DEFAULT '',
    opt_out TEXT NOT NULL DEFAULT '',
    quiet_hours TEXT NOT NULL DEFAULT '',
    attrs TEXT NOT NULL DEFAULT '{}',
    digest TEXT NOT NULL DEFAULT '',
    updated_at INTEGER NOT NULL
);
CREATE INDEX people_role ON people (role, id);
CREATE INDEX people_building ON people (building, id);
CREATE INDEX people_campus ON people (campus, id);

-- One row per group membership (name 'group') and per imported column with a value.
CREATE TABLE person_attributes (
    person_id TEXT NOT NULL REFERENCES people (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (name, value, person_id)
);
CREATE INDEX person_attributes_person ON person_attributes (person_id);

CREATE TABLE devices (
    id TEXT PRIMARY KEY,
    class TEXT NOT NULL,
    zone TEXT NOT NULL,
    building TEXT NOT NULL DEFAULT '',
    lat REAL,
    lon REAL,
    topic TEXT NOT NULL DEFAULT '',
    name TEXT NOT NULL DEFAULT '',
    attrs TEXT NOT NULL DEFAULT '{}',
    digest TEXT NOT NULL DEFAULT '',
    updated_at INTEGER NOT NULL
);
CREATE INDEX devices_class ON devices (class, id);
