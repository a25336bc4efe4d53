DROP INDEX messages_bulk_envelope_id_idx;
CREATE INDEX messages_bulk_envelope_id_idx ON messages (bulk_envelope_id) WHERE bulk_envelope_id IS NOT NULL;
DROP INDEX messages_conversation_id_id_idx;
ALTER TABLE messages DROP COLUMN final_status;
