-- Who cancelled, and when: a support tool must answer "who stopped this
-- bulk?" from the rows, not only from an audit log the host may not keep.
--
--   messages.cancelled_by, cancelled_at  the Actor of the cancel that ended
--                                        the message cancelled, and when.
--   messages.cancel_requested_by         the Actor of a CancelEnvelope that
--                                        asked for the cancel of a message in
--                                        flight; it becomes cancelled_by if
--                                        the attempt fails.
--   bulk_envelopes.cancelled_by, cancelled_at
--                                        the Actor of the envelope's first
--                                        CancelEnvelope, and when.
--
-- Nullable columns without a default: adding them does not rewrite a table.
ALTER TABLE messages
	ADD COLUMN cancelled_by text,
	ADD COLUMN cancelled_at timestamptz,
	ADD COLUMN cancel_requested_by text;
ALTER TABLE bulk_envelopes
	ADD COLUMN cancelled_by text,
	ADD COLUMN cancelled_at timestamptz;
