ALTER TABLE bulk_envelopes DROP COLUMN scheduled_at, DROP COLUMN priority, DROP COLUMN max_attempts;
