-- Indexes for ListMessages, which pages newest first, in id order (ids are
-- UUIDv7, so they follow creation time), under each of its filters.
--
-- A filter on status must not put status itself in an index: a claim
-- (pending to delivering) and a failed attempt's record (delivering to
-- failed) change no indexed value today, so PostgreSQL makes them HOT
-- updates, which touch no index. A status that is not final is found
-- through the awaiting_result index. A final status is found through
-- final_status, which is NULL until the message is final and then equals
-- its status: it changes only when awaiting_result does too, in an update
-- that touches the indexes anyway.
--
-- Adding the generated column rewrites the table: on a large table this
-- takes a while, under a lock that blocks reads and writes of messages.

ALTER TABLE messages ADD COLUMN final_status text
    GENERATED ALWAYS AS (CASE WHEN status IN ('sent', 'unconfirmed', 'discarded', 'cancelled') THEN status END) STORED;

CREATE INDEX messages_final_status_id_idx ON messages (final_status, id) WHERE final_status IS NOT NULL;

CREATE INDEX messages_conversation_id_id_idx ON messages (conversation_id, id);

-- The envelope's index gains id, so that an envelope's messages come newest
-- first without a sort; the statements that used it still can.
DROP INDEX messages_bulk_envelope_id_idx;
CREATE INDEX messages_bulk_envelope_id_idx ON messages (bulk_envelope_id, id) WHERE bulk_envelope_id IS NOT NULL;
