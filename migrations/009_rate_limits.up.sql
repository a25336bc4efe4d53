-- Rate limits shared by every process working the schema. A limit is a
-- property of the provider, not of a process, so its state lives here, one
-- row per key that Config.RateLimits names. The limit itself (how many per
-- how long, and the burst) is not stored: each delivery passes its own
-- process's configuration, so the row follows the configuration when it
-- changes between deploys.
--
--   tat           the theoretical arrival time of the generic cell rate
--                 algorithm over Notifier calls started: a call may start at
--                 now() when tat <= now() + (burst - 1) * interval, and
--                 moves tat to greatest(tat, now()) + interval.
--   next_wake     the queue of waiting messages: the time the next message
--                 held back by the limit is booked to be tried again. Each
--                 booking moves it on by one interval, so that waiting
--                 messages wake one slot apart instead of all at once.
--   paused_until  set by a Notifier's RateLimited(d, err): no call for the
--                 key starts before it, in any process.
CREATE TABLE rate_limits (
	key text PRIMARY KEY,
	tat timestamptz NOT NULL,
	next_wake timestamptz NOT NULL,
	paused_until timestamptz,
	updated_at timestamptz NOT NULL
);

-- rate_wait_until is set while a pending or failed message waits for its
-- key's limit: the time its booking comes due. It is NULL otherwise.
ALTER TABLE messages ADD COLUMN rate_wait_until timestamptz;
