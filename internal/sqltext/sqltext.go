// Package sqltext holds every SQL statement the outbound library runs against
// its own tables. Statements are parameterised; the only text spliced in is the
// schema name, validated by the caller and quoted here with
// pgx.Identifier.Sanitize.
package sqltext

import (
	"strings"

	"github.com/jackc/pgx/v5"
)

// MessageColumns is the column list every message read scans, in order.
const MessageColumns = `id, conversation_id, role, template_id, content, status, bulk_envelope_id,
	metadata, job_id, scheduled_at, attempts, last_error, sent_at, created_at, updated_at`

// EnvelopeColumns is the column list every envelope read scans, in order.
const EnvelopeColumns = `id, template_id, rendered_body, recipient_conversation_ids, count,
	effective_cap, requested_by, requested_at, status, refused_reason, created_at, updated_at`

// liveStatuses are the message statuses that hold a dedup key; it must match
// the predicate of messages_dedup_key_idx.
const liveStatuses = `('pending', 'sent', 'failed')`

// nilUUID stands in for a missing envelope id in the dedup key.
const nilUUID = `'00000000-0000-0000-0000-000000000000'::uuid`

// Queries is the library's SQL for one schema.
type Queries struct {
	// InsertMessages inserts one pending message per (id, conversation id,
	// job id) triple, skipping any whose dedup key is taken, and returns the
	// id, created_at and scheduled_at of each inserted row: every other
	// column is a parameter or a column default, so the caller knows it
	// already. $1 ids, $2 conversation ids, $3 job ids, $4 template id,
	// $5 content, $6 envelope id or NULL, $7 scheduled_at or NULL for now().
	InsertMessages string

	// SelectLiveMessagesByKey returns the live messages holding the dedup keys
	// of the given conversations. $1 conversation ids, $2 template id,
	// $3 envelope id or NULL.
	SelectLiveMessagesByKey string

	// DeleteUnusedJobs deletes River jobs that this transaction inserted for
	// messages that turned out to be duplicates. $1 job ids.
	DeleteUnusedJobs string

	// SelectMessage reads one message. $1 id.
	SelectMessage string

	// SelectMessagesByEnvelope reads an envelope's messages, oldest first.
	// $1 envelope id, $2 template id.
	SelectMessagesByEnvelope string

	// InsertEnvelope inserts an envelope unless its id exists, returning it.
	// $1 id, $2 template id, $3 body, $4 recipients, $5 effective cap,
	// $6 requested_by or NULL, $7 status, $8 refused reason or NULL.
	InsertEnvelope string

	// SelectEnvelope reads one envelope. $1 id.
	SelectEnvelope string

	// ListEnvelopes reads envelopes newest first. $1 status or NULL for all,
	// $2 limit.
	ListEnvelopes string

	// InsertAuditEvent stores one audit event. $1 id, $2 action, $3 actor or
	// NULL, $4 metadata, $5 occurred_at.
	InsertAuditEvent string

	// ListAuditEvents reads audit events newest first. $1 action or NULL for
	// all, $2 limit.
	ListAuditEvents string

	// LockMessage reads one message and locks it until the transaction ends,
	// so that a delivery and a cancel of the same message take turns. $1 id.
	LockMessage string

	// SelectMessageEnvelopeID reads the envelope id of one message, NULL when
	// it has none. $1 id.
	SelectMessageEnvelopeID string

	// MarkMessageSentCompleteJob records a delivered message and completes
	// its running River job in one statement, so that both commit together.
	// It sets the job's state and finalized_at as river.JobCompleteTx does,
	// without River's general many-jobs state update, which was the costliest
	// statement of a delivery. $1 message id, $2 attempts, $3 job id.
	MarkMessageSentCompleteJob string

	// CompleteJob completes a running River job as river.JobCompleteTx does,
	// for a delivery that finds its message already sent. $1 job id.
	CompleteJob string

	// MarkMessageFailed records a failed delivery attempt. $1 id, $2 status
	// (failed or discarded), $3 attempts, $4 last error.
	MarkMessageFailed string

	// CancelMessage cancels one message if it is still undelivered, returning
	// its job id. $1 id.
	CancelMessage string

	// CancelEnvelopeMessages cancels an envelope's undelivered messages,
	// returning their job ids. $1 envelope id, $2 template id.
	CancelEnvelopeMessages string

	// CancelJobs cancels River jobs that are not running or finalized, as
	// River's own JobCancel does for them. A running job is left to its
	// worker, which finds its message cancelled. $1 job ids.
	CancelJobs string

	// LockEnvelope reads one envelope and locks it until the transaction
	// ends, so that cancels touching one envelope take turns. $1 id.
	LockEnvelope string

	// MarkEnvelopeCancelledIfAllCancelled sets a submitted envelope's status
	// to cancelled when none of its messages is left uncancelled. $1 id.
	MarkEnvelopeCancelledIfAllCancelled string

	// EnvelopeProgress counts an envelope's messages by status; no row means
	// no such envelope. $1 id.
	EnvelopeProgress string

	// ReconcileMessages settles up to $1 undelivered messages whose River job
	// was cancelled (the message becomes cancelled), discarded or deleted
	// (the message becomes discarded). Messages locked by a running delivery
	// are skipped until a later run.
	ReconcileMessages string
}

// New returns the queries for the library's schema and River's schema, both
// validated by the caller.
func New(schema, riverSchema string) *Queries {
	s := pgx.Identifier{schema}.Sanitize()
	rr := strings.NewReplacer("{rs}", pgx.Identifier{riverSchema}.Sanitize())
	r := strings.NewReplacer("{s}", s, "{live}", liveStatuses, "{nil}", nilUUID,
		"{mcols}", MessageColumns, "{ecols}", EnvelopeColumns)
	return &Queries{
		InsertMessages: r.Replace(`
INSERT INTO {s}.messages (id, conversation_id, job_id, template_id, content, bulk_envelope_id, metadata, scheduled_at)
SELECT u.id, u.conversation_id, u.job_id, $4, $5, $6,
	jsonb_build_object('template_id', $4::text, 'status', 'pending', 'bulk_envelope_id', $6::uuid),
	coalesce($7::timestamptz, now())
FROM unnest($1::uuid[], $2::bigint[], $3::bigint[]) WITH ORDINALITY AS u(id, conversation_id, job_id, ord)
ORDER BY u.ord
ON CONFLICT DO NOTHING
RETURNING id, created_at, scheduled_at`),

		SelectLiveMessagesByKey: r.Replace(`
SELECT {mcols} FROM {s}.messages
WHERE conversation_id = ANY($1::bigint[])
	AND template_id = $2
	AND coalesce(bulk_envelope_id, {nil}) = coalesce($3::uuid, {nil})
	AND status IN {live}`),

		// River's JobDeleteManyTx caps a call at 10,000 ids; these jobs were
		// inserted by this same transaction and no one else can see them.
		DeleteUnusedJobs: rr.Replace(`DELETE FROM {rs}.river_job WHERE id = ANY($1::bigint[])`),

		SelectMessage: r.Replace(`SELECT {mcols} FROM {s}.messages WHERE id = $1`),

		SelectMessagesByEnvelope: r.Replace(`
SELECT {mcols} FROM {s}.messages
WHERE bulk_envelope_id = $1 AND template_id = $2
ORDER BY created_at, id`),

		InsertEnvelope: r.Replace(`
INSERT INTO {s}.bulk_envelopes
	(id, template_id, rendered_body, recipient_conversation_ids, count, effective_cap, requested_by, status, refused_reason)
VALUES ($1, $2, $3, $4::bigint[], cardinality($4::bigint[]), $5, $6, $7, $8)
ON CONFLICT (id) DO NOTHING
RETURNING {ecols}`),

		SelectEnvelope: r.Replace(`SELECT {ecols} FROM {s}.bulk_envelopes WHERE id = $1`),

		ListEnvelopes: r.Replace(`
SELECT {ecols} FROM {s}.bulk_envelopes
WHERE $1::text IS NULL OR status = $1
ORDER BY requested_at DESC, id DESC
LIMIT $2`),

		InsertAuditEvent: r.Replace(`
INSERT INTO {s}.audit_events (id, action, actor, metadata, occurred_at) VALUES ($1, $2, $3, $4, $5)`),

		LockMessage: r.Replace(`SELECT {mcols} FROM {s}.messages WHERE id = $1 FOR UPDATE`),

		SelectMessageEnvelopeID: r.Replace(`SELECT bulk_envelope_id FROM {s}.messages WHERE id = $1`),

		MarkMessageSentCompleteJob: rr.Replace(r.Replace(`
WITH sent AS (
	UPDATE {s}.messages
	SET status = 'sent', sent_at = now(), attempts = $2, last_error = NULL,
		metadata = jsonb_set(metadata, '{status}', '"sent"'), updated_at = now()
	WHERE id = $1
	RETURNING id
)
UPDATE {rs}.river_job SET state = 'completed', finalized_at = now()
WHERE id = $3 AND state = 'running' AND EXISTS (SELECT 1 FROM sent)`)),

		CompleteJob: rr.Replace(`
UPDATE {rs}.river_job SET state = 'completed', finalized_at = now()
WHERE id = $1 AND state = 'running'`),

		MarkMessageFailed: r.Replace(`
UPDATE {s}.messages
SET status = $2, attempts = $3, last_error = $4,
	metadata = jsonb_set(metadata, '{status}', to_jsonb($2::text)), updated_at = now()
WHERE id = $1`),

		CancelMessage: r.Replace(`
UPDATE {s}.messages
SET status = 'cancelled', metadata = jsonb_set(metadata, '{status}', '"cancelled"'), updated_at = now()
WHERE id = $1 AND status IN ('pending', 'failed')
RETURNING job_id`),

		// UPDATE waits for a row that a delivery has locked, then checks the
		// WHERE again on the row as committed: a message that was just sent
		// is skipped.
		CancelEnvelopeMessages: r.Replace(`
UPDATE {s}.messages
SET status = 'cancelled', metadata = jsonb_set(metadata, '{status}', '"cancelled"'), updated_at = now()
WHERE bulk_envelope_id = $1 AND template_id = $2 AND status IN ('pending', 'failed')
RETURNING job_id`),

		CancelJobs: rr.Replace(`
UPDATE {rs}.river_job
SET state = 'cancelled', finalized_at = now(),
	metadata = jsonb_set(metadata, '{cancel_attempted_at}', to_jsonb(now()), true)
WHERE id = ANY($1::bigint[]) AND state IN ('available', 'pending', 'retryable', 'scheduled')`),

		LockEnvelope: r.Replace(`SELECT {ecols} FROM {s}.bulk_envelopes WHERE id = $1 FOR UPDATE`),

		MarkEnvelopeCancelledIfAllCancelled: r.Replace(`
UPDATE {s}.bulk_envelopes e
SET status = 'cancelled', updated_at = now()
WHERE e.id = $1 AND e.status = 'submitted' AND NOT EXISTS (
	SELECT 1 FROM {s}.messages m
	WHERE m.bulk_envelope_id = e.id AND m.template_id = e.template_id AND m.status <> 'cancelled')`),

		EnvelopeProgress: r.Replace(`
SELECT
	count(m.id) FILTER (WHERE m.status = 'pending'),
	count(m.id) FILTER (WHERE m.status = 'sent'),
	count(m.id) FILTER (WHERE m.status = 'failed'),
	count(m.id) FILTER (WHERE m.status = 'discarded'),
	count(m.id) FILTER (WHERE m.status = 'cancelled')
FROM {s}.bulk_envelopes e
LEFT JOIN {s}.messages m ON m.bulk_envelope_id = e.id AND m.template_id = e.template_id
WHERE e.id = $1
GROUP BY e.id`),

		ReconcileMessages: rr.Replace(r.Replace(`
WITH stale AS (
	SELECT m.id,
		CASE WHEN j.state = 'cancelled' THEN 'cancelled' ELSE 'discarded' END AS status,
		CASE
			WHEN j.id IS NULL THEN 'delivery job no longer exists'
			ELSE 'delivery job was ' || j.state::text || ' without recording a result'
		END AS reason
	FROM {s}.messages m
	LEFT JOIN {rs}.river_job j ON j.id = m.job_id
	WHERE m.status IN ('pending', 'failed')
		AND (j.id IS NULL OR j.state IN ('cancelled', 'discarded'))
	ORDER BY m.id
	LIMIT $1
	FOR UPDATE OF m SKIP LOCKED
)
UPDATE {s}.messages m
SET status = stale.status,
	last_error = coalesce(m.last_error || '; ', '') || stale.reason,
	metadata = jsonb_set(m.metadata, '{status}', to_jsonb(stale.status)),
	updated_at = now()
FROM stale
WHERE m.id = stale.id`)),

		ListAuditEvents: r.Replace(`
SELECT id, action, actor, metadata, occurred_at FROM {s}.audit_events
WHERE $1::text IS NULL OR action = $1
ORDER BY occurred_at DESC, id DESC
LIMIT $2`),
	}
}
