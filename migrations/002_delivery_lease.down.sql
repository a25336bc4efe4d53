-- Back to the statuses of 001. A message in flight goes back to pending (its
-- job delivers it again); an unconfirmed one becomes sent, since it may have
-- been delivered and must keep its dedup key.
UPDATE messages SET status = 'pending', metadata = jsonb_set(metadata, '{status}', '"pending"')
WHERE status = 'delivering';
UPDATE messages SET status = 'sent', metadata = jsonb_set(metadata, '{status}', '"sent"')
WHERE status = 'unconfirmed';

DROP INDEX messages_dedup_key_idx;
CREATE UNIQUE INDEX messages_dedup_key_idx ON messages (
    conversation_id,
    template_id,
    coalesce(bulk_envelope_id, '00000000-0000-0000-0000-000000000000'::uuid)
) WHERE status IN ('pending', 'sent', 'failed');

ALTER TABLE messages RESET (fillfactor);
ALTER TABLE messages
    DROP COLUMN holds_dedup_key,
    DROP COLUMN claim_id,
    DROP COLUMN claimed_until,
    DROP COLUMN cancel_requested_at;

ALTER TABLE messages DROP CONSTRAINT messages_status_check;
ALTER TABLE messages ADD CONSTRAINT messages_status_check
    CHECK (status IN ('pending', 'sent', 'failed', 'discarded', 'cancelled'));
