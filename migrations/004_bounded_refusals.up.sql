-- A refusal costs bounded storage, however long the list it refused. A
-- refused envelope keeps the full count, the first 1,000 recipients at most,
-- and a SHA-256 digest of the whole list in the caller's order, which is
-- what a retry of the same request is compared against. A submitted envelope
-- still keeps every recipient: there are never more than the cap.

ALTER TABLE bulk_envelopes ADD COLUMN recipients_digest bytea;

-- Refusals recorded before this migration kept their whole list: give each
-- its digest, then cut any list longer than what is now kept.
UPDATE bulk_envelopes e
SET recipients_digest = (
        SELECT sha256(string_agg(int8send(r.id), ''::bytea ORDER BY r.ord))
        FROM unnest(e.recipient_conversation_ids) WITH ORDINALITY AS r(id, ord)),
    recipient_conversation_ids = e.recipient_conversation_ids[1:1000]
WHERE e.status = 'refused_cap_exceeded';

ALTER TABLE bulk_envelopes DROP CONSTRAINT bulk_envelopes_check;
ALTER TABLE bulk_envelopes ADD CONSTRAINT bulk_envelopes_recipients_check CHECK (
    cardinality(recipient_conversation_ids) = count
    OR (status = 'refused_cap_exceeded'
        AND cardinality(recipient_conversation_ids) < count
        AND cardinality(recipient_conversation_ids) <= 1000
        AND recipients_digest IS NOT NULL));

-- Envelopes are listed newest first (all, or those of one status) and
-- pruned oldest first, in (requested_at, id) order.
DROP INDEX bulk_envelopes_requested_at_idx;
CREATE INDEX bulk_envelopes_requested_at_id_idx ON bulk_envelopes (requested_at, id);
CREATE INDEX bulk_envelopes_status_requested_at_id_idx ON bulk_envelopes (status, requested_at, id);
