-- Rate limits without bookings. A message that finds no free slot for its
-- key waits, parked, with no promise of a slot: whenever a slot comes free,
-- the most urgent parked message of the key is released to take it (by
-- priority, then by its place in its key's fair order, rate_vt). Nothing a
-- cancelled, pruned or deleted message leaves behind holds the key.
--
--   rate_key          the message's key, computed once by Config.RateLimitKey
--                     at its first claim under a limit and kept from then on.
--   rate_priority     the River priority of its job when it parked.
--   rate_vt           its place in the key's fair order (start-time fair
--                     queueing): for a bulk's message, its bulk's base
--                     (rate_limit_shares) plus its position in the bulk at
--                     the key's rate; for one triggered one by one, the next
--                     place of that share (rate_limit_singles).
--   rate_parked_at    set while the message waits for a slot.
--   rate_released_at  set when a slot was released to it, until its claim.
--   envelope_ordinal  its position in its bulk, from 0.
ALTER TABLE messages
	ADD COLUMN rate_key text,
	ADD COLUMN rate_priority smallint,
	ADD COLUMN rate_vt timestamptz,
	ADD COLUMN rate_parked_at timestamptz,
	ADD COLUMN rate_released_at timestamptz,
	ADD COLUMN envelope_ordinal integer;

-- The key's order of its parked messages, walked by each release.
CREATE INDEX messages_rate_parked_idx ON messages (rate_key, rate_priority, rate_vt, id)
	WHERE rate_parked_at IS NOT NULL;
-- Slots released and not yet claimed.
CREATE INDEX messages_rate_released_idx ON messages (rate_key, rate_released_at)
	WHERE rate_released_at IS NOT NULL;

-- A key's further limits (RateLimit.Also) are rolling windows, "at most
-- Limit calls in any Per": a call may start when the call Limit places
-- before it started at least Per ago. calls numbers the key's calls;
-- rate_limit_calls keeps the start of the newest ones, as many as the
-- largest window's Limit, from calls_floor on (older rows are gone, and
-- count as long past). Keys without further limits keep no call rows.
--
-- rate_limits.next_wake, the queue of bookings, is no longer read or moved;
-- it stays for processes of an earlier version during a rolling deploy.
-- vtime is the place of the last message the key served.
ALTER TABLE rate_limits
	ADD COLUMN vtime timestamptz,
	ADD COLUMN calls bigint NOT NULL DEFAULT 0,
	ADD COLUMN calls_floor bigint NOT NULL DEFAULT 1;

CREATE TABLE rate_limit_calls (
	key text NOT NULL,
	seq bigint NOT NULL,
	started_at timestamptz NOT NULL,
	PRIMARY KEY (key, seq)
);

-- The place of the last message triggered one by one that a key placed, by
-- priority: such messages are one share, and each takes the next place in
-- it by updating this row, so that messages claimed at once do not tie.
CREATE TABLE rate_limit_singles (
	key text NOT NULL,
	priority smallint NOT NULL,
	vt timestamptz NOT NULL,
	PRIMARY KEY (key, priority)
);

-- Where a bulk's share of a key starts: the key's vtime when the bulk's
-- first message was placed, so that a bulk triggered into another's drain
-- takes turns with it from that drain's head. Written once per bulk and key.
CREATE TABLE rate_limit_shares (
	key text NOT NULL,
	priority smallint NOT NULL,
	bulk_envelope_id uuid NOT NULL,
	base timestamptz NOT NULL,
	PRIMARY KEY (key, priority, bulk_envelope_id)
);
