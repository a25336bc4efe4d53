package sqltext

import (
	"strings"

	"github.com/jackc/pgx/v5"
)

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
