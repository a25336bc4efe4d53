-- Each recipient its own: a bulk may give each recipient its own rendered
-- body, host data and time, and a Trigger may carry host data.
--
--   messages.data          the host's data for the message (a JSON object:
--                          recipient address, channel, locale, tenant),
--                          which the Notifier receives; NULL for none.
--   messages.rendered      whether content is a body the caller rendered.
--                          false: content is the original library's
--                          template reference, and the Notifier must render
--                          by template_id. NULL for rows written before this
--                          migration, which reads derive from the content.
--   bulk_envelopes.data    the data every recipient of the bulk shares.
--   bulk_envelopes.data_digest, recipient_digests
--                          SHA-256 digests of the shared data and of each
--                          recipient's own body, data and time, in the order
--                          of recipient_conversation_ids, which a retry with
--                          the same envelope id is compared with; NULL when
--                          the bulk had none.
--
-- Nullable columns without a default: adding them does not rewrite a table.
ALTER TABLE messages
	ADD COLUMN data jsonb CONSTRAINT messages_data_object_check CHECK (jsonb_typeof(data) = 'object'),
	ADD COLUMN rendered boolean;
ALTER TABLE bulk_envelopes
	ADD COLUMN data jsonb CONSTRAINT bulk_envelopes_data_object_check CHECK (jsonb_typeof(data) = 'object'),
	ADD COLUMN data_digest bytea,
	ADD COLUMN recipient_digests bytea[];
