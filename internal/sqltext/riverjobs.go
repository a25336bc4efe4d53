package sqltext

import (
	"strings"

	"github.com/jackc/pgx/v5"
)

// RiverVersion is the River version whose river_job table every statement
// of this file was written for and is tested against: River's version in
// go.mod, which a test holds it to. These are the only writes to River's
// tables outside River's own API, so an upgrade of River is a prompt to read
// them against its schema and its own statements for the same changes
// (JobCompleteTx, JobCancel, JobDeleteMany, its fetch and completer) before
// moving the pin.
const RiverVersion = "v0.51.2"

// RiverJobs holds every statement of the library that writes River's tables.
// They do what River's public API does (river.JobCompleteTx, JobCancelTx,
// JobDeleteManyTx, JobRetryTx and its insert notification), but for many
// jobs in one statement, or together with a message row in the same
// statement. Each has a test that reads its effect back through River's
// Client.JobGet, or, for DispatchKey, through River's fetch
// (TestFairRateLimits).
type RiverJobs struct {
	// DeleteUnusedJobs deletes River jobs that this transaction inserted for
	// messages that turned out to be duplicates. $1 job ids.
	DeleteUnusedJobs string

	// RecordSentCompleteJob records a delivered message, if the claim id
	// still holds it, and completes its running River job in the same
	// statement, so that both commit together or neither does. It sets the
	// job's state and finalized_at as river.JobCompleteTx does. It returns
	// whether the message was recorded. A job no longer running (River
	// rescued it) is left to its next run, which finds the message sent.
	// $1 message id, $2 claim id, $3 job id.
	RecordSentCompleteJob string

	// CancelJobs cancels messages' delivery jobs that are not running or
	// finalized, as River's own JobCancel does for them. A running job is
	// left to its worker, which finds its message cancelled, and a job that
	// is not the message's delivery job (isDeliveryJobOf) is left alone. $1
	// job ids, $2 the ids of their messages, as text, in the same order.
	CancelJobs string

	// DispatchKey is a rate limit's release (see RateLimits): it releases
	// the key's most urgent parked messages, as many as its limits have
	// slots free now less the slots already released and not yet claimed
	// (released or fetched in the last @horizon_secs, or not yet fetched),
	// and makes their River jobs available at
	// once, as JobRetryTx would, ahead of fresher jobs of their priority.
	// It notifies River's producers on @channel with @payload, as River's
	// insert does, when it woke any, and @notify.
	//
	// It returns one row: how many it released, whether parked messages
	// remain, and the seconds until the next slot beyond those released
	// comes free (or the key's pause ends). No row when the key has no
	// row. @key, @burst, the key's limits, @horizon_secs, @candidates (how
	// many of the key's first parked messages to look at, more than a
	// burst), @channel, @payload, @notify.
	DispatchKey string

	// PlaceTriggered stores, in a trigger's transaction, the rate limit key
	// of each of its new messages whose key has a limit, with its job's
	// @priority. A bulk's message that is due (@placed) is placed in its
	// key's fair order (rate_vt: the key's vtime now, plus its position
	// among the call's messages of its key at the key's rate). As many as
	// the key has slots free, when nothing of their priority or a more
	// urgent one waits, are released at once, so that dispatchers count
	// them as taking slots; the rest park, each job scheduled for after its
	// expected turn (plus @slack_secs, at most @max_sleep_secs), so that
	// River does not fetch it only for it to park: a dispatcher releases
	// it, as any parked message. It returns the id and expected turn of
	// each message it parked. One row of each array per message: @ids,
	// @keys, @ordinals (the position among the call's placed messages of
	// its key, or among its bulk's messages scheduled for later),
	// @interval_secs, @tolerance_secs and @bursts (its key's first limit),
	// @placed; and @priority, @slack_secs, @max_sleep_secs.
	PlaceTriggered string
}

// newRiverJobs fills RiverJobs with r, which replaces {s} and {rs}.
func newRiverJobs(r *strings.Replacer) RiverJobs {
	return RiverJobs{
		// The key's row is locked (LockRateLimit), so that dispatchers
		// take turns and count the slots released by the one before.
		DispatchKey: r.Replace(`
WITH k AS MATERIALIZED (
	SELECT key, tat, paused_until, calls, calls_floor FROM {s}.rate_limits WHERE key = @key FOR UPDATE
), x AS MATERIALIZED (` + windowsOf(r) + `
), outstanding AS MATERIALIZED (
	-- Released and not yet claimed: recently, or with a job that no
	-- process has fetched yet (a bulk's first slots, released by its
	-- trigger, wait for any River to fetch them, however long), or fetched
	-- recently.
	SELECT count(*) AS n FROM {s}.messages m
	WHERE m.rate_key = @key AND m.rate_released_at IS NOT NULL AND m.status IN {undelivered}
		AND (m.rate_released_at > now() - make_interval(secs => @horizon_secs::float8)
			OR EXISTS (SELECT 1 FROM {rs}.river_job j WHERE ` + isDeliveryJobOf("j", "m.job_id", "m.id::text") + `
				AND (j.state = 'available'
					OR (j.state = 'running' AND j.attempted_at > now() - make_interval(secs => @horizon_secs::float8)))))
), free AS MATERIALIZED (
	SELECT CASE WHEN k.paused_until > now() OR EXISTS (SELECT 1 FROM x WHERE x.full) THEN 0 ELSE greatest(0, least(
		@burst::bigint,
		` + limitFree("k.tat", "@interval_secs::float8", "@tolerance_secs::float8") + `
	) - outstanding.n) END AS n
	FROM k, outstanding
), candidates AS MATERIALIZED (
	-- The key's order, walked on its index alone, so that a release costs
	-- as much with 20,000 parked as with 20, whatever the planner's
	-- statistics say; then each candidate's job, by its primary key.
	SELECT id, job_id, rate_priority, rate_vt FROM {s}.messages
	WHERE rate_key = @key AND rate_parked_at IS NOT NULL
	ORDER BY rate_priority, rate_vt, id
	LIMIT CASE WHEN (SELECT n FROM free) > 0 THEN @candidates::bigint ELSE 0 END
), picked AS MATERIALIZED (
	SELECT m.id, m.job_id FROM candidates c
	JOIN {s}.messages m ON m.id = c.id
	WHERE m.rate_parked_at IS NOT NULL AND m.status IN {undelivered}
		AND EXISTS (SELECT 1 FROM {rs}.river_job j WHERE ` + isDeliveryJobOf("j", "c.job_id", "c.id::text") + ` AND j.state IN ('scheduled', 'available'))
	ORDER BY c.rate_priority, c.rate_vt, c.id
	LIMIT coalesce((SELECT n FROM free), 0)
	FOR UPDATE OF m SKIP LOCKED
), released AS (
	UPDATE {s}.messages SET rate_parked_at = NULL, rate_released_at = now()
	FROM picked WHERE messages.id = picked.id
), woken AS (
	UPDATE {rs}.river_job SET state = 'available', scheduled_at = least(river_job.created_at, now())
	FROM picked WHERE river_job.id = picked.job_id
	RETURNING 1
), notified AS (
	SELECT pg_notify(@channel, @payload) FROM (SELECT 1 FROM woken LIMIT 1) AS any_woken WHERE @notify
)
SELECT
	(SELECT count(*) FROM picked),
	EXISTS (SELECT 1 FROM {s}.messages p WHERE p.rate_key = @key AND p.rate_parked_at IS NOT NULL AND p.status IN {undelivered}
		AND p.id NOT IN (SELECT id FROM picked)),
	extract(epoch FROM greatest(
		k.paused_until,
		` + limitReady("k.tat", "@interval_secs::float8", "@tolerance_secs::float8") + ` + make_interval(secs => (outstanding.n + (SELECT count(*) FROM picked)) * @interval_secs::float8),
		(SELECT max(coalesce(x.until, now() + interval '1 second')) FROM x WHERE x.full)
	) - now())::float8,
	(SELECT count(*) FROM notified)
FROM k, outstanding`),

		// The key's row is read without a lock: a trigger never waits for
		// the claims and releases of its key.
		PlaceTriggered: r.Replace(`
WITH input AS MATERIALIZED (
	SELECT * FROM unnest(@ids::uuid[], @keys::text[], @ordinals::bigint[], @interval_secs::float8[], @tolerance_secs::float8[], @bursts::bigint[], @placed::bool[])
		AS i(id, key, ordinal, interval_secs, tolerance_secs, burst, placed)
), k AS MATERIALIZED (
	-- How many of the call's placed messages of each key go at once: the
	-- slots free now and not already released, and none while a message
	-- of their priority or a more urgent one is parked, whose turn comes
	-- first. Read without a lock: triggers at once may release a slot
	-- twice, and the later claim parks.
	SELECT d.key, l.tat, l.paused_until, l.vtime, l.calls,
		CASE
			WHEN l.paused_until > now() THEN 0
			WHEN EXISTS (SELECT 1 FROM {s}.messages p
				WHERE p.rate_key = d.key AND p.rate_parked_at IS NOT NULL AND p.status IN {undelivered}
					AND p.rate_priority <= @priority::smallint) THEN 0
			-- With no row yet, or one no call has used (its tat, written
			-- when it was made, may be after this transaction's now()),
			-- the whole burst is free.
			ELSE greatest(0, least(d.burst, CASE WHEN l.key IS NULL OR l.calls = 0 THEN d.burst ELSE ` + limitFree("l.tat", "d.interval_secs", "d.tolerance_secs") + ` END)
				- (SELECT count(*) FROM {s}.messages r
					WHERE r.rate_key = d.key AND r.rate_released_at IS NOT NULL AND r.status IN {undelivered}))
		END AS free
	FROM (SELECT DISTINCT ON (key) key, interval_secs, tolerance_secs, burst FROM input) AS d
	LEFT JOIN {s}.rate_limits l ON l.key = d.key
), p AS MATERIALIZED (
	SELECT i.*, k.tat, k.paused_until, k.vtime,
		CASE WHEN i.placed THEN coalesce(k.vtime, now()) + make_interval(secs => i.ordinal * i.interval_secs) END AS vt,
		i.placed AND i.ordinal >= k.free AS parks,
		i.placed AND i.ordinal < k.free AS released
	FROM input i JOIN k ON k.key = i.key
), marked AS (
	UPDATE {s}.messages m SET
		rate_key = p.key,
		rate_priority = @priority::smallint,
		rate_vt = p.vt,
		rate_parked_at = CASE WHEN p.parks THEN now() END,
		rate_released_at = CASE WHEN p.released THEN now() END,
		-- An estimate, as a claim that parks writes it.
		rate_wait_until = CASE WHEN p.parks THEN ` + expectedTurn("p", "p.vt", "p.interval_secs", "p.tolerance_secs") + ` END,
		-- A bulk's message scheduled for later is placed at its first
		-- claim, by its position among those of the call: not behind the
		-- due ones, which are placed already.
		envelope_ordinal = CASE WHEN NOT p.placed AND m.bulk_envelope_id IS NOT NULL THEN p.ordinal ELSE m.envelope_ordinal END
	FROM p WHERE m.id = p.id
	RETURNING m.id, m.job_id, p.parks, m.rate_wait_until
), asleep AS (
	UPDATE {rs}.river_job j SET state = 'scheduled', scheduled_at = now() + least(
		greatest(marked.rate_wait_until - now(), '0'::interval) + make_interval(secs => @slack_secs::float8),
		make_interval(secs => @max_sleep_secs::float8))
	FROM marked WHERE marked.parks AND j.id = marked.job_id AND j.state IN ('available', 'scheduled')
)
SELECT id, rate_wait_until FROM marked WHERE parks`),

		// River's JobDeleteManyTx caps a call at 10,000 ids; these jobs were
		// inserted by this same transaction and no one else can see them.
		DeleteUnusedJobs: r.Replace(`DELETE FROM {rs}.river_job WHERE id = ANY($1::bigint[])`),

		RecordSentCompleteJob: r.Replace(`
WITH sent AS (
	UPDATE {s}.messages
	SET ` + setStatus(`'sent'`) + `, sent_at = now(), last_error = NULL, claimed_until = NULL, updated_at = now()
	WHERE id = $1 AND claim_id = $2 AND status = 'delivering'
	RETURNING id
), completed AS (
	UPDATE {rs}.river_job SET state = 'completed', finalized_at = now()
	WHERE id = $3 AND state = 'running' AND EXISTS (SELECT 1 FROM sent)
)
SELECT EXISTS (SELECT 1 FROM sent)`),

		CancelJobs: r.Replace(`
UPDATE {rs}.river_job j
SET state = 'cancelled', finalized_at = now(),
	metadata = jsonb_set(j.metadata, '{cancel_attempted_at}', to_jsonb(now()), true)
FROM unnest($1::bigint[], $2::text[]) AS mine(job_id, message_id)
WHERE ` + isDeliveryJobOf("j", "mine.job_id", "mine.message_id") + `
	AND j.state IN ('available', 'pending', 'retryable', 'scheduled')`),
	}
}

// InlineJobs are the statements with which package outboundtest works one
// delivery job inline, as River's fetch and completer would, with no River
// client running. Each sets the columns River's own statements set for the
// same change; outboundtest's tests read the effect back through River's
// Client.JobGet.
type InlineJobs struct {
	// FetchJob makes a job running for one more attempt, as River's fetch
	// does (a finalized one as after River's JobRetry), unless it is running
	// already, and returns id, args, attempt,
	// attempted_at, created_at, kind, max_attempts, metadata, priority,
	// queue, scheduled_at, state and tags. $1 job id, $2 the worker's name
	// for attempted_by.
	FetchJob string

	// CompleteJob completes a running job whose attempt returned no error.
	// The delivery's sent record may have completed it already. $1 job id.
	CompleteJob string

	// CancelJob cancels a running job whose attempt returned
	// river.JobCancel. $1 job id, $2 the attempt's error as River's JSON.
	CancelJob string

	// SnoozeJob schedules a running job again, without using an attempt,
	// for an attempt that returned river.JobSnooze. $1 job id, $2 when.
	SnoozeJob string

	// FailJob records a running job's failed attempt: retryable at $3, or
	// discarded when it has no attempt left. $1 job id, $2 the attempt's
	// error as River's JSON, $3 when to retry.
	FailJob string
}

// NewInlineJobs returns the statements for River's tables in riverSchema,
// validated by the caller.
func NewInlineJobs(riverSchema string) InlineJobs {
	r := strings.NewReplacer("{rs}", pgx.Identifier{riverSchema}.Sanitize())
	return InlineJobs{
		FetchJob: r.Replace(`
UPDATE {rs}.river_job
SET state = 'running', attempt = attempt + 1, attempted_at = now(), finalized_at = NULL,
	attempted_by = array_append(coalesce(attempted_by, '{}'), $2::text)
WHERE id = $1 AND state <> 'running'
RETURNING id, args, attempt, attempted_at, created_at, kind, max_attempts, metadata, priority, queue, scheduled_at, state, tags`),

		CompleteJob: r.Replace(`
UPDATE {rs}.river_job SET state = 'completed', finalized_at = now()
WHERE id = $1 AND state = 'running'`),

		CancelJob: r.Replace(`
UPDATE {rs}.river_job SET state = 'cancelled', finalized_at = now(), errors = array_append(errors, $2::jsonb)
WHERE id = $1 AND state = 'running'`),

		SnoozeJob: r.Replace(`
UPDATE {rs}.river_job
SET state = CASE WHEN $2::timestamptz <= now() THEN 'available'::{rs}.river_job_state ELSE 'scheduled'::{rs}.river_job_state END,
	scheduled_at = $2, attempt = attempt - 1,
	metadata = jsonb_set(metadata, '{snoozes}', to_jsonb(coalesce((metadata->>'snoozes')::int, 0) + 1))
WHERE id = $1 AND state = 'running'`),

		FailJob: r.Replace(`
UPDATE {rs}.river_job
SET state = CASE WHEN attempt >= max_attempts THEN 'discarded'::{rs}.river_job_state ELSE 'retryable'::{rs}.river_job_state END,
	finalized_at = CASE WHEN attempt >= max_attempts THEN now() END,
	scheduled_at = CASE WHEN attempt >= max_attempts THEN scheduled_at ELSE $3 END,
	errors = array_append(errors, $2::jsonb)
WHERE id = $1 AND state = 'running'`),
	}
}
