// Package sqltext holds every SQL statement the outbound library runs against
// its own tables. Statements are parameterised; the only text spliced in is the
// schema name, validated by the caller and quoted here with
// pgx.Identifier.Sanitize.
//
// The rules that SQL and Go share are stated once, in rules.go: which
// statuses hold a dedup key, await a result or may be claimed, the stand-in
// for a missing envelope id, and the column lists. The statements are
// generated from them, the library's Go code reads them, and the tests check
// the migrations' generated columns, constraints and indexes against them.
package sqltext

import (
	"strings"

	"github.com/jackc/pgx/v5"
)

// SchemaTables reports whether the tables a client needs exist: $1 the
// library's version table, $2 its installation table, $3 River's job table,
// each a quoted, schema-qualified name.
const SchemaTables = `SELECT to_regclass($1) IS NOT NULL, to_regclass($2) IS NOT NULL, to_regclass($3) IS NOT NULL`

// Queries is the library's SQL for one schema.
type Queries struct {
	// InsertMessages inserts one pending message per (id, conversation id,
	// job id) triple, skipping any whose dedup key is taken, and returns the
	// id, created_at and scheduled_at of each inserted row: every other
	// column is a parameter or a column default, so the caller knows it
	// already. $1 ids, $2 conversation ids, $3 job ids, $4 template id,
	// $5 content, $6 envelope id or NULL, $7 scheduled_at or NULL for now().
	// The metadata it builds is the library's newMessageMetadata, which a test
	// checks by reading the rows back.
	InsertMessages string

	// ReleaseExpiredDedupKeys releases the dedup keys of the given
	// conversations that are held by a message sent (or left unconfirmed)
	// longer ago than the window, and returns those conversations' ids.
	// $1 conversation ids, $2 template id, $3 envelope id or NULL, $4 the
	// window in seconds.
	ReleaseExpiredDedupKeys string

	// SelectLiveMessagesByKey returns the live messages holding the dedup keys
	// of the given conversations. $1 conversation ids, $2 template id,
	// $3 envelope id or NULL.
	SelectLiveMessagesByKey string

	// SelectMessage reads one message. $1 id.
	SelectMessage string

	// SelectMessagesByEnvelope reads an envelope's messages, oldest first.
	// $1 envelope id, $2 template id.
	SelectMessagesByEnvelope string

	// InsertEnvelope inserts an envelope unless its id exists, returning it.
	// Named arguments: @id, @template_id, @rendered_body, @recipients (those
	// kept), @count, @effective_cap, @requested_by (or NULL), @status,
	// @refused_reason (or NULL), @digest of the whole list (or NULL),
	// @schedule_in, and the requested @scheduled_at, @priority and
	// @max_attempts, each NULL when left to the default.
	InsertEnvelope string

	// SelectEnvelope reads one envelope. $1 id.
	SelectEnvelope string

	// ListMessages reads messages newest first, one statement per filter;
	// see MessageFilter for their parameters.
	ListMessages map[MessageFilter]string

	// ListEnvelopes reads envelopes newest first, in (requested_at, id)
	// order. $1 limit.
	ListEnvelopes string

	// ListEnvelopesAfter is ListEnvelopes for the envelopes older than a
	// cursor's. $1 limit, $2 the cursor's requested_at, $3 its id.
	ListEnvelopesAfter string

	// ListEnvelopesByStatus reads the envelopes with one status, newest
	// first. It is a statement apart from ListEnvelopes so that each has a
	// plan that uses its index. $1 status, $2 limit.
	ListEnvelopesByStatus string

	// ListEnvelopesByStatusAfter is ListEnvelopesByStatus for the envelopes
	// older than a cursor's. $1 status, $2 limit, $3 the cursor's
	// requested_at, $4 its id.
	ListEnvelopesByStatusAfter string

	// InsertAuditEvent stores one audit event. $1 id, $2 action, $3 actor or
	// NULL, $4 metadata as JSON text, $5 occurred_at. The metadata goes as
	// text, which every pgx query mode can send: one that does not ask the
	// server for parameter types (QueryExecModeExec, used behind PgBouncer)
	// cannot tell a map's SQL type.
	InsertAuditEvent string

	// ListAuditEvents reads audit events newest first. $1 action or NULL for
	// all, $2 limit.
	ListAuditEvents string

	// LockMessage reads one message and locks it until the transaction ends,
	// so that cancels of the same message take turns. $1 id.
	LockMessage string

	// SelectMessageEnvelopeID reads the envelope id of one message, NULL when
	// it has none. $1 id.
	SelectMessageEnvelopeID string

	// ClaimMessage claims a message for one delivery attempt and returns it:
	// status delivering, the attempt's claim id, and a claim that runs out
	// after the given number of seconds. It claims a pending or failed
	// message, one whose claim ran out (its worker died) unless a cancel was
	// requested, and one this same claim id already holds (a retried claim
	// whose first commit was not acknowledged). No row: the message is
	// missing or not claimable. $1 id, $2 claim id, $3 River's attempt
	// number, $4 claim length in seconds.
	ClaimMessage string

	// SelectMessageClaim reads one message with its claim: MessageColumns,
	// then claim_id, whether a cancel was requested, and the seconds the
	// claim has left to run (NULL without a claim, negative once it has run
	// out). $1 id.
	SelectMessageClaim string

	// ReleaseClaim ends a claim at once, if the claim id still holds it, for
	// an attempt that could not record its result, so that the next attempt
	// need not wait for the claim to run out. $1 id, $2 claim id.
	ReleaseClaim string

	// RecordFailed records a failed attempt, if the claim id still holds the
	// message and no cancel was requested. $1 id, $2 claim id, $3 status
	// (failed or discarded), $4 last error.
	RecordFailed string

	// RecordCancelledInFlight ends a message whose in-flight attempt failed
	// after CancelEnvelope asked for it to be cancelled, if the claim id
	// still holds it. $1 id, $2 claim id, $3 last error.
	RecordCancelledInFlight string

	// MarkUnconfirmed ends a message whose claim ran out with a cancel
	// requested: its last attempt may have delivered it, and it must not be
	// attempted again. $1 id. It returns the last_error it wrote.
	MarkUnconfirmed string

	// CancelMessage cancels one message if it is still undelivered,
	// returning its id, conversation_id, template_id, bulk_envelope_id,
	// attempts and last_error, then its job id. $1 id.
	CancelMessage string

	// CancelEnvelopeMessages cancels an envelope's undelivered messages and
	// asks for the cancel of those in flight, in one statement, and returns
	// of each message it cancelled what CancelMessage does. One statement,
	// so that a message cannot slip between the two: UPDATE locks each row
	// it matched and checks it again as last committed, so a message in
	// flight whose failed attempt was recorded meanwhile is cancelled, and
	// one claimed meanwhile is asked to be. $1 envelope id, $2 template id.
	CancelEnvelopeMessages string

	// LockEnvelope reads one envelope and locks it until the transaction
	// ends, so that cancels touching one envelope take turns. $1 id.
	LockEnvelope string

	// MarkEnvelopeCancelledIfAllCancelled sets a submitted envelope's status
	// to cancelled when none of its messages is left uncancelled. $1 id.
	MarkEnvelopeCancelledIfAllCancelled string

	// EnvelopeProgress counts an envelope's messages by status; no row means
	// no such envelope. $1 id.
	EnvelopeProgress string

	// ReconcileMessages looks at up to $1 messages awaiting a result, with
	// ids after $2, and settles those whose River job ended or is gone
	// without recording a result. A pending or failed message becomes
	// cancelled (its job was cancelled) or discarded (its job was discarded
	// or deleted). A delivering message becomes unconfirmed: the attempt
	// that claimed it may have delivered it. Rows locked by a running
	// statement are skipped until a later run. It returns one row per
	// message settled, or a single row when none was: how many it looked
	// at, the last id it looked at (the next batch's $2), then the settled
	// message's id, conversation_id, template_id, bulk_envelope_id,
	// attempts and last_error, its new status and its job's state (NULL
	// for a job gone), all NULL in the single row.
	ReconcileMessages string

	// PruneMessages looks at up to $3 messages with ids after $1 and before
	// $2, and deletes those that are final, last updated before $4, and,
	// when sent or unconfirmed, past the dedup window of $5 seconds (a
	// negative window does not hold them). It returns how many it looked at,
	// the last id it looked at (the next batch's $1), and how many it
	// deleted.
	PruneMessages string

	// PruneEnvelopes looks at up to $4 envelopes requested before $1 and
	// after ($2, $3) in (requested_at, id) order, and deletes the refused
	// ones and those with no message left. It returns how many it looked
	// at, the last requested_at and id it looked at, and how many it
	// deleted.
	PruneEnvelopes string

	// PruneAuditEvents deletes up to $2 of the oldest audit events that
	// occurred before $1.
	PruneAuditEvents string

	// CountAwaitingByStatus counts the messages awaiting a result: pending,
	// delivering and failed, in that order. It reads only the rows of the
	// awaiting_result index.
	CountAwaitingByStatus string

	// SchemaState reads the newest applied library version and the River
	// schema Migrate recorded (NULL if none).
	SchemaState string

	// RiverJobs are the statements that write River's tables.
	RiverJobs

	// RateLimits are the statements of the rate limits shared by every
	// process.
	RateLimits
}

// New returns the queries for the library's schema and River's schema, both
// validated by the caller.
func New(schema, riverSchema string) *Queries {
	s := pgx.Identifier{schema}.Sanitize()
	rs := pgx.Identifier{riverSchema}.Sanitize()
	r := strings.NewReplacer("{s}", s, "{rs}", rs, "{nil}", NilEnvelopeKey,
		"{mcols}", MessageColumns, "{ecols}", EnvelopeColumns,
		"{undelivered}", inList(UndeliveredStatuses), "{keyfree}", inList(Without(Statuses, LiveStatuses)))
	listMessagesByFilter := make(map[MessageFilter]string)
	for _, f := range AllMessageFilters() {
		listMessagesByFilter[f] = listMessages(r, f)
	}
	return &Queries{
		RiverJobs:    newRiverJobs(r),
		RateLimits:   newRateLimits(r),
		ListMessages: listMessagesByFilter,

		PruneMessages: r.Replace(`
WITH batch AS (
	SELECT id FROM {s}.messages
	WHERE id > $1 AND id < $2
	ORDER BY id
	LIMIT $3
), gone AS (
	DELETE FROM {s}.messages m
	WHERE m.id = ANY (ARRAY(SELECT id FROM batch))
		AND NOT m.awaiting_result
		AND m.updated_at < $4
		AND (m.status IN {keyfree}
			OR $5::float8 < 0
			OR coalesce(m.sent_at, m.updated_at) <= now() - make_interval(secs => $5::float8))
	RETURNING 1
)
SELECT (SELECT count(*) FROM batch), (SELECT id FROM batch ORDER BY id DESC LIMIT 1), (SELECT count(*) FROM gone)`),

		PruneEnvelopes: r.Replace(`
WITH batch AS (
	SELECT id, requested_at FROM {s}.bulk_envelopes
	WHERE requested_at < $1 AND (requested_at, id) > ($2, $3)
	ORDER BY requested_at, id
	LIMIT $4
), gone AS (
	DELETE FROM {s}.bulk_envelopes e
	WHERE e.id = ANY (ARRAY(SELECT id FROM batch))
		AND (e.status = 'refused_cap_exceeded'
			OR NOT EXISTS (SELECT 1 FROM {s}.messages m WHERE m.bulk_envelope_id = e.id))
	RETURNING 1
), last AS (
	SELECT requested_at, id FROM batch ORDER BY requested_at DESC, id DESC LIMIT 1
)
SELECT (SELECT count(*) FROM batch), (SELECT requested_at FROM last), (SELECT id FROM last), (SELECT count(*) FROM gone)`),

		PruneAuditEvents: r.Replace(`
DELETE FROM {s}.audit_events
WHERE id = ANY (ARRAY(
	SELECT id FROM {s}.audit_events
	WHERE occurred_at < $1
	ORDER BY occurred_at
	LIMIT $2))`),

		CountAwaitingByStatus: r.Replace(`
SELECT ` + countByStatus(AwaitingStatuses, "*", "") + `
FROM {s}.messages
WHERE awaiting_result`),

		SchemaState: r.Replace(`
SELECT (SELECT coalesce(max(version), 0) FROM {s}.outbound_migration),
	(SELECT river_schema FROM {s}.installation)`),

		InsertMessages: r.Replace(`
INSERT INTO {s}.messages (id, conversation_id, job_id, template_id, content, bulk_envelope_id, metadata, scheduled_at)
SELECT u.id, u.conversation_id, u.job_id, $4, $5, $6,
	jsonb_build_object('template_id', $4::text, 'status', 'pending', 'bulk_envelope_id', $6::uuid),
	coalesce($7::timestamptz, now())
FROM unnest($1::uuid[], $2::bigint[], $3::bigint[]) WITH ORDINALITY AS u(id, conversation_id, job_id, ord)
ORDER BY u.ord
ON CONFLICT DO NOTHING
RETURNING id, created_at, scheduled_at`),

		// Walks the dedup index, whose predicate is holds_dedup_key.
		ReleaseExpiredDedupKeys: r.Replace(`
UPDATE {s}.messages
SET dedup_key_released_at = now(), updated_at = now()
WHERE conversation_id = ANY($1::bigint[])
	AND template_id = $2
	AND coalesce(bulk_envelope_id, {nil}) = coalesce($3::uuid, {nil})
	AND holds_dedup_key
	AND ((status = 'sent' AND sent_at <= now() - make_interval(secs => $4::float8))
		OR (status = 'unconfirmed' AND updated_at <= now() - make_interval(secs => $4::float8)))
RETURNING conversation_id`),

		SelectLiveMessagesByKey: r.Replace(`
SELECT {mcols} FROM {s}.messages
WHERE conversation_id = ANY($1::bigint[])
	AND template_id = $2
	AND coalesce(bulk_envelope_id, {nil}) = coalesce($3::uuid, {nil})
	AND holds_dedup_key`),

		SelectMessage: r.Replace(`SELECT {mcols} FROM {s}.messages WHERE id = $1`),

		SelectMessagesByEnvelope: r.Replace(`
SELECT {mcols} FROM {s}.messages
WHERE bulk_envelope_id = $1 AND template_id = $2
ORDER BY created_at, id`),

		InsertEnvelope: r.Replace(`
INSERT INTO {s}.bulk_envelopes
	(id, template_id, rendered_body, recipient_conversation_ids, count, effective_cap, requested_by, status, refused_reason, recipients_digest,
	 schedule_in, scheduled_at, priority, max_attempts)
VALUES (@id, @template_id, @rendered_body, @recipients::bigint[], @count, @effective_cap, @requested_by, @status,
	@refused_reason, @digest, @schedule_in, @scheduled_at, @priority, @max_attempts)
ON CONFLICT (id) DO NOTHING
RETURNING {ecols}`),

		SelectEnvelope: r.Replace(`SELECT {ecols} FROM {s}.bulk_envelopes WHERE id = $1`),

		ListEnvelopes: r.Replace(`
SELECT {ecols} FROM {s}.bulk_envelopes
ORDER BY requested_at DESC, id DESC
LIMIT $1`),

		ListEnvelopesAfter: r.Replace(`
SELECT {ecols} FROM {s}.bulk_envelopes
WHERE (requested_at, id) < ($2, $3)
ORDER BY requested_at DESC, id DESC
LIMIT $1`),

		ListEnvelopesByStatus: r.Replace(`
SELECT {ecols} FROM {s}.bulk_envelopes
WHERE status = $1
ORDER BY requested_at DESC, id DESC
LIMIT $2`),

		ListEnvelopesByStatusAfter: r.Replace(`
SELECT {ecols} FROM {s}.bulk_envelopes
WHERE status = $1 AND (requested_at, id) < ($3, $4)
ORDER BY requested_at DESC, id DESC
LIMIT $2`),

		InsertAuditEvent: r.Replace(`
INSERT INTO {s}.audit_events (id, action, actor, metadata, occurred_at) VALUES ($1, $2, $3, $4::text::jsonb, $5)`),

		LockMessage: r.Replace(`SELECT {mcols} FROM {s}.messages WHERE id = $1 FOR UPDATE`),

		SelectMessageEnvelopeID: r.Replace(`SELECT bulk_envelope_id FROM {s}.messages WHERE id = $1`),

		ClaimMessage: r.Replace(`
UPDATE {s}.messages
SET ` + claimSet("$2", "$3", "$4") + `
WHERE id = $1 AND ` + claimable("$2") + `
RETURNING {mcols}`),

		SelectMessageClaim: r.Replace(`
SELECT {mcols}, claim_id, cancel_requested_at IS NOT NULL, extract(epoch FROM claimed_until - now())::float8
FROM {s}.messages WHERE id = $1`),

		ReleaseClaim: r.Replace(`
UPDATE {s}.messages SET claimed_until = now(), updated_at = now()
WHERE id = $1 AND claim_id = $2 AND status = 'delivering'`),

		RecordFailed: r.Replace(`
UPDATE {s}.messages
SET ` + setStatus(`$3`) + `, last_error = $4, claimed_until = NULL, updated_at = now()
WHERE id = $1 AND claim_id = $2 AND status = 'delivering' AND cancel_requested_at IS NULL`),

		RecordCancelledInFlight: r.Replace(`
UPDATE {s}.messages
SET ` + setStatus(`'cancelled'`) + `, last_error = $3, claimed_until = NULL, updated_at = now()
WHERE id = $1 AND claim_id = $2 AND status = 'delivering'`),

		MarkUnconfirmed: r.Replace(`
UPDATE {s}.messages
SET ` + setStatus(`'unconfirmed'`) + `, claimed_until = NULL,
	last_error = coalesce(last_error || '; ', '') ||
		'cancel requested while an attempt was in flight, and that attempt never recorded a result: the notifier may have delivered it',
	updated_at = now()
WHERE id = $1 AND status = 'delivering' AND claimed_until <= now() AND cancel_requested_at IS NOT NULL
RETURNING last_error`),

		CancelMessage: r.Replace(`
UPDATE {s}.messages
SET ` + setStatus(`'cancelled'`) + `, updated_at = now()
WHERE id = $1 AND status IN {undelivered}
RETURNING ` + settledColumns("") + `, job_id`),

		// UPDATE waits for a row that a claim or a record has locked, then
		// checks the WHERE again on the row as committed and computes the SET
		// from it: a message just sent is skipped, one whose attempt just
		// failed is cancelled, one just claimed gets its cancel asked for.
		CancelEnvelopeMessages: r.Replace(`
WITH changed AS (
	UPDATE {s}.messages
	SET ` + setStatus(`CASE WHEN status IN {undelivered} THEN 'cancelled' ELSE status END`) + `,
		cancel_requested_at = CASE WHEN status = 'delivering' THEN now() ELSE cancel_requested_at END,
		updated_at = now()
	WHERE bulk_envelope_id = $1 AND template_id = $2
		AND (status IN {undelivered} OR (status = 'delivering' AND cancel_requested_at IS NULL))
	RETURNING ` + settledColumns("") + `, job_id, status
)
SELECT ` + settledColumns("") + `, job_id FROM changed WHERE status = 'cancelled'`),

		LockEnvelope: r.Replace(`SELECT {ecols} FROM {s}.bulk_envelopes WHERE id = $1 FOR UPDATE`),

		MarkEnvelopeCancelledIfAllCancelled: r.Replace(`
UPDATE {s}.bulk_envelopes e
SET status = 'cancelled', updated_at = now()
WHERE e.id = $1 AND e.status = 'submitted' AND NOT EXISTS (
	SELECT 1 FROM {s}.messages m
	WHERE m.bulk_envelope_id = e.id AND m.template_id = e.template_id AND m.status <> 'cancelled')`),

		EnvelopeProgress: r.Replace(`
SELECT
	` + countByStatus(Statuses, "m.id", "m.") + `
FROM {s}.bulk_envelopes e
LEFT JOIN {s}.messages m ON m.bulk_envelope_id = e.id AND m.template_id = e.template_id
WHERE e.id = $1
GROUP BY e.id`),

		// A finalized job has no attempt running: River finalizes a job when
		// its attempt returns, or when its rescuer gives up on one older than
		// the claim's length. A job that is gone says nothing, so its
		// message's claim must have run out too. The batch walks the
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
	LEFT JOIN {rs}.river_job j ON j.id = m.job_id
	WHERE m.id = ANY (ARRAY(SELECT id FROM batch))
		AND ((m.status IN {undelivered} AND (j.id IS NULL OR j.state IN ('cancelled', 'discarded')))
			OR (m.status = 'delivering' AND (j.state IN ('cancelled', 'completed', 'discarded')
				OR (j.id IS NULL AND m.claimed_until <= now()))))
	FOR UPDATE OF m SKIP LOCKED
), settled AS (
	UPDATE {s}.messages m
	SET ` + setStatus(`stale.status`) + `,
		last_error = coalesce(m.last_error || '; ', '') || stale.reason,
		claimed_until = NULL,
		updated_at = now()
	FROM stale
	WHERE m.id = stale.id
	RETURNING ` + settledColumns("m.") + `, m.status, stale.job_state
)
SELECT (SELECT count(*) FROM batch), (SELECT id FROM batch ORDER BY id DESC LIMIT 1), settled.*
FROM (VALUES (1)) AS one LEFT JOIN settled ON true`),

		ListAuditEvents: r.Replace(`
SELECT id, action, actor, metadata, occurred_at FROM {s}.audit_events
WHERE $1::text IS NULL OR action = $1
ORDER BY occurred_at DESC, id DESC
LIMIT $2`),
	}
}
