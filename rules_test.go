package outbound_test

import (
	"encoding/hex"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/cairnloop/outbound"
	"github.com/cairnloop/outbound/internal/sqltext"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// statusLiteralRE finds the status literals in a generated column's or a
// constraint's expression as PostgreSQL prints it back.
var statusLiteralRE = regexp.MustCompile(`'([a-z_]+)'::text`)

// TestRulesMatchSchema checks each rule that internal/sqltext states once in
// Go against what the migrations made of it in the database: the statuses
// behind the generated columns, the dedup index's predicate and key, the
// status constraint, and the column lists the scans read.
func TestRulesMatchSchema(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxT(t)
	messages := table(b.schema, "messages")

	generated := func(t *testing.T, column string) []string {
		t.Helper()
		var expr string
		require.NoError(t, testPool.QueryRow(ctx, `
SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_attrdef d
JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
WHERE d.adrelid = $1::regclass AND a.attname = $2`, messages, column).Scan(&expr))
		return statusLiterals(expr)
	}

	t.Run("LiveStatuses", func(t *testing.T) {
		t.Parallel()
		require.ElementsMatch(t, sqltext.LiveStatuses, generated(t, "holds_dedup_key"))
		// The dedup index reads holds_dedup_key as its predicate, and
		// stands for a missing envelope id as the statements do.
		var def, predicate string
		require.NoError(t, testPool.QueryRow(ctx, `
SELECT pg_get_indexdef(indexrelid), pg_get_expr(indpred, indrelid) FROM pg_index
WHERE indexrelid = $1::regclass`, table(b.schema, "messages_dedup_key_idx")).Scan(&def, &predicate))
		require.Equal(t, "holds_dedup_key", predicate)
		require.Contains(t, def, "COALESCE(bulk_envelope_id, "+sqltext.NilEnvelopeKey+")")
		for _, s := range allStatuses {
			require.Equal(t, slices.Contains(sqltext.LiveStatuses, string(s)), outbound.HoldsDedupKey(s), "status %s", s)
		}
	})

	t.Run("AwaitingAndFinalStatuses", func(t *testing.T) {
		t.Parallel()
		require.ElementsMatch(t, sqltext.AwaitingStatuses, generated(t, "awaiting_result"))
		require.ElementsMatch(t, sqltext.Without(sqltext.Statuses, sqltext.AwaitingStatuses), generated(t, "final_status"))
		for _, s := range allStatuses {
			require.Equal(t, slices.Contains(sqltext.AwaitingStatuses, string(s)), outbound.AwaitingResult(s), "status %s", s)
		}
	})

	t.Run("Statuses", func(t *testing.T) {
		t.Parallel()
		var check string
		require.NoError(t, testPool.QueryRow(ctx, `
SELECT pg_get_constraintdef(oid) FROM pg_constraint
WHERE conrelid = $1::regclass AND contype = 'c' AND pg_get_constraintdef(oid) LIKE '%status%'`, messages).Scan(&check))
		require.ElementsMatch(t, sqltext.Statuses, statusLiterals(check))
		names := make([]string, len(allStatuses))
		for i, s := range allStatuses {
			names[i] = string(s)
		}
		require.Equal(t, sqltext.Statuses, names, "the MessageStatus constants, in lifecycle order")
		require.Subset(t, sqltext.Statuses, sqltext.UndeliveredStatuses)
		require.Subset(t, sqltext.AwaitingStatuses, sqltext.UndeliveredStatuses)
	})

	// Every column of a message is set to a value no other column of its
	// type has, and scanMessage must put each where the row's JSON says.
	t.Run("MessageColumns", func(t *testing.T) {
		t.Parallel()
		envelope := uuid.Must(uuid.NewV7())
		res := mustTrigger(ctx, t, b.client, 42, &outbound.TriggerOpts{TemplateID: "tpl", Content: "body", BulkEnvelopeID: envelope, ScheduleIn: time.Hour,
			Data: map[string]any{"phone": "+15550100", "n": 7}})
		_, err := testPool.Exec(ctx, "UPDATE "+messages+` SET status = 'sent', attempts = 3, last_error = 'boom',
			sent_at = now() + interval '1 minute', updated_at = now() + interval '2 minutes' WHERE id = $1`, res.Message.ID)
		require.NoError(t, err)
		var row map[string]any
		require.NoError(t, testPool.QueryRow(ctx, "SELECT to_jsonb(m) FROM "+messages+" m WHERE id = $1", res.Message.ID).Scan(&row))
		for _, c := range sqltext.MessageColumnNames {
			require.Contains(t, row, c)
		}
		got, err := b.client.Message(ctx, res.Message.ID)
		require.NoError(t, err)
		require.Equal(t, row["id"], got.ID.String())
		require.Equal(t, row["conversation_id"], float64(got.ConversationID))
		require.Equal(t, row["role"], got.Role)
		require.Equal(t, row["template_id"], got.TemplateID)
		require.Equal(t, row["content"], got.Content)
		require.Equal(t, row["status"], string(got.Status))
		require.Equal(t, row["bulk_envelope_id"], got.BulkEnvelopeID.String())
		require.Equal(t, row["metadata"], got.Metadata)
		require.Equal(t, row["job_id"], float64(got.JobID))
		requireJSONTime(t, row["scheduled_at"], got.ScheduledAt)
		require.Equal(t, row["attempts"], float64(got.Attempts))
		require.Equal(t, row["last_error"], got.LastError)
		requireJSONTime(t, row["sent_at"], got.SentAt)
		requireJSONTime(t, row["created_at"], got.CreatedAt)
		requireJSONTime(t, row["updated_at"], got.UpdatedAt)
		require.Equal(t, row["data"], got.Data)
		require.Equal(t, row["rendered"], got.Rendered)
		require.Equal(t, true, got.Rendered)

		// The benchmarks' hand-written baseline scans the same list.
		byHand, err := scanMessageByHand(testPool.QueryRow(ctx, "SELECT "+sqltext.MessageColumns+" FROM "+messages+" WHERE id = $1", got.ID))
		require.NoError(t, err)
		require.Equal(t, got.Role, byHand.Role)
		require.Equal(t, got.Content, byHand.Content)
		require.Equal(t, got.TemplateID, byHand.TemplateID)
		require.Equal(t, got.ScheduledAt, byHand.ScheduledAt)
		require.Equal(t, got.CreatedAt, byHand.CreatedAt)
		require.Equal(t, got.UpdatedAt, byHand.UpdatedAt)
		require.Equal(t, got.Attempts, byHand.Attempts)
		require.Equal(t, got.Data, byHand.Data)
		require.Equal(t, got.Rendered, byHand.Rendered)
	})

	t.Run("EnvelopeColumns", func(t *testing.T) {
		t.Parallel()
		mustBulkTrigger(ctx, t, b.client, []int64{1, 2, 3}, &outbound.BulkTriggerOpts{TemplateID: "tpl", RenderedBody: "body", Actor: "agent:1", ScheduleIn: time.Minute})
		require.NoError(t, b.client.SetMaxBatchSize(2))
		at := time.Now().Add(time.Hour).Truncate(time.Microsecond)
		_, err := b.client.BulkTrigger(ctx, []int64{1, 2, 3}, &outbound.BulkTriggerOpts{TemplateID: "tpl", RenderedBody: "body", Actor: "agent:1",
			ScheduledAt: at, Priority: 3, MaxAttempts: 7})
		var tooLarge *outbound.BatchTooLargeError
		require.ErrorAs(t, err, &tooLarge)
		_, err = testPool.Exec(ctx, "UPDATE "+table(b.schema, "bulk_envelopes")+" SET updated_at = now() + interval '1 minute', requested_at = now() - interval '1 minute' WHERE id = $1", tooLarge.EnvelopeID)
		require.NoError(t, err)

		var row map[string]any
		require.NoError(t, testPool.QueryRow(ctx, "SELECT to_jsonb(e) FROM "+table(b.schema, "bulk_envelopes")+" e WHERE id = $1", tooLarge.EnvelopeID).Scan(&row))
		for _, c := range sqltext.EnvelopeColumnNames {
			require.Contains(t, row, c)
		}
		got, err := b.client.Envelope(ctx, tooLarge.EnvelopeID)
		require.NoError(t, err)
		require.Equal(t, row["id"], got.ID.String())
		require.Equal(t, row["template_id"], got.TemplateID)
		require.Equal(t, row["rendered_body"], got.RenderedBody)
		require.Equal(t, row["recipient_conversation_ids"], []any{float64(1), float64(2), float64(3)})
		require.Equal(t, []int64{1, 2, 3}, got.RecipientConversationIDs)
		require.Equal(t, row["count"], float64(got.Count))
		require.Equal(t, row["effective_cap"], float64(got.EffectiveCap))
		require.Equal(t, row["requested_by"], got.RequestedBy)
		requireJSONTime(t, row["requested_at"], got.RequestedAt)
		require.Equal(t, row["status"], string(got.Status))
		require.Equal(t, row["refused_reason"], got.RefusedReason)
		requireJSONTime(t, row["created_at"], got.CreatedAt)
		requireJSONTime(t, row["updated_at"], got.UpdatedAt)
		stored, err := b.client.EnvelopeStoredRequest(ctx, tooLarge.EnvelopeID)
		require.NoError(t, err)
		require.Equal(t, row["recipients_digest"], `\x`+hex.EncodeToString(stored.RecipientsDigest))
		require.Equal(t, row["schedule_in"], "00:00:00")
		require.Equal(t, time.Duration(0), *stored.ScheduleIn)
		requireJSONTime(t, row["scheduled_at"], at)
		require.True(t, stored.ScheduledAt.Equal(at))
		require.Equal(t, row["priority"], float64(3))
		require.Equal(t, 3, *stored.Priority)
		require.Equal(t, row["max_attempts"], float64(7))
		require.Equal(t, 7, *stored.MaxAttempts)
	})
}

// allStatuses are the MessageStatus constants in lifecycle order.
var allStatuses = []outbound.MessageStatus{
	outbound.MessageStatusPending, outbound.MessageStatusDelivering, outbound.MessageStatusSent,
	outbound.MessageStatusFailed, outbound.MessageStatusUnconfirmed, outbound.MessageStatusDiscarded,
	outbound.MessageStatusCancelled,
}

func statusLiterals(expr string) []string {
	var out []string
	for _, m := range statusLiteralRE.FindAllStringSubmatch(expr, -1) {
		out = append(out, m[1])
	}
	return out
}

// requireJSONTime checks a timestamptz as to_jsonb prints it against a time.
func requireJSONTime(t *testing.T, jsonValue any, want time.Time) {
	t.Helper()
	got, err := time.Parse(time.RFC3339Nano, jsonValue.(string))
	require.NoError(t, err)
	require.True(t, got.Equal(want), "column %v, scanned %v", got, want)
}

// TestDeliveryJobKind: the statements that tell a message's delivery job by
// its kind name the kind the worker registers.
func TestDeliveryJobKind(t *testing.T) {
	t.Parallel()
	require.Equal(t, outbound.DeliveryJobKind, sqltext.DeliveryJobKind)
	require.Equal(t, outbound.DeliveryJobKind, outbound.DeliveryArgs{}.Kind())
}
