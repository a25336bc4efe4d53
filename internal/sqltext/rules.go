package sqltext

import (
	"slices"
	"strings"
)

// Statuses are the values of messages.status, in lifecycle order: the order
// in which EnvelopeProgress returns its counts.
var Statuses = []string{"pending", "delivering", "sent", "failed", "unconfirmed", "discarded", "cancelled"}

// LiveStatuses are the statuses that hold a message's dedup key, until the
// key is released (dedup_key_released_at): the rule of the holds_dedup_key
// column, which is the dedup index's predicate. The other statuses free the
// key.
var LiveStatuses = []string{"pending", "delivering", "sent", "failed", "unconfirmed"}

// AwaitingStatuses are the statuses of messages whose delivery has not ended:
// the rule of the awaiting_result column. The other statuses are final, the
// rule of the final_status column.
var AwaitingStatuses = []string{"pending", "delivering", "failed"}

// UndeliveredStatuses are the statuses of messages that no attempt holds and
// none has delivered: an attempt may claim them, and a cancel may cancel
// them.
var UndeliveredStatuses = []string{"pending", "failed"}

// DeliveryJobKind is the kind of the River jobs that deliver messages, as
// outbound.DeliveryJobKind names it.
const DeliveryJobKind = "outbound_delivery"

// isDeliveryJobOf is the rule by which a River job is a message's delivery
// job: a row of river_job, aliased job, whose id the message recorded, of
// the delivery kind, whose args name the message, given as text. The id
// alone is not enough: a message written while Config.RiverSchema named
// another schema recorded an id that, in this one, may be a host's job.
func isDeliveryJobOf(job, jobID, messageIDText string) string {
	return job + ".id = " + jobID + " AND " + job + ".kind = '" + DeliveryJobKind + "' AND " +
		job + ".args->>'message_id' = " + messageIDText
}

// NilEnvelopeKey stands for a missing envelope id in the dedup key, as the
// dedup index's coalesce(bulk_envelope_id, ...) does.
const NilEnvelopeKey = `'00000000-0000-0000-0000-000000000000'::uuid`

// MessageColumnNames are the columns every message read selects, in the
// order the library's scan reads them.
var MessageColumnNames = []string{"id", "conversation_id", "role", "template_id", "content", "status", "bulk_envelope_id",
	"metadata", "job_id", "scheduled_at", "attempts", "last_error", "sent_at", "created_at", "updated_at", "rate_wait_until",
	"cancelled_by", "cancelled_at", "data", "rendered"}

// TemplateReferencePrefix starts the content of a message triggered without
// a body: the original library's template reference, kept for its
// consumers, followed by the template id.
const TemplateReferencePrefix = "Outbound message using template: "

// renderedColumn is how reads select rendered: rows written before
// migration 011 have NULL there, and were rendered unless their content is
// the template reference.
const renderedColumn = "coalesce(rendered, content <> '" + TemplateReferencePrefix + "' || template_id)"

// EnvelopeColumnNames are the columns every envelope read selects, in the
// order the library's scan reads them.
var EnvelopeColumnNames = []string{"id", "template_id", "rendered_body", "recipient_conversation_ids", "count",
	"effective_cap", "requested_by", "requested_at", "status", "refused_reason", "created_at", "updated_at",
	"recipients_digest", "schedule_in", "scheduled_at", "priority", "max_attempts", "cancelled_by", "cancelled_at",
	"data", "data_digest", "recipient_digests"}

// settledColumnNames are what a statement that ends messages returns of
// each, in this order, for the event of its final outcome.
var settledColumnNames = []string{"id", "conversation_id", "template_id", "bulk_envelope_id", "attempts", "last_error"}

// settledColumns is settledColumnNames as a list of alias's columns.
func settledColumns(alias string) string {
	cols := make([]string, len(settledColumnNames))
	for i, name := range settledColumnNames {
		cols[i] = alias + name
	}
	return strings.Join(cols, ", ")
}

// MessageColumns is MessageColumnNames as a select list, followed by the
// content's length in bytes. PostgreSQL reads that length from the stored
// value's header, without reading the content itself.
var MessageColumns = messageColumns("content")

// MessageColumnsWithoutContent is MessageColumns with NULL in place of the
// content, for reads that do not need it: a body may be MaxContentBytes
// long, and a read that carries none stays small however long bodies are.
var MessageColumnsWithoutContent = messageColumns("NULL::text")

// MessageColumnsWithContentPrefix is MessageColumns with only the first
// characters of the content, as many as the parameter named by param.
func MessageColumnsWithContentPrefix(param string) string {
	return messageColumns("left(content, " + param + ")")
}

// messageColumns renders MessageColumnNames as a select list, with the
// expression content in place of the content column, then the content's
// length.
func messageColumns(content string) string {
	cols := slices.Clone(MessageColumnNames)
	cols[slices.Index(cols, "content")] = content
	cols[slices.Index(cols, "rendered")] = renderedColumn
	return strings.Join(cols, ", ") + ", octet_length(content)"
}

// EnvelopeColumns is EnvelopeColumnNames as a select list, followed by the
// body's length in bytes, as MessageColumns is.
var EnvelopeColumns = envelopeColumns("rendered_body")

// EnvelopeColumnsWithoutBody is EnvelopeColumns with NULL in place of the
// body, as MessageColumnsWithoutContent is.
var EnvelopeColumnsWithoutBody = envelopeColumns("NULL::text")

// EnvelopeColumnsWithBodyPrefix is EnvelopeColumns with only the first
// characters of the body, as many as the parameter named by param.
func EnvelopeColumnsWithBodyPrefix(param string) string {
	return envelopeColumns("left(rendered_body, " + param + ")")
}

// envelopeColumns renders EnvelopeColumnNames as a select list, with the
// expression body in place of the body column, then the body's length.
func envelopeColumns(body string) string {
	cols := slices.Clone(EnvelopeColumnNames)
	cols[slices.Index(cols, "rendered_body")] = body
	return strings.Join(cols, ", ") + ", octet_length(rendered_body)"
}

// Without returns the statuses of all that are not in some, in all's order.
func Without(all, some []string) []string {
	var out []string
	for _, s := range all {
		if !slices.Contains(some, s) {
			out = append(out, s)
		}
	}
	return out
}

// inList renders statuses as an SQL list of literals, ('a', 'b'). The
// statuses are this file's constants, never input.
func inList(statuses []string) string {
	return "('" + strings.Join(statuses, "', '") + "')"
}

// heldByRateLimit is the condition on an undelivered message that its key's
// limit, or a Notifier's RateLimited pause, holds it back: parked, released
// a slot and not yet claimed, or waiting out a pause.
const heldByRateLimit = `(rate_parked_at IS NOT NULL OR rate_released_at IS NOT NULL OR coalesce(rate_wait_until > now(), false))`

// setStatus is the SET clause that gives a message a new status: the column,
// and the copy of it that metadata keeps for consumers of the original
// library. value is an SQL expression of type text. A new status ends any
// wait for the message's rate limit.
func setStatus(value string) string {
	return statusOnly(value) + ", rate_wait_until = NULL, rate_parked_at = NULL, rate_released_at = NULL"
}

// statusOnly sets a message's status, as setStatus does, and leaves its
// wait for its rate limit as it is: for the statements that make it wait.
func statusOnly(value string) string {
	return "status = " + value + ", metadata = jsonb_set(metadata, '{status}', to_jsonb((" + value + ")::text))"
}

// countByStatus renders one count column per status, in order: the count
// of countOf over the rows whose status column, qualified by qualifier
// (empty or "alias."), has that status.
func countByStatus(statuses []string, countOf, qualifier string) string {
	parts := make([]string, len(statuses))
	for i, s := range statuses {
		parts[i] = "count(" + countOf + ") FILTER (WHERE " + qualifier + "status = '" + s + "')"
	}
	return strings.Join(parts, ",\n\t")
}

// claimSet is the SET clause of a claim: status delivering under the claim id
// claimID, for claimSeconds, counting River's attempt number attempt. A claim
// ends the message's wait for its rate limit.
func claimSet(claimID, attempt, claimSeconds string) string {
	return setStatus(`'delivering'`) + `,
	attempts = CASE WHEN claim_id = ` + claimID + ` THEN attempts ELSE greatest(attempts + 1, ` + attempt + `) END,
	claim_id = ` + claimID + `,
	claimed_until = now() + make_interval(secs => ` + claimSeconds + `::float8),
	updated_at = now()`
}

// claimable is the condition on a message that an attempt with the claim id
// claimID may claim: an undelivered one, one this same claim id already
// holds (a retried claim whose first commit was not acknowledged), and one
// whose claim ran out (its worker died) unless a cancel was requested.
func claimable(claimID string) string {
	return `(
	status IN {undelivered}
	OR (status = 'delivering' AND claim_id = ` + claimID + `)
	OR (status = 'delivering' AND claimed_until <= now() AND cancel_requested_at IS NULL))`
}
