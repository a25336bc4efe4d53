ALTER TABLE bulk_envelopes DROP COLUMN data, DROP COLUMN data_digest, DROP COLUMN recipient_digests;
ALTER TABLE messages DROP COLUMN data, DROP COLUMN rendered;
