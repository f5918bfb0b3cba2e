-- The compose form a console user was writing, kept per user (not per browser) so that an
-- expired session or another machine finds it again: the posted fields, as JSON pairs.
CREATE TABLE console_drafts (
    user_name TEXT PRIMARY KEY REFERENCES console_users (name),
    fields TEXT NOT NULL,
    saved_at BIGINT NOT NULL
);
