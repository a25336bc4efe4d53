package sqltext

import (
	"strconv"
	"strings"
)

// Envelopes are the statements of the bulk_envelopes table.
type Envelopes struct {
	// InsertEnvelope inserts an envelope unless its id exists, returning it
	// without its body (EnvelopeColumnsWithoutBody), which the caller sent.
	// Its arguments are InsertEnvelopeArgs.
	InsertEnvelope Named

	// SelectEnvelope reads one envelope: EnvelopeColumns, then its outcome
	// (see envelopeOutcome). $1 id.
	SelectEnvelope string

	// SelectEnvelopePreview is SelectEnvelope with only the first $2
	// characters of the body (EnvelopeColumnsWithBodyPrefix). $1 id.
	SelectEnvelopePreview string

	// ListEnvelopes reads envelopes newest first, in (requested_at, id)
	// order, each as SelectEnvelope does, one statement per filter; see
	// EnvelopeFilter for their parameters.
	ListEnvelopes map[EnvelopeFilter]string

	// LockEnvelope reads one envelope without its body and locks it until
	// the transaction ends, so that cancels touching one envelope take
	// turns. $1 id.
	LockEnvelope string

	// MarkEnvelopeCancelledIfAllCancelled sets a submitted envelope's status
	// to cancelled when none of its messages is left uncancelled, and keeps
	// who cancelled it unless a CancelEnvelope already did. $1 id, $2 actor
	// or NULL.
	MarkEnvelopeCancelledIfAllCancelled string

	// MarkEnvelopeCancelRequested is CancelEnvelope's one update of the
	// envelope row: it keeps who cancelled the envelope and when, unless an
	// earlier cancel did, and does what MarkEnvelopeCancelledIfAllCancelled
	// does. A row it would not change is left alone. $1 id, $2 actor or
	// NULL.
	MarkEnvelopeCancelRequested string

	// EnvelopeProgress counts an envelope's messages by status; no row means
	// no such envelope. $1 id.
	EnvelopeProgress string

	// PruneEnvelopes looks at up to $4 envelopes requested before $1 and
	// after ($2, $3) in (requested_at, id) order, and deletes the refused
	// ones and those with no message left, with their rate limit shares
	// (where their messages' places in their keys' fair orders began). It
	// returns how many it looked
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
	 schedule_in, scheduled_at, priority, max_attempts, data, data_digest, recipient_digests)
VALUES (@id, @template_id, @rendered_body, @recipients::bigint[], @count, @effective_cap, @requested_by, @status,
	@refused_reason, @digest, @schedule_in, @scheduled_at, @priority, @max_attempts, @data::jsonb, @data_digest, @recipient_digests::bytea[])
ON CONFLICT (id) DO NOTHING
RETURNING {ecols_no_body}`), InsertEnvelopeArgs{}),

		SelectEnvelope: r.Replace(`SELECT {ecols}, o.outcome FROM {s}.bulk_envelopes e ` + envelopeOutcome + ` WHERE id = $1`),

		ListEnvelopes: listEnvelopesByFilter(r),

		SelectEnvelopePreview: r.Replace(`SELECT ` + EnvelopeColumnsWithBodyPrefix("$2::int") + `, o.outcome FROM {s}.bulk_envelopes e ` + envelopeOutcome + ` WHERE id = $1`),

		LockEnvelope: r.Replace(`SELECT {ecols_no_body} FROM {s}.bulk_envelopes WHERE id = $1 FOR UPDATE`),

		MarkEnvelopeCancelledIfAllCancelled: r.Replace(`
UPDATE {s}.bulk_envelopes e
SET status = 'cancelled', updated_at = now(),
	cancelled_by = CASE WHEN e.cancelled_at IS NULL THEN $2 ELSE e.cancelled_by END,
	cancelled_at = coalesce(e.cancelled_at, now())
WHERE e.id = $1 AND ` + allMessagesCancelled),

		MarkEnvelopeCancelRequested: r.Replace(`
WITH e0 AS (
	SELECT e.id, ` + allMessagesCancelled + ` AS all_cancelled
	FROM {s}.bulk_envelopes e WHERE e.id = $1
)
UPDATE {s}.bulk_envelopes e
SET status = CASE WHEN e0.all_cancelled THEN 'cancelled' ELSE e.status END,
	cancelled_by = CASE WHEN e.cancelled_at IS NULL THEN $2 ELSE e.cancelled_by END,
	cancelled_at = coalesce(e.cancelled_at, now()),
	updated_at = now()
FROM e0
WHERE e.id = e0.id AND (e.cancelled_at IS NULL OR e0.all_cancelled)`),

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
	RETURNING e.id
), shares_gone AS (
	DELETE FROM {s}.rate_limit_shares s WHERE s.bulk_envelope_id IN (SELECT id FROM gone)
), last AS (
	SELECT requested_at, id FROM batch ORDER BY requested_at DESC, id DESC LIMIT 1
)
SELECT (SELECT count(*) FROM batch), (SELECT requested_at FROM last), (SELECT id FROM last), (SELECT count(*) FROM gone)`),
	}
}

// allMessagesCancelled is the condition that envelope e is submitted and none
// of its messages is left uncancelled.
const allMessagesCancelled = `e.status = 'submitted' AND NOT EXISTS (
	SELECT 1 FROM {s}.messages m
	WHERE m.bulk_envelope_id = e.id AND m.template_id = e.template_id AND m.status <> 'cancelled')`

// EnvelopeFilter says which filters a ListEnvelopes statement applies, as
// MessageFilter does for ListMessages. At most one of Status and Outcome is
// set.
type EnvelopeFilter struct {
	Status  bool
	Outcome bool
	// After: only envelopes older than a cursor's.
	After bool
	// Body: read each envelope's body; without it, the statement selects
	// EnvelopeColumnsWithoutBody.
	Body bool
}

// AllEnvelopeFilters lists every EnvelopeFilter.
func AllEnvelopeFilters() []EnvelopeFilter {
	var all []EnvelopeFilter
	for _, by := range []EnvelopeFilter{{}, {Status: true}, {Outcome: true}} {
		for _, after := range []bool{false, true} {
			for _, body := range []bool{false, true} {
				all = append(all, EnvelopeFilter{Status: by.Status, Outcome: by.Outcome, After: after, Body: body})
			}
		}
	}
	return all
}

// listEnvelopesByFilter builds the statement of each filter. Its parameters
// are $1 the limit, then the status or the outcome when filtered by one,
// then the cursor's requested_at and id. A status has its index; an outcome
// is derived for each envelope in list order until the page is full.
func listEnvelopesByFilter(r *strings.Replacer) map[EnvelopeFilter]string {
	byFilter := make(map[EnvelopeFilter]string)
	for _, f := range AllEnvelopeFilters() {
		cols := "{ecols_no_body}"
		if f.Body {
			cols = "{ecols}"
		}
		var where []string
		n := 1
		param := func() string { n++; return "$" + strconv.Itoa(n) }
		switch {
		case f.Status:
			where = append(where, "status = "+param())
		case f.Outcome:
			where = append(where, "o.outcome = "+param())
		}
		if f.After {
			where = append(where, "(requested_at, id) < ("+param()+", "+param()+")")
		}
		sql := "SELECT " + cols + ", o.outcome FROM {s}.bulk_envelopes e " + envelopeOutcome
		if len(where) > 0 {
			sql += "\nWHERE " + strings.Join(where, " AND ")
		}
		byFilter[f] = r.Replace(sql + "\nORDER BY requested_at DESC, id DESC\nLIMIT $1")
	}
	return byFilter
}

// envelopeOutcome joins each envelope e to its outcome, o.outcome, derived
// from its messages through the messages_bulk_envelope_id index: refused for
// a refused envelope; in_progress while any message awaits a result; then,
// once every message is final, completed when all were sent,
// completed_with_failures when some were not and none was cancelled,
// cancelled when all were, and partly_cancelled when some were.
const envelopeOutcome = `CROSS JOIN LATERAL (
	SELECT CASE
		WHEN e.status = 'refused_cap_exceeded' THEN 'refused'
		WHEN count(*) FILTER (WHERE m.awaiting_result) > 0 THEN 'in_progress'
		WHEN count(*) FILTER (WHERE m.status = 'cancelled') = 0 THEN
			CASE WHEN count(*) FILTER (WHERE m.status <> 'sent') = 0 THEN 'completed' ELSE 'completed_with_failures' END
		WHEN count(*) FILTER (WHERE m.status <> 'cancelled') = 0 THEN 'cancelled'
		ELSE 'partly_cancelled'
	END AS outcome
	FROM {s}.messages m
	WHERE m.bulk_envelope_id = e.id AND m.template_id = e.template_id
) o`
