package sqltext

import "strings"

// RateLimits holds the statements of the rate limits that every process
// working the schema shares: one rate_limits row per key, and a message's
// booking in messages.rate_wait_until. Their arguments are named (pgx's
// NamedArgs), each documented with its statement. Times come from the
// database's clock, never a process's.
type RateLimits struct {
	// EnsureRateLimit creates a key's row, with its whole burst free, if it
	// is missing. @key.
	EnsureRateLimit string

	// SelectMessageWait reads one message, then the seconds until its
	// booking with its rate limit comes due (NULL when it has none, zero or
	// less once due). @id.
	SelectMessageWait string

	// ClaimMessageRated claims a message for one delivery attempt, as
	// ClaimMessage does, if its key's limit lets a Notifier call start now;
	// otherwise it books the message a slot, and claims nothing.
	//
	// The limit is the generic cell rate algorithm over calls started: one
	// may start when tat <= now() + @tolerance_secs ((burst - 1) ×
	// interval) and the key is not paused, and moves tat on by
	// @interval_secs. Messages that must wait are booked one interval apart
	// from next_wake, so that they wake one at a time. A booked message whose
	// booking is due goes before a message that has none, which waits its
	// turn while bookings are ahead of it. A retried claim (the same
	// @claim_id already holds the message) takes no second slot.
	//
	// It returns one row: MessageColumns then NULL when claimed; the message
	// as it was, without its content (MessageColumnsWithoutContent), then
	// the seconds until its booking when it must wait; no row
	// when the message is missing or not claimable, or the key has no row.
	// @id, @claim_id, @attempt, @claim_secs, @key, @interval_secs,
	// @tolerance_secs.
	ClaimMessageRated string

	// RecordRateLimited records an attempt whose Notifier returned
	// RateLimited(d, err), if the claim id still holds the message and no
	// cancel was requested: the message is pending again, the attempt is
	// not counted, and it is booked for when the pause ends, which it also
	// puts on its key's row (when the key has one) for every process. It
	// returns the seconds until the booking. @id, @claim_id, @key,
	// @pause_secs, @last_error.
	RecordRateLimited string

	// RenewClaim makes the claim that the claim id holds run for
	// @claim_secs from now: an attempt's Notifier call that outlives
	// NotifyTimeout keeps its claim until it returns. It returns whether
	// the claim id still holds the message. @id, @claim_id, @claim_secs.
	RenewClaim string
}

// newRateLimits fills RateLimits with r, which replaces {s} and the rest.
func newRateLimits(r *strings.Replacer) RateLimits {
	return RateLimits{
		EnsureRateLimit: r.Replace(`
INSERT INTO {s}.rate_limits (key, tat, next_wake, updated_at)
VALUES (@key, now(), now(), now())
ON CONFLICT (key) DO NOTHING`),

		SelectMessageWait: r.Replace(`
SELECT {mcols_no_content}, extract(epoch FROM rate_wait_until - now())::float8
FROM {s}.messages WHERE id = @id`),

		// Both reads lock, so that the decision is taken on the rows as
		// last committed: the message first, then the key's row, the order
		// of every statement that locks both.
		ClaimMessageRated: r.Replace(`
WITH m AS MATERIALIZED (
	SELECT status, claim_id, rate_wait_until FROM {s}.messages
	WHERE id = @id AND ` + claimable("@claim_id") + `
	FOR UPDATE
), k AS MATERIALIZED (
	SELECT tat, next_wake, paused_until FROM {s}.rate_limits WHERE key = @key FOR UPDATE
), d AS MATERIALIZED (
	SELECT
		coalesce(m.status = 'delivering' AND m.claim_id = @claim_id, false) AS reclaim,
		m.rate_wait_until IS NOT NULL AS booked,
		k.tat, k.next_wake,
		-- greatest ignores NULLs: an unpaused key has none.
		greatest(k.tat - make_interval(secs => @tolerance_secs::float8), k.paused_until, now()) AS ready
	FROM m CROSS JOIN k
), g AS MATERIALIZED (
	SELECT *, reclaim OR (ready <= now() AND (booked OR next_wake <= now() + make_interval(secs => @interval_secs::float8))) AS go
	FROM d
), w AS MATERIALIZED (
	SELECT *, CASE WHEN go THEN NULL ELSE greatest(next_wake, ready) END AS wake
	FROM g
), slot AS (
	UPDATE {s}.rate_limits SET
		tat = CASE WHEN w.go THEN greatest(w.tat, now()) + make_interval(secs => @interval_secs::float8) ELSE w.tat END,
		next_wake = CASE WHEN w.go THEN w.next_wake ELSE w.wake + make_interval(secs => @interval_secs::float8) END,
		updated_at = now()
	FROM w WHERE key = @key AND NOT w.reclaim
), claimed AS (
	UPDATE {s}.messages SET ` + claimSet("@claim_id", "@attempt", "@claim_secs") + `
	FROM w WHERE id = @id AND w.go
	RETURNING {mcols}
), booking AS (
	UPDATE {s}.messages SET rate_wait_until = w.wake, updated_at = now()
	FROM w WHERE id = @id AND NOT w.go
)
SELECT claimed.*, NULL::float8 FROM claimed
UNION ALL
SELECT {mcols_no_content}, extract(epoch FROM w.wake - now())::float8
FROM {s}.messages CROSS JOIN w WHERE id = @id AND NOT w.go`),

		RecordRateLimited: r.Replace(`
WITH pending AS (
	UPDATE {s}.messages
	SET ` + setStatus(`'pending'`) + `, attempts = greatest(attempts - 1, 0), last_error = @last_error,
		claimed_until = NULL, rate_wait_until = now() + make_interval(secs => @pause_secs::float8), updated_at = now()
	WHERE id = @id AND claim_id = @claim_id AND status = 'delivering' AND cancel_requested_at IS NULL
	RETURNING rate_wait_until
), paused AS (
	UPDATE {s}.rate_limits SET
		paused_until = greatest(paused_until, (SELECT rate_wait_until FROM pending)),
		next_wake = greatest(next_wake, (SELECT rate_wait_until FROM pending)),
		updated_at = now()
	WHERE key = @key AND EXISTS (SELECT 1 FROM pending)
)
SELECT extract(epoch FROM rate_wait_until - now())::float8 FROM pending`),

		RenewClaim: r.Replace(`
UPDATE {s}.messages SET claimed_until = now() + make_interval(secs => @claim_secs::float8)
WHERE id = @id AND claim_id = @claim_id AND status = 'delivering'`),
	}
}
