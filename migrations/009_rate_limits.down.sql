ALTER TABLE messages DROP COLUMN rate_wait_until;
DROP TABLE rate_limits;
