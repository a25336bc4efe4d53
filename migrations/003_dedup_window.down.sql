-- Back to keys held for a row's life. A key released and then taken by a
-- newer message would be held twice: reverting is refused while any is, as
-- the unique index could not be rebuilt; prune or cancel the older rows first.
DO $$
DECLARE
    held_twice bigint;
BEGIN
    SELECT count(*) INTO held_twice
    FROM messages earlier
    WHERE earlier.dedup_key_released_at IS NOT NULL AND EXISTS (
        SELECT 1 FROM messages later
        WHERE later.holds_dedup_key
            AND later.conversation_id = earlier.conversation_id
            AND later.template_id = earlier.template_id
            AND later.bulk_envelope_id IS NOT DISTINCT FROM earlier.bulk_envelope_id);
    IF held_twice > 0 THEN
        RAISE EXCEPTION 'outbound: cannot revert 003_dedup_window: % messages released their dedup key to a newer message with the same key; delete the older messages first', held_twice;
    END IF;
END $$;

DROP INDEX messages_awaiting_result_idx;
ALTER TABLE messages
    DROP COLUMN awaiting_result,
    DROP COLUMN holds_dedup_key,
    ADD COLUMN holds_dedup_key boolean NOT NULL
        GENERATED ALWAYS AS (status IN ('pending', 'delivering', 'sent', 'failed', 'unconfirmed')) STORED;
ALTER TABLE messages DROP COLUMN dedup_key_released_at;

CREATE UNIQUE INDEX messages_dedup_key_idx ON messages (
    conversation_id,
    template_id,
    coalesce(bulk_envelope_id, '00000000-0000-0000-0000-000000000000'::uuid)
) WHERE holds_dedup_key;
