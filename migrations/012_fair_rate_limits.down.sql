DROP TABLE rate_limit_calls;
DROP TABLE rate_limit_singles;
DROP TABLE rate_limit_shares;
ALTER TABLE rate_limits DROP COLUMN vtime, DROP COLUMN calls, DROP COLUMN calls_floor;
ALTER TABLE messages
	DROP COLUMN rate_key,
	DROP COLUMN rate_priority,
	DROP COLUMN rate_vt,
	DROP COLUMN rate_parked_at,
	DROP COLUMN rate_released_at,
	DROP COLUMN envelope_ordinal;
