package sqltext

import "strings"

// MessageClaims are the statements of the messages table as delivery writes it: the claim of an attempt, its record, and Reconcile's settling of attempts that never recorded one.
type MessageClaims struct {
	// ClaimMessage claims a message for one delivery attempt and returns it:
	// status delivering, the attempt's claim id, and a claim that runs out
	// after the given number of seconds. It claims a pending or failed
	// message, one whose claim ran out (its worker died) unless a cancel was
	// requested, and one this same claim id already holds (a retried claim
	// whose first commit was not acknowledged). No row: the message is
	// missing or not claimable. $1 id, $2 claim id, $3 River's attempt
	// number, $4 claim length in seconds.
	ClaimMessage string

	// SelectMessageClaim reads one message with its claim:
	// MessageColumnsWithoutContent, then claim_id, whether a cancel was requested, and the seconds the
	// claim has left to run (NULL without a claim, negative once it has run
	// out). $1 id.
	SelectMessageClaim string

	// ReleaseClaim ends a claim at once, if the claim id still holds it, for
	// an attempt that could not record its result, so that the next attempt
	// need not wait for the claim to run out. $1 id, $2 claim id.
	ReleaseClaim string

	// RecordFailed records a failed attempt, if the claim id still holds the
	// message and, for a failure that would be retried, no cancel was
	// requested: a message discarded by its own permanent failure keeps that
	// outcome even when a cancel was asked for. $1 id, $2 claim id, $3
	// status (failed or discarded), $4 last error.
	RecordFailed string

	// RecordCancelledInFlight ends a message whose in-flight attempt failed
	// after CancelEnvelope asked for it to be cancelled, if the claim id
	// still holds it, as cancelled by whoever asked. It returns that actor.
	// $1 id, $2 claim id, $3 last error.
	RecordCancelledInFlight string

	// MarkUnconfirmed ends a message whose claim ran out with a cancel
	// requested: its last attempt may have delivered it, and it must not be
	// attempted again. $1 id. It returns the last_error it wrote.
	MarkUnconfirmed string

	// ReconcileMessages looks at up to $1 messages awaiting a result, with
	// ids after $2, and settles those whose River job ended or is gone
	// without recording a result. A pending or failed message becomes
	// cancelled (its job was cancelled) or discarded (its job was discarded
	// or deleted, or is not this message's). A delivering message whose
	// claim has run out becomes unconfirmed: the attempt that claimed it
	// may have delivered it; one whose claim holds is left to its attempt,
	// which is alive, whatever its job's state. Rows locked by a running
	// statement are skipped until a later run. It returns one row per
	// message settled, or a single row when none was: how many it looked
	// at, the last id it looked at (the next batch's $2), then the settled
	// message's id, conversation_id, template_id, bulk_envelope_id,
	// attempts and last_error, its new status and its job's state (NULL
	// for a job gone), all NULL in the single row.
	ReconcileMessages string
}

// newMessageClaims fills MessageClaims with r, which replaces the placeholders of New.
func newMessageClaims(r *strings.Replacer) MessageClaims {
	return MessageClaims{
		ClaimMessage: r.Replace(`
UPDATE {s}.messages
SET ` + claimSet("$2", "$3", "$4") + `
WHERE id = $1 AND ` + claimable("$2") + `
RETURNING {mcols}`),

		SelectMessageClaim: r.Replace(`
SELECT {mcols_no_content}, claim_id, cancel_requested_at IS NOT NULL, extract(epoch FROM claimed_until - now())::float8
FROM {s}.messages WHERE id = $1`),

		ReleaseClaim: r.Replace(`
UPDATE {s}.messages SET claimed_until = now(), updated_at = now()
WHERE id = $1 AND claim_id = $2 AND status = 'delivering'`),

		RecordFailed: r.Replace(`
UPDATE {s}.messages
SET ` + setStatus(`$3`) + `, last_error = $4, claimed_until = NULL, updated_at = now()
WHERE id = $1 AND claim_id = $2 AND status = 'delivering' AND (cancel_requested_at IS NULL OR $3 = 'discarded')`),

		RecordCancelledInFlight: r.Replace(`
UPDATE {s}.messages
SET ` + setStatus(`'cancelled'`) + `, last_error = $3, claimed_until = NULL,
	cancelled_by = cancel_requested_by, cancelled_at = now(), updated_at = now()
WHERE id = $1 AND claim_id = $2 AND status = 'delivering'
RETURNING cancelled_by`),

		MarkUnconfirmed: r.Replace(`
UPDATE {s}.messages
SET ` + setStatus(`'unconfirmed'`) + `, claimed_until = NULL,
	last_error = coalesce(last_error || '; ', '') ||
		'cancel requested while an attempt was in flight, and that attempt never recorded a result: the notifier may have delivered it',
	updated_at = now()
WHERE id = $1 AND status = 'delivering' AND claimed_until <= now() AND cancel_requested_at IS NOT NULL
RETURNING last_error`),

		// A delivering message is settled only once its claim has run out:
		// while the claim holds, its attempt is alive (it renews the claim
		// while its Notifier call runs), even when River has finished with
		// the job (its rescuer discards the job of a last attempt older than
		// RescueStuckJobsAfter), and what the call returns is recorded on the
		// message. A job counts only if it is the message's delivery job
		// (isDeliveryJobOf): an id alone may name a host's job in a River
		// schema the message was not written for. The batch walks the
		// awaiting_result index in id order from a cursor, so that each
		// statement looks at a bounded number of rows however many are
		// waiting, and a run visits each waiting message once. The batch is
		// read several times, so PostgreSQL materializes it; its ids are
		// looked up as an array, which the primary key serves, rather than
		// joined, which the planner may do by scanning the table.
		ReconcileMessages: r.Replace(`
WITH batch AS (
	SELECT id FROM {s}.messages
	WHERE awaiting_result AND id > $2
	ORDER BY id
	LIMIT $1
), stale AS (
	SELECT m.id,
		CASE
			WHEN m.status = 'delivering' THEN 'unconfirmed'
			WHEN j.state = 'cancelled' THEN 'cancelled'
			ELSE 'discarded'
		END AS status,
		CASE
			WHEN m.status = 'delivering' THEN
				coalesce('delivery job was ' || j.state::text, 'delivery job no longer exists') ||
				' after an attempt that never recorded a result: the notifier may have delivered it'
			WHEN j.id IS NULL THEN 'delivery job no longer exists'
			ELSE 'delivery job was ' || j.state::text || ' without recording a result'
		END AS reason,
		j.state::text AS job_state
	FROM {s}.messages m
	LEFT JOIN {rs}.river_job j ON ` + isDeliveryJobOf("j", "m.job_id", "m.id::text") + `
	WHERE m.id = ANY (ARRAY(SELECT id FROM batch))
		AND ((m.status IN {undelivered} AND (j.id IS NULL OR j.state IN ('cancelled', 'discarded')))
			OR (m.status = 'delivering' AND m.claimed_until <= now()
				AND (j.id IS NULL OR j.state IN ('cancelled', 'completed', 'discarded'))))
	FOR UPDATE OF m SKIP LOCKED
), settled AS (
	UPDATE {s}.messages m
	SET ` + setStatus(`stale.status`) + `,
		last_error = coalesce(m.last_error || '; ', '') || stale.reason,
		cancelled_at = CASE WHEN stale.status = 'cancelled' THEN now() ELSE m.cancelled_at END,
		claimed_until = NULL,
		updated_at = now()
	FROM stale
	WHERE m.id = stale.id
	RETURNING ` + settledColumns("m.") + `, m.status, stale.job_state
)
SELECT (SELECT count(*) FROM batch), (SELECT id FROM batch ORDER BY id DESC LIMIT 1), settled.*
FROM (VALUES (1)) AS one LEFT JOIN settled ON true`),
	}
}
