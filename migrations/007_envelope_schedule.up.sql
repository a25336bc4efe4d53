-- A bulk's idempotency key replays only the same request. The envelope
-- already keeps the template, body, recipients and actor; it now keeps the
-- requested delay too, so that a retry asking for another schedule is a
-- conflict rather than a replay. Envelopes recorded before this migration
-- have none (NULL), and a retry of one is not compared on it.
ALTER TABLE bulk_envelopes ADD COLUMN schedule_in interval;
