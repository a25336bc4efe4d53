-- Since this version a message's rate limit key (rate_key) is stored by its
-- trigger, and a bulk's due messages are placed there (rate_vt), released
-- or parked; rate_limit_shares holds a bulk's base only for its messages
-- placed later, at their first claim (those scheduled ahead).
-- Prune deletes a bulk's shares with its envelope: this index finds them.
CREATE INDEX rate_limit_shares_envelope_idx ON rate_limit_shares (bulk_envelope_id);

-- The shares of envelopes pruned before this version.
DELETE FROM rate_limit_shares s
WHERE NOT EXISTS (SELECT 1 FROM bulk_envelopes e WHERE e.id = s.bulk_envelope_id);
