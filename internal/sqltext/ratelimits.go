package sqltext

import "strings"

// RateLimits holds the statements of the rate limits that every process
// working the schema shares: one rate_limits row per key (its first limit
// and its pause), one rate_limit_windows row per further limit, and on each
// message its key and its wait. Their arguments are named (pgx's
// NamedArgs), each documented with its statement. Times come from the
// database's clock, never a process's.
//
// Each limit is the generic cell rate algorithm over calls started: one may
// start when tat <= now() + tolerance ((burst - 1) × interval), and moves
// tat to greatest(tat, now()) + interval. A tat further ahead than a call
// now would leave it (a limit loosened since, or a burst shrunk) counts as
// now() + tolerance, one slot free, so that a limit changed between
// deploys applies at once (limitTat).
//
// No slot is promised ahead. A message that finds none free parks; a
// dispatcher releases the key's most urgent parked messages, as many as
// slots are free, and wakes their jobs; their claims take the slots. A
// trigger places a bulk's messages itself, releasing as many as slots are
// free and parking the rest (RiverJobs.PlaceTriggered).
//
// A key's further limits are rolling windows: a call may start when the
// call a window's Limit places before it (seq calls - limit + 1) started at
// least its Per ago, or is older than calls_floor (gone, long past). A row
// at or above calls_floor that the statement cannot see was committed after
// its snapshot, so it is recent: the window is full. Each call taken logs
// its start and trims the log to the newest @keep (the largest Limit).
//
// The limits of a key are passed by each statement as @interval_secs and
// @tolerance_secs (the first), and @window_limits, @window_per_secs and
// @keep (the further ones).
type RateLimits struct {
	// EnsureRateLimit creates a key's row, with its whole burst free, if it
	// is missing. @key.
	EnsureRateLimit string

	// SelectMessageKey reads one message and its stored key (NULL when its
	// trigger stored none: its key had no limit there, or it came before
	// keys were stored at trigger). @id.
	SelectMessageKey string

	// ClaimMessageLimited claims a message for one delivery attempt, as
	// ClaimMessage does, if it may take a slot and one is free in every
	// limit of its key; otherwise it parks the message.
	//
	// A message may take a slot when the same @claim_id already holds it (a
	// retried claim, which takes no second slot), or when no parked message
	// of its key comes before it in the key's order, priority then rate_vt;
	// one released a slot (by a dispatcher, or as the head of its bulk by
	// its trigger) only when none of a more urgent priority is parked. Only a message that may
	// take a slot locks the key's rows, so that parking messages never
	// queue behind one another or behind the claims that take slots.
	//
	// It returns one row: MessageColumns then NULL when claimed; the message
	// as parked, without its content (MessageColumnsWithoutContent), then
	// the seconds until its expected turn; no row when the message is
	// missing or not claimable, or it may take a slot and its key has no
	// row. @id, @claim_id, @attempt, @claim_secs, @key, @priority, and the
	// key's limits.
	ClaimMessageLimited string

	// LockRateLimit locks a key's row. DispatchKey runs after it, in the
	// same transaction, so that its snapshot sees what the dispatcher
	// before it released. @key.
	LockRateLimit string

	// RecordRateLimited records an attempt whose Notifier returned
	// RateLimited(d, err), if the claim id still holds the message and no
	// cancel was requested: the message is pending again, the attempt is
	// not counted, and it waits until the pause ends. With @parks, the key
	// is limited here: the message parks, and the key's row takes the pause
	// on, for every process. It returns the seconds until the pause ends.
	// @id, @claim_id, @key, @priority, @pause_secs, @last_error, @parks.
	RecordRateLimited string

	// LiftPause ends a key's pause, returning the pause it ended (NULL when
	// there was none). @key.
	LiftPause string

	// SelectKeyStates reads, for each key in @keys, its pause (NULL when
	// none, or over), how many of its messages are parked, and how many
	// have a slot released. @keys.
	SelectKeyStates string

	// CountEnvelopeWaitingByKey counts an envelope's undelivered messages
	// by their stored key, for the keys in @keys. @id, @keys.
	CountEnvelopeWaitingByKey string

	// RenewClaim makes the claim that the claim id holds run for
	// @claim_secs from now: an attempt's Notifier call that outlives
	// NotifyTimeout keeps its claim until it returns. It returns whether
	// the claim id still holds the message. @id, @claim_id, @claim_secs.
	RenewClaim string
}

// limitTat is a limit's tat as its algorithm counts it now. Under one
// limit, tat is never further ahead than a call now would leave it (now() +
// tolerance + interval); one that is was left by another limit (loosened
// since, or a burst shrunk), and counts as now() + tolerance: the burst used
// but for one slot, free now. The first call taken writes the tat back.
//
// The test is against clock_timestamp(), not now(): a statement's now() is
// when its transaction began, and a claim that waited on the key's row for
// one that began later finds a tat a call moved past its own now().
func limitTat(tat, interval, tolerance string) string {
	return "(CASE WHEN " + tat + " > clock_timestamp() + make_interval(secs => " + tolerance + " + " + interval + ") THEN now() + make_interval(secs => " + tolerance + ") ELSE " + tat + " END)"
}

// limitReady is when one more call may start under a limit.
func limitReady(tat, interval, tolerance string) string {
	return limitTat(tat, interval, tolerance) + " - make_interval(secs => " + tolerance + ")"
}

// limitTaken is a limit's tat after one more call starts now.
func limitTaken(tat, interval, tolerance string) string {
	return "greatest(" + limitTat(tat, interval, tolerance) + ", now()) + make_interval(secs => " + interval + ")"
}

// limitFree is how many calls may start now under a limit; the caller
// bounds it by the burst.
func limitFree(tat, interval, tolerance string) string {
	return "greatest(0, floor(extract(epoch FROM now() - (" + limitReady(tat, interval, tolerance) + ")) / " + interval + ")::bigint + 1)"
}

// expectedTurn is when a message placed at vt may expect its slot, by the
// key's row l and its first limit: the places ahead of it (from the key's
// vtime) at the key's rate after its slots in use now (a tat long past
// counts as now: the burst free), or the end of its pause, and never
// before now. A key with no row, or no vtime yet, counts from now.
func expectedTurn(l, vt, interval, tolerance string) string {
	return "greatest(now(), " + l + ".paused_until, greatest(" + limitTat(l+".tat", interval, tolerance) + ", now()) - make_interval(secs => " + tolerance + ")" +
		" + greatest(" + vt + " - coalesce(" + l + ".vtime, now()), '0'::interval))"
}

// windowsOf reads the key's further limits against its row k, one row
// each: full when a call may not start now, and until, when it is full and
// the call that fills it is known, when it will not be.
func windowsOf(r *strings.Replacer) string {
	return r.Replace(`
	SELECT
		NOT (k.calls - e.window_limit + 1 < k.calls_floor
			OR coalesce(c.started_at <= now() - make_interval(secs => e.per_secs), false)) AS full,
		c.started_at + make_interval(secs => e.per_secs) AS until
	FROM k CROSS JOIN unnest(@window_limits::bigint[], @window_per_secs::float8[]) AS e(window_limit, per_secs)
	LEFT JOIN {s}.rate_limit_calls c ON c.key = @key AND c.seq = k.calls - e.window_limit + 1`)
}

// newRateLimits fills RateLimits with r, which replaces {s} and the rest.
func newRateLimits(r *strings.Replacer) RateLimits {
	return RateLimits{
		EnsureRateLimit: r.Replace(`
INSERT INTO {s}.rate_limits (key, tat, next_wake, updated_at)
VALUES (@key, now(), now(), now())
ON CONFLICT (key) DO NOTHING`),

		SelectMessageKey: r.Replace(`SELECT {mcols_no_content}, rate_key FROM {s}.messages WHERE id = @id`),

		// The message is locked first, then the key's rows: the order of
		// every statement that locks both.
		ClaimMessageLimited: r.Replace(`
WITH m AS MATERIALIZED (
	SELECT status, claim_id, rate_released_at, rate_vt, bulk_envelope_id, envelope_ordinal
	FROM {s}.messages
	WHERE id = @id AND ` + claimable("@claim_id") + `
	FOR UPDATE
), single_place AS (
	-- A message triggered one by one takes the next place of its share, in
	-- a row of its own, so that two claimed at once do not tie.
	INSERT INTO {s}.rate_limit_singles AS o (key, priority, vt)
	SELECT @key, @priority::smallint, coalesce((SELECT vtime FROM {s}.rate_limits WHERE key = @key), now())
	FROM m WHERE m.bulk_envelope_id IS NULL AND m.rate_vt IS NULL
	ON CONFLICT (key, priority) DO UPDATE
		SET vt = greatest(o.vt + make_interval(secs => @interval_secs::float8), EXCLUDED.vt)
	RETURNING vt
), share_base AS (
	-- A bulk's share starts at the key's place when its first message is
	-- placed; a claim that loses the race to write it reads it below.
	INSERT INTO {s}.rate_limit_shares (key, priority, bulk_envelope_id, base)
	SELECT @key, @priority::smallint, m.bulk_envelope_id, coalesce((SELECT vtime FROM {s}.rate_limits WHERE key = @key), now())
	FROM m WHERE m.bulk_envelope_id IS NOT NULL AND m.rate_vt IS NULL
	ON CONFLICT (key, priority, bulk_envelope_id) DO NOTHING
	RETURNING base
), v AS MATERIALIZED (
	SELECT
		coalesce(m.status = 'delivering' AND m.claim_id = @claim_id, false) AS reclaim,
		m.rate_released_at IS NOT NULL AS released,
		-- Start-time fair queueing: a bulk's message is placed at its
		-- bulk's base plus its position at the key's rate, one triggered
		-- one by one at the next place of that share; so bulks, and those
		-- triggered one by one, take turns.
		coalesce(m.rate_vt, CASE
			WHEN m.bulk_envelope_id IS NULL THEN (SELECT vt FROM single_place)
			ELSE coalesce(
				(SELECT base FROM share_base),
				(SELECT base FROM {s}.rate_limit_shares
					WHERE key = @key AND priority = @priority::smallint AND bulk_envelope_id = m.bulk_envelope_id),
				(SELECT vtime FROM {s}.rate_limits WHERE key = @key),
				now()) + make_interval(secs => coalesce(m.envelope_ordinal, 0) * @interval_secs::float8)
		END, now()) AS vt
	FROM m
), a AS MATERIALIZED (
	-- A released message comes before every parked message of its
	-- priority (its release chose it), never before one of a more urgent
	-- priority that a dispatcher could release: not one whose job is
	-- running, as a process killed between a claim's park and River's
	-- record of its snooze leaves it until River rescues it.
	SELECT v.*, v.reclaim OR (NOT EXISTS (
		SELECT 1 FROM {s}.messages p
		WHERE p.rate_key = @key AND p.rate_parked_at IS NOT NULL AND p.id <> @id AND p.status IN {undelivered}
			AND p.rate_priority < @priority::smallint
			AND EXISTS (SELECT 1 FROM {rs}.river_job j WHERE ` + isDeliveryJobOf("j", "p.job_id", "p.id::text") + ` AND j.state IN ('scheduled', 'available'))
	) AND (v.released OR NOT EXISTS (
		SELECT 1 FROM {s}.messages p
		WHERE p.rate_key = @key AND p.rate_parked_at IS NOT NULL AND p.id <> @id AND p.status IN {undelivered}
			AND (p.rate_priority, p.rate_vt) < (@priority::smallint, v.vt)
	-- Read without a lock, the key's row as last committed before this
	-- statement: a slot it shows taken is taken, so that the claims of a
	-- bulk's first fetch, which find none, park without queueing on it.
	)) AND coalesce((SELECT greatest(` + limitReady("l.tat", "@interval_secs::float8", "@tolerance_secs::float8") + `, l.paused_until) <= now()
		FROM {s}.rate_limits l WHERE l.key = @key), true)) AS may_take
	FROM v
), k AS MATERIALIZED (
	SELECT key, tat, paused_until, calls, calls_floor, vtime FROM {s}.rate_limits
	WHERE key = @key AND (SELECT may_take AND NOT reclaim FROM a)
	FOR UPDATE
), x AS MATERIALIZED (` + windowsOf(r) + `
), g AS MATERIALIZED (
	SELECT a.*, a.reclaim OR (a.may_take
		AND EXISTS (SELECT 1 FROM k
			WHERE greatest(` + limitReady("k.tat", "@interval_secs::float8", "@tolerance_secs::float8") + `, k.paused_until) <= now())
		AND NOT EXISTS (SELECT 1 FROM x WHERE x.full)
	) AS go
	FROM a
	WHERE a.reclaim OR NOT a.may_take OR EXISTS (SELECT 1 FROM k)
), slot AS (
	UPDATE {s}.rate_limits SET
		tat = ` + limitTaken("k.tat", "@interval_secs::float8", "@tolerance_secs::float8") + `,
		calls = k.calls + 1,
		vtime = greatest(k.vtime, g.vt),
		calls_floor = CASE WHEN @keep::bigint > 0 THEN greatest(k.calls_floor, k.calls + 2 - @keep::bigint) ELSE k.calls_floor END,
		updated_at = now()
	FROM k, g WHERE rate_limits.key = k.key AND g.go AND NOT g.reclaim
), call_logged AS (
	INSERT INTO {s}.rate_limit_calls (key, seq, started_at)
	SELECT @key, k.calls + 1, now() FROM k, g
	WHERE g.go AND NOT g.reclaim AND @keep::bigint > 0
	ON CONFLICT (key, seq) DO UPDATE SET started_at = now()
), calls_trimmed AS (
	DELETE FROM {s}.rate_limit_calls c USING k, g
	WHERE c.key = @key AND g.go AND NOT g.reclaim AND @keep::bigint > 0
		AND c.seq >= k.calls_floor AND c.seq < k.calls + 2 - @keep::bigint
), claimed AS (
	UPDATE {s}.messages SET ` + claimSet("@claim_id", "@attempt", "@claim_secs") + `, rate_key = @key, rate_vt = g.vt
	FROM g WHERE id = @id AND g.go
	RETURNING {mcols}
), parked AS (
	UPDATE {s}.messages SET
		rate_key = @key, rate_priority = @priority::smallint, rate_vt = g.vt,
		rate_parked_at = coalesce(rate_parked_at, now()), rate_released_at = NULL,
		-- An estimate, not a promise: the key's next slot after the
		-- messages ahead of it at the key's rate, or the end of its pause,
		-- whichever is last.
		-- The key's row as locked when this claim locked it, else as last
		-- committed before this statement.
		rate_wait_until = coalesce(
			(SELECT ` + expectedTurn("l", "g.vt", "@interval_secs::float8", "@tolerance_secs::float8") + ` FROM k AS l),
			(SELECT ` + expectedTurn("l", "g.vt", "@interval_secs::float8", "@tolerance_secs::float8") + ` FROM {s}.rate_limits l WHERE l.key = @key),
			now()),
		updated_at = now()
	FROM g WHERE id = @id AND NOT g.go
	RETURNING ` + MessageColumnsWithoutContent + `, extract(epoch FROM rate_wait_until - now())::float8, extract(epoch FROM now() - rate_parked_at)::float8
)
SELECT claimed.*, NULL::float8, NULL::float8 FROM claimed
UNION ALL
SELECT * FROM parked`),

		LockRateLimit: r.Replace(`SELECT 1 FROM {s}.rate_limits WHERE key = @key FOR UPDATE`),

		RecordRateLimited: r.Replace(`
WITH pending AS (
	UPDATE {s}.messages
	SET ` + statusOnly(`'pending'`) + `, attempts = greatest(attempts - 1, 0), last_error = @last_error,
		claimed_until = NULL, rate_wait_until = now() + make_interval(secs => @pause_secs::float8),
		rate_key = CASE WHEN @parks THEN @key ELSE rate_key END,
		rate_priority = CASE WHEN @parks THEN @priority::smallint ELSE rate_priority END,
		rate_vt = CASE WHEN @parks THEN coalesce(rate_vt, now()) ELSE rate_vt END,
		rate_parked_at = CASE WHEN @parks THEN now() END,
		rate_released_at = NULL,
		updated_at = now()
	WHERE id = @id AND claim_id = @claim_id AND status = 'delivering' AND cancel_requested_at IS NULL
	RETURNING rate_wait_until
), paused AS (
	UPDATE {s}.rate_limits SET
		paused_until = greatest(paused_until, (SELECT rate_wait_until FROM pending)),
		updated_at = now()
	WHERE key = @key AND @parks AND EXISTS (SELECT 1 FROM pending)
)
SELECT extract(epoch FROM rate_wait_until - now())::float8 FROM pending`),

		LiftPause: r.Replace(`
WITH old AS (SELECT paused_until FROM {s}.rate_limits WHERE key = @key AND paused_until > now() FOR UPDATE)
UPDATE {s}.rate_limits SET paused_until = NULL, updated_at = now()
FROM old WHERE key = @key
RETURNING old.paused_until`),

		SelectKeyStates: r.Replace(`
SELECT k.key,
	(SELECT l.paused_until FROM {s}.rate_limits l WHERE l.key = k.key AND l.paused_until > now()),
	(SELECT count(*) FROM {s}.messages m WHERE m.rate_key = k.key AND m.rate_parked_at IS NOT NULL AND m.status IN {undelivered}),
	(SELECT count(*) FROM {s}.messages m WHERE m.rate_key = k.key AND m.rate_released_at IS NOT NULL AND m.status IN {undelivered})
FROM unnest(@keys::text[]) AS k(key)
ORDER BY k.key`),

		CountEnvelopeWaitingByKey: r.Replace(`
SELECT rate_key, count(*) FROM {s}.messages
WHERE bulk_envelope_id = @id AND status IN {undelivered} AND rate_key = ANY(@keys::text[])
GROUP BY rate_key`),

		RenewClaim: r.Replace(`
UPDATE {s}.messages SET claimed_until = now() + make_interval(secs => @claim_secs::float8)
WHERE id = @id AND claim_id = @claim_id AND status = 'delivering'`),
	}
}
