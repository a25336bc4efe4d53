package sqltext

import "strings"

// Messages are the statements of the messages table: written by a trigger, a cancel and Prune, and read by the reads and the status gauge.
type Messages struct {
	// InsertMessages inserts one pending message per (id, conversation id,
	// job id) triple, with the recipient's own content and time (a time
	// already past meaning now) where it has them and the call's otherwise,
	// and its own data laid over the call's (jsonb's ||, key by key),
	// skipping any whose dedup key is taken. It returns the id, created_at
	// and scheduled_at of each inserted row: every other column is a
	// parameter or a column default, so the caller knows it already. Its
	// arguments are InsertMessagesArgs. The metadata it builds is the
	// library's newMessageMetadata, which a test checks by reading the rows
	// back.
	InsertMessages Named

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

	// SelectMessagePreview reads one message with only the first $2
	// characters of its content (MessageColumnsWithContentPrefix). $1 id.
	SelectMessagePreview string

	// SelectMessagesByEnvelope reads an envelope's messages, oldest first.
	// $1 envelope id, $2 template id.
	SelectMessagesByEnvelope string

	// LockMessage reads one message without its content and locks it until
	// the transaction ends, so that cancels of the same message take turns.
	// $1 id.
	LockMessage string

	// SelectMessageEnvelopeID reads the envelope id of one message, NULL when
	// it has none. $1 id.
	SelectMessageEnvelopeID string

	// CancelMessage cancels one message if it is still undelivered, as
	// cancelled by an actor, returning its id, conversation_id, template_id,
	// bulk_envelope_id, attempts and last_error, then its job id. $1 id,
	// $2 actor or NULL.
	CancelMessage string

	// CancelEnvelopeMessages cancels an envelope's undelivered messages and
	// asks for the cancel of those in flight, in one statement, and returns
	// of each message it cancelled what CancelMessage does. One statement,
	// so that a message cannot slip between the two: UPDATE locks each row
	// it matched and checks it again as last committed, so a message in
	// flight whose failed attempt was recorded meanwhile is cancelled, and
	// one claimed meanwhile is asked to be. The actor is kept as who
	// cancelled, or asked for the cancel of, each message. $1 envelope id,
	// $2 template id, $3 actor or NULL.
	CancelEnvelopeMessages string

	// PruneMessages looks at up to $3 messages with ids after $1 and before
	// $2, and deletes those that are final, last updated before $4, and,
	// when sent or unconfirmed, past the dedup window of $5 seconds (a
	// negative window does not hold them). It returns how many it looked at,
	// the last id it looked at (the next batch's $1), and how many it
	// deleted.
	PruneMessages string

	// CountAwaitingByStatus counts the messages awaiting a result: pending,
	// delivering and failed, in that order; then the age in seconds of the
	// oldest pending message that is due (scheduled for now or earlier) and
	// not held by a rate limit, 0 when none is; then how many are held by a
	// rate limit. It reads only the rows of the awaiting_result index.
	CountAwaitingByStatus string

	// ListMessages reads messages newest first, one statement per filter;
	// see MessageFilter for their parameters.
	ListMessages map[MessageFilter]string
}

// newMessages fills Messages with r, which replaces the placeholders of New.
func newMessages(r *strings.Replacer) Messages {
	listMessagesByFilter := make(map[MessageFilter]string)
	for _, f := range AllMessageFilters() {
		listMessagesByFilter[f] = listMessages(r, f)
	}
	return Messages{
		InsertMessages: named(r.Replace(`
INSERT INTO {s}.messages (id, conversation_id, job_id, template_id, content, bulk_envelope_id, metadata, scheduled_at, data, rendered, envelope_ordinal)
SELECT u.id, u.conversation_id, u.job_id, @template_id, coalesce(u.content, @content), @bulk_envelope_id,
	jsonb_build_object('template_id', @template_id::text, 'status', 'pending', 'bulk_envelope_id', @bulk_envelope_id::uuid),
	CASE WHEN u.scheduled_at IS NULL THEN coalesce(@scheduled_at::timestamptz, now()) ELSE greatest(u.scheduled_at, now()) END,
	CASE WHEN u.data IS NULL THEN @data::jsonb ELSE coalesce(@data::jsonb, '{}') || u.data::jsonb END, @rendered, u.ord - 1
FROM unnest(@ids::uuid[], @conversation_ids::bigint[], @job_ids::bigint[], @contents::text[], @each_data::text[], @scheduled_ats::timestamptz[])
	WITH ORDINALITY AS u(id, conversation_id, job_id, content, data, scheduled_at, ord)
ORDER BY u.ord
ON CONFLICT DO NOTHING
RETURNING id, created_at, scheduled_at`), InsertMessagesArgs{}),

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

		SelectMessagePreview: r.Replace(`SELECT ` + MessageColumnsWithContentPrefix("$2::int") + ` FROM {s}.messages WHERE id = $1`),

		SelectMessagesByEnvelope: r.Replace(`
SELECT {mcols} FROM {s}.messages
WHERE bulk_envelope_id = $1 AND template_id = $2
ORDER BY created_at, id`),

		LockMessage: r.Replace(`SELECT {mcols_no_content} FROM {s}.messages WHERE id = $1 FOR UPDATE`),

		SelectMessageEnvelopeID: r.Replace(`SELECT bulk_envelope_id FROM {s}.messages WHERE id = $1`),

		CancelMessage: r.Replace(`
UPDATE {s}.messages
SET ` + setStatus(`'cancelled'`) + `, cancelled_by = $2, cancelled_at = now(), updated_at = now()
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
		cancel_requested_by = CASE WHEN status = 'delivering' THEN $3 ELSE cancel_requested_by END,
		cancelled_by = CASE WHEN status IN {undelivered} THEN $3 ELSE cancelled_by END,
		cancelled_at = CASE WHEN status IN {undelivered} THEN now() ELSE cancelled_at END,
		updated_at = now()
	WHERE bulk_envelope_id = $1 AND template_id = $2
		AND (status IN {undelivered} OR (status = 'delivering' AND cancel_requested_at IS NULL))
	RETURNING ` + settledColumns("") + `, job_id, status
)
SELECT ` + settledColumns("") + `, job_id FROM changed WHERE status = 'cancelled'`),

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

		CountAwaitingByStatus: r.Replace(`
SELECT ` + countByStatus(AwaitingStatuses, "*", "") + `,
	coalesce(extract(epoch FROM now() - min(scheduled_at) FILTER (WHERE status = 'pending' AND scheduled_at <= now() AND NOT ` + heldByRateLimit + `)), 0)::float8,
	count(*) FILTER (WHERE status IN {undelivered} AND ` + heldByRateLimit + `)
FROM {s}.messages
WHERE awaiting_result`),

		ListMessages: listMessagesByFilter,
	}
}
