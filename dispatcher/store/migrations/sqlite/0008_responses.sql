-- Hearing back: the question an alert asks, each person's answer (the one that counts) with
-- its history, the answer-page tokens already used, SMS opt-outs (STOP, carrier 21610) and the
-- key that signs answer-page links when none is configured.
CREATE TABLE alert_questions (
    alert_id TEXT PRIMARY KEY REFERENCES alerts (id),
    question TEXT NOT NULL,
    options TEXT NOT NULL,
    escalate_after_s INTEGER NOT NULL,
    max_rounds INTEGER NOT NULL,
    asked_at INTEGER NOT NULL,
    closes_at INTEGER NOT NULL,
    rounds INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX alert_questions_closes ON alert_questions (closes_at);

CREATE TABLE answers (
    alert_id TEXT NOT NULL REFERENCES alerts (id),
    person_id TEXT NOT NULL,
    option TEXT NOT NULL,
    channel TEXT NOT NULL,
    first_at INTEGER NOT NULL,
    answered_at INTEGER NOT NULL,
    changes INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (alert_id, person_id)
);
CREATE INDEX answers_option ON answers (alert_id, option);

CREATE TABLE answer_history (
    id INTEGER PRIMARY KEY,
    alert_id TEXT NOT NULL,
    person_id TEXT NOT NULL,
    option TEXT NOT NULL,
    channel TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE INDEX answer_history_person ON answer_history (alert_id, person_id);

CREATE TABLE answer_tokens (
    token_id TEXT PRIMARY KEY,
    alert_id TEXT NOT NULL,
    person_id TEXT NOT NULL,
    used_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX answer_tokens_expiry ON answer_tokens (expires_at);

CREATE TABLE sms_opt_outs (
    phone TEXT PRIMARY KEY,
    opted_out INTEGER NOT NULL,
    reason TEXT NOT NULL,
    at INTEGER NOT NULL
);

CREATE TABLE answer_keys (
    id INTEGER PRIMARY KEY,
    secret TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
