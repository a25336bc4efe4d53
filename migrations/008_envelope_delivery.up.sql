-- A bulk's idempotency key replays only the same request, and a request now
-- also says when its messages may be delivered (an absolute ScheduledAt),
-- at which River priority, and in how many attempts at most. Each is NULL
-- when the request left it to the default, as every envelope recorded before
-- this migration did, so a retry of one of those is compared as a request
-- that set none of them.
ALTER TABLE bulk_envelopes
	ADD COLUMN scheduled_at timestamptz,
	ADD COLUMN priority smallint CONSTRAINT bulk_envelopes_priority_check CHECK (priority BETWEEN 1 AND 4),
	ADD COLUMN max_attempts smallint CONSTRAINT bulk_envelopes_max_attempts_check CHECK (max_attempts > 0);
