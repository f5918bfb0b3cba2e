-- People, not names: the person behind the credential that composed a held request (a token
-- and a console account of one person are one person for the two-person rule).
ALTER TABLE approvals ADD COLUMN requested_person TEXT NOT NULL DEFAULT '';

-- API tokens kept in the store, as SHA-256 only, each belonging to a person, with an expiry
-- and a revocation that every node sees on the next request. A configured token revoked from
-- the command line gets a row here too (its hash, revoked).
CREATE TABLE api_tokens (
    sha256 TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    person TEXT NOT NULL,
    role TEXT NOT NULL,
    segments TEXT NOT NULL DEFAULT '[]',
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    revoked_at BIGINT,
    revoked_by TEXT
);
CREATE UNIQUE INDEX api_tokens_name ON api_tokens (name);

-- Failed sign-ins per account name (and per client address when configured), counted before
-- the password is checked, in one statement, so parallel tries on any node see each other.
CREATE TABLE sign_in_limits (
    key TEXT PRIMARY KEY,
    window_start BIGINT NOT NULL,
    failures BIGINT NOT NULL
);
CREATE INDEX sign_in_limits_window ON sign_in_limits (window_start);
