-- A readable public case number for each incident: the year it was reported and its place in
-- that year's sequence ("2026-000123"). The next number of a year is taken from its counter
-- in the transaction that inserts the incident, so two nodes never give out the same one.
-- Incidents already stored are numbered in the order they were entered, by their UTC year.
ALTER TABLE incidents ADD COLUMN case_number TEXT;
CREATE TABLE incident_case_counters (
    year INTEGER PRIMARY KEY,
    last_number INTEGER NOT NULL
);
UPDATE incidents SET case_number = (
    SELECT printf('%s-%06d', n.year, n.seq) FROM (
        SELECT id, strftime('%Y', reported_at / 1000, 'unixepoch') AS year,
               ROW_NUMBER() OVER (PARTITION BY strftime('%Y', reported_at / 1000, 'unixepoch')
                                  ORDER BY entered_at, id) AS seq
        FROM incidents
    ) n WHERE n.id = incidents.id
);
INSERT INTO incident_case_counters (year, last_number)
    SELECT CAST(substr(case_number, 1, 4) AS INTEGER), COUNT(*) FROM incidents
    GROUP BY substr(case_number, 1, 4);
CREATE UNIQUE INDEX incidents_case_number ON incidents (case_number);
