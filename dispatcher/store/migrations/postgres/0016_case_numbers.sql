-- A readable public case number for each incident: the year it was reported and its place in
-- that year's sequence ("2026-000123"). The next number of a year is taken from its counter
-- in the transaction that inserts the incident (the counter's row lock orders two nodes), so
-- no number is given out twice. Incidents already stored are numbered in the order they were
-- entered, by their UTC year.
ALTER TABLE incidents ADD COLUMN case_number TEXT;
CREATE TABLE incident_case_counters (
    year INTEGER PRIMARY KEY,
    last_number BIGINT NOT NULL
);
UPDATE incidents SET case_number = n.year || '-' || lpad(n.seq::text, 6, '0')
    FROM (
        SELECT id, EXTRACT(YEAR FROM to_timestamp(reported_at / 1000.0) AT TIME ZONE 'UTC')::int
                   AS year,
               ROW_NUMBER() OVER (
                   PARTITION BY EXTRACT(YEAR FROM to_timestamp(reported_at / 1000.0)
                                        AT TIME ZONE 'UTC')
                   ORDER BY entered_at, id) AS seq
        FROM incidents
    ) n
    WHERE n.id = incidents.id;
INSERT INTO incident_case_counters (year, last_number)
    SELECT CAST(substr(case_number, 1, 4) AS INTEGER), COUNT(*) FROM incidents
    GROUP BY substr(case_number, 1, 4);
CREATE UNIQUE INDEX incidents_case_number ON incidents (case_number);
