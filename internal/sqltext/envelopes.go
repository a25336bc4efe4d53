package sqltext

import "strings"

// Envelopes are the statements of the bulk_envelopes table.
type Envelopes struct {
	// InsertEnvelope inserts an envelope unless its id exists, returning it.
	// Its arguments are InsertEnvelopeArgs.
	InsertEnvelope Named

	// SelectEnvelope reads one envelope. $1 id.
	SelectEnvelope string

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

	// LockEnvelope reads one envelope and locks it until the transaction
	// ends, so that cancels touching one envelope take turns. $1 id.
	LockEnvelope string

	// MarkEnvelopeCancelledIfAllCancelled sets a submitted envelope's status
	// to cancelled when none of its messages is left uncancelled. $1 id.
	MarkEnvelopeCancelledIfAllCancelled string

	// EnvelopeProgress counts an envelope's messages by status; no row means
	// no such envelope. $1 id.
	EnvelopeProgress string

	// PruneEnvelopes looks at up to $4 envelopes requested before $1 and
	// after ($2, $3) in (requested_at, id) order, and deletes the refused
	// ones and those with no message left. It returns how many it looked
	// at, the last requested_at and id it looked at, and how many it
	// deleted.
	PruneEnvelopes string
}

// newEnvelopes fills Envelopes with r, which replaces the placeholders of New.
func newEnvelopes(r *strings.Replacer) Envelopes {
	return Envelopes{
		InsertEnvelope: named(r.Replace(`
INSERT INTO {s}.bulk_envelopes
	(id, template_id, rendered_body, recipient_conversation_ids, count, effective_cap, requested_by, status, refused_reason, recipients_digest,
	 schedule_in, scheduled_at, priority, max_attempts)
VALUES (@id, @template_id, @rendered_body, @recipients::bigint[], @count, @effective_cap, @requested_by, @status,
	@refused_reason, @digest, @schedule_in, @scheduled_at, @priority, @max_attempts)
ON CONFLICT (id) DO NOTHING
RETURNING {ecols}`), InsertEnvelopeArgs{}),

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
	}
}
