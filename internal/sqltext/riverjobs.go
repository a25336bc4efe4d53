package sqltext

import "strings"

// RiverJobs holds every statement of the library that writes River's tables.
// They do what River's public API does (river.JobCompleteTx, JobCancelTx,
// JobDeleteManyTx), but for many jobs in one statement, or together with a
// message row in the same statement. Each has a test that reads its effect
// back through River's Client.JobGet.
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

	// CancelJobs cancels River jobs that are not running or finalized, as
	// River's own JobCancel does for them. A running job is left to its
	// worker, which finds its message cancelled. $1 job ids.
	CancelJobs string
}

// newRiverJobs fills RiverJobs with r, which replaces {s} and {rs}.
func newRiverJobs(r *strings.Replacer) RiverJobs {
	return RiverJobs{
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
UPDATE {rs}.river_job
SET state = 'cancelled', finalized_at = now(),
	metadata = jsonb_set(metadata, '{cancel_attempted_at}', to_jsonb(now()), true)
WHERE id = ANY($1::bigint[]) AND state IN ('available', 'pending', 'retryable', 'scheduled')`),
	}
}
