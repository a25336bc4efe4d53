-- A dedup window, and an index for Reconcile.
--
-- A sent (or unconfirmed) message holds its dedup key for Config.DedupWindow
-- only. The window is a client setting, so the database cannot see it run
-- out; instead, a trigger whose key is held by such a message past the window
-- releases the key (dedup_key_released_at) in the same transaction in which
-- it inserts the new message. The dedup index reads holds_dedup_key, which
-- now also says "not released", so the unique index stays the single,
-- race-safe judge of who holds a key.
--
-- awaiting_result marks the messages Reconcile looks at: those whose
-- delivery has not ended. Its partial index holds only them, so Reconcile's
-- work follows the backlog, not the table. It changes once in a message's
-- life (when the message becomes final), so a claim and a failed attempt's
-- record remain HOT updates.
--
-- Re-adding the generated column rewrites the table, and the dedup index is
-- rebuilt: on a large table this takes a while, under a lock that blocks
-- reads and writes of messages.

ALTER TABLE messages ADD COLUMN dedup_key_released_at timestamptz;

-- Dropping the column drops the dedup index that reads it.
ALTER TABLE messages
    DROP COLUMN holds_dedup_key,
    ADD COLUMN holds_dedup_key boolean NOT NULL
        GENERATED ALWAYS AS (status IN ('pending', 'delivering', 'sent', 'failed', 'unconfirmed')
            AND dedup_key_released_at IS NULL) STORED,
    ADD COLUMN awaiting_result boolean NOT NULL
        GENERATED ALWAYS AS (status IN ('pending', 'delivering', 'failed')) STORED;

CREATE UNIQUE INDEX messages_dedup_key_idx ON messages (
    conversation_id,
    template_id,
    coalesce(bulk_envelope_id, '00000000-0000-0000-0000-000000000000'::uuid)
) WHERE holds_dedup_key;

CREATE INDEX messages_awaiting_result_idx ON messages (id) WHERE awaiting_result;
