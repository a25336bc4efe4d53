ALTER TABLE bulk_envelopes DROP COLUMN cancelled_by, DROP COLUMN cancelled_at;
ALTER TABLE messages DROP COLUMN cancelled_by, DROP COLUMN cancelled_at, DROP COLUMN cancel_requested_by;
