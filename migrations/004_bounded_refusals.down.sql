-- Back to envelopes that keep every recipient. A refused envelope whose list
-- was cut cannot get it back: it is deleted, as the old constraint cannot
-- hold for it.
DELETE FROM bulk_envelopes WHERE cardinality(recipient_conversation_ids) <> count;

DROP INDEX bulk_envelopes_requested_at_id_idx;
DROP INDEX bulk_envelopes_status_requested_at_id_idx;
CREATE INDEX bulk_envelopes_requested_at_idx ON bulk_envelopes (requested_at);

ALTER TABLE bulk_envelopes DROP CONSTRAINT bulk_envelopes_recipients_check;
ALTER TABLE bulk_envelopes ADD CONSTRAINT bulk_envelopes_check
    CHECK (cardinality(recipient_conversation_ids) = count);
ALTER TABLE bulk_envelopes DROP COLUMN recipients_digest;
