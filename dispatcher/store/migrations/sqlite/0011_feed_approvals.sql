-- A relayed upstream alert held for a second person's approval (two-person approval on and a
-- large audience): the thread remembers the held request, so a cancel or an expiry upstream
-- withdraws it and an approval later joins its alert to the thread.
ALTER TABLE feed_threads ADD COLUMN approval_id TEXT;
