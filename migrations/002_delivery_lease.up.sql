-- Delivery as a lease. An attempt claims its message in one short committed
-- update (status delivering, a claim id of its own, and the time the claim
-- runs out), calls the notifier with nothing open, then records the result
-- with an update that only the holder of that claim id can make.
--
-- Two statuses join the lifecycle:
--   delivering  an attempt holds the claim: the notifier is being called.
--   unconfirmed an attempt claimed the message and never recorded a result,
--               and its job has ended: the notifier may have delivered it.
-- Both hold the dedup key, as pending, sent and failed do.
--
-- Adding the generated column rewrites the table, and the dedup index is
-- rebuilt: on a large table this takes a while, under a lock that blocks
-- reads and writes of messages.

ALTER TABLE messages DROP CONSTRAINT messages_status_check;
ALTER TABLE messages ADD CONSTRAINT messages_status_check
    CHECK (status IN ('pending', 'delivering', 'sent', 'failed', 'unconfirmed', 'discarded', 'cancelled'));

-- claim_id names the attempt holding (or that last held) the claim;
-- claimed_until is when a claim left by a dead worker may be taken over;
-- cancel_requested_at marks a message that CancelEnvelope met in flight: if
-- that attempt fails, the message ends cancelled instead of being retried.
ALTER TABLE messages
    ADD COLUMN claim_id uuid,
    ADD COLUMN claimed_until timestamptz,
    ADD COLUMN cancel_requested_at timestamptz;

-- The one place that says which statuses hold a dedup key. The dedup index
-- reads this column rather than status, so that a message moving between
-- two statuses that both hold the key (pending, delivering, sent) changes
-- no indexed value; with room left on each page (fillfactor), PostgreSQL
-- then updates the row in place of its page (a HOT update) without touching
-- any index, which is most of what a delivery's claim and record cost.
ALTER TABLE messages ADD COLUMN holds_dedup_key boolean NOT NULL
    GENERATED ALWAYS AS (status IN ('pending', 'delivering', 'sent', 'failed', 'unconfirmed')) STORED;
ALTER TABLE messages SET (fillfactor = 80);

DROP INDEX messages_dedup_key_idx;
CREATE UNIQUE INDEX messages_dedup_key_idx ON messages (
    conversation_id,
    template_id,
    coalesce(bulk_envelope_id, '00000000-0000-0000-0000-000000000000'::uuid)
) WHERE holds_dedup_key;
