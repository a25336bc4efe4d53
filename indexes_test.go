package outbound_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cairnloop/outbound"
	"github.com/cairnloop/outbound/internal/sqltext"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/stretchr/testify/require"
)

// seedFinalRows fills a schema with 100,000 final messages (sent a week ago,
// cancelled, discarded) spread over 2,000 envelopes, and 20,000 audit
// events, then has PostgreSQL analyze them, as a production table would be.
func seedFinalRows(tb testing.TB, schema string) {
	tb.Helper()
	f := newFactory(schema)
	const day = 24 * time.Hour
	now := time.Now()
	envelopeID := func(e int) uuid.UUID { return uuid.MustParse(fmt.Sprintf("00000000-0000-7000-8000-%012x", e)) }
	envelopes := make([]envelopeRow, 2000)
	for i := range envelopes {
		e := i + 1
		envelopes[i] = envelopeRow{ID: envelopeID(e), TemplateID: "bulk", Recipients: []int64{int64(e)}, RequestedAt: now.Add(-30*day + time.Duration(e)*time.Minute)}
	}
	f.insertEnvelopes(tb, envelopes)
	statuses := []outbound.MessageStatus{outbound.MessageStatusSent, outbound.MessageStatusSent, outbound.MessageStatusSent,
		outbound.MessageStatusCancelled, outbound.MessageStatusDiscarded}
	messages := make([]messageRow, 100000)
	for j := range messages {
		i := j + 1
		messages[j] = messageRow{
			// Random ids, spread over the index as many writers' would be.
			ID: uuid.New(), ConversationID: int64(i), TemplateID: fmt.Sprint("t", i%50), Status: statuses[i%5],
			CreatedAt: now.Add(-8 * day), UpdatedAt: now.Add(-7 * day),
		}
		if i%50 == 0 {
			id := envelopeID(1 + i/50)
			messages[j].BulkEnvelopeID = &id
		}
	}
	f.insertMessages(tb, messages)

	_, err := testPool.Exec(context.Background(), `
INSERT INTO `+table(schema, "audit_events")+` (id, action, metadata, occurred_at)
SELECT gen_random_uuid(), 'outbound_trigger', '{}', now() - interval '30 days' + i * interval '1 minute'
FROM generate_series(1, 20000) i;

ANALYZE `+table(schema, "bulk_envelopes")+`, `+table(schema, "messages")+`, `+table(schema, "audit_events")+`;`)
	require.NoError(tb, err)
}

// TestStatementsUseIndexes explains every statement that reads or settles
// messages and envelopes, on 100,000 final rows: none scans a whole table.
func TestStatementsUseIndexes(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	schema := migratedSchema(t)
	seedFinalRows(t, schema)
	q := sqltext.New(schema, schema)

	id := pgtype.UUID{Bytes: uuid.New(), Valid: true}
	envelopeID := pgtype.UUID{Bytes: uuid.MustParse("00000000-0000-7000-8000-000000000007"), Valid: true}
	zero := pgtype.UUID{Valid: true}
	week := 7 * 24 * time.Hour
	cutoff := time.Now().Add(-time.Hour)
	tests := []struct {
		name  string
		sql   string
		args  []any
		index string
	}{
		{"SelectMessage", q.SelectMessage, []any{id}, "messages_pkey"},
		{"SelectEnvelope", q.SelectEnvelope, []any{envelopeID}, "bulk_envelopes_pkey"},
		{"ListEnvelopes", q.ListEnvelopes[sqltext.EnvelopeFilter{}], []any{50}, "bulk_envelopes_requested_at_id_idx"},
		{"ListEnvelopesByStatus", q.ListEnvelopes[sqltext.EnvelopeFilter{Status: true}], []any{50, "refused_cap_exceeded"}, "bulk_envelopes_status_requested_at_id_idx"},
		{"ListEnvelopesBySubmitted", q.ListEnvelopes[sqltext.EnvelopeFilter{Status: true}], []any{50, "submitted"}, "requested_at_id_idx"},
		{"ListEnvelopesByOutcome", q.ListEnvelopes[sqltext.EnvelopeFilter{Outcome: true}], []any{50, "completed"}, "bulk_envelopes_requested_at_id_idx"},
		{"ListEnvelopesByOutcome/messages", q.ListEnvelopes[sqltext.EnvelopeFilter{Outcome: true}], []any{50, "completed"}, "messages_bulk_envelope_id_idx"},
		{"SelectEnvelope/outcome", q.SelectEnvelope, []any{envelopeID}, "messages_bulk_envelope_id_idx"},
		{"EnvelopeProgress", q.EnvelopeProgress, []any{envelopeID}, "messages_bulk_envelope_id_idx"},
		{"SelectMessagesByEnvelope", q.SelectMessagesByEnvelope, []any{envelopeID, "t0"}, "messages_bulk_envelope_id_idx"},
		{"SelectLiveMessagesByKey", q.SelectLiveMessagesByKey, []any{[]int64{50, 100}, "t0", nil}, "messages_dedup_key_idx"},
		{"ReleaseExpiredDedupKeys", q.ReleaseExpiredDedupKeys, []any{[]int64{50, 100}, "t0", nil, 86400.0}, "messages_dedup_key_idx"},
		{"CancelEnvelopeMessages", q.CancelEnvelopeMessages, []any{envelopeID, "t0", nil}, "messages_bulk_envelope_id_idx"},
		{"MarkEnvelopeCancelledIfAllCancelled", q.MarkEnvelopeCancelledIfAllCancelled, []any{envelopeID, nil}, "messages_bulk_envelope_id_idx"},
		{"MarkEnvelopeCancelRequested", q.MarkEnvelopeCancelRequested, []any{envelopeID, nil}, "messages_bulk_envelope_id_idx"},
		{"ReconcileMessages", q.ReconcileMessages, []any{1000, zero}, "messages_awaiting_result_idx"},
		{"PruneMessages", q.PruneMessages, []any{zero, pgtype.UUID{Bytes: uuid.Max, Valid: true}, 1000, cutoff, week.Seconds()}, "messages_pkey"},
		{"PruneEnvelopes", q.PruneEnvelopes, []any{cutoff, time.Time{}, zero, 1000}, "bulk_envelopes_requested_at_id_idx"},
		{"PruneAuditEvents", q.PruneAuditEvents, []any{cutoff, 1000}, "audit_events_occurred_at_idx"},
		{"ListAuditEvents", q.ListAuditEvents, []any{nil, 50}, "audit_events_occurred_at_idx"},
		{"ListEnvelopesAfter", q.ListEnvelopes[sqltext.EnvelopeFilter{After: true}], []any{50, cutoff, zero}, "bulk_envelopes_requested_at_id_idx"},
		{"ListEnvelopesByStatusAfter", q.ListEnvelopes[sqltext.EnvelopeFilter{Status: true, After: true}], []any{50, "refused_cap_exceeded", cutoff, zero}, "bulk_envelopes_status_requested_at_id_idx"},
		{"ListEnvelopesByOutcomeAfter", q.ListEnvelopes[sqltext.EnvelopeFilter{Outcome: true, After: true}], []any{50, "in_progress", cutoff, zero}, "bulk_envelopes_requested_at_id_idx"},
		{"CountAwaitingByStatus", q.CountAwaitingByStatus, nil, "messages_awaiting_result_idx"},
	}
	// Every ListMessages statement, with the indexes that serve its filters:
	// the planner takes the most selective.
	for _, f := range sqltext.AllMessageFilters() {
		// The statement's parameters in their order, each with the index
		// that may serve its filter.
		args, indexes := []any{51}, []string{"messages_pkey"}
		if f.Conversation {
			args, indexes = append(args, int64(50)), append(indexes, "messages_conversation_id_id_idx")
		}
		if f.Envelope {
			args, indexes = append(args, envelopeID), append(indexes, "messages_bulk_envelope_id_idx")
		}
		switch f.Status {
		case sqltext.AwaitingStatus:
			args, indexes = append(args, "failed"), append(indexes, "messages_awaiting_result_idx")
		case sqltext.FinalStatus:
			args, indexes = append(args, "discarded"), append(indexes, "messages_final_status_id_idx")
		}
		if f.After {
			args = append(args, pgtype.UUID{Bytes: uuid.Max, Valid: true})
		}
		tests = append(tests, struct {
			name  string
			sql   string
			args  []any
			index string
		}{fmt.Sprintf("ListMessages%+v", f), q.ListMessages[f], args, strings.Join(indexes[min(1, len(indexes)-1):], "|")})
	}
	for _, tt := range tests {
		rows, err := testPool.Query(ctx, "EXPLAIN "+tt.sql, tt.args...)
		require.NoError(t, err, tt.name)
		var plan strings.Builder
		for rows.Next() {
			var line string
			require.NoError(t, rows.Scan(&line))
			plan.WriteString(line + "\n")
		}
		require.NoError(t, rows.Err(), tt.name)
		for _, name := range []string{"messages", "bulk_envelopes", "audit_events"} {
			require.NotContains(t, plan.String(), "Seq Scan on "+name, "%s:\n%s", tt.name, plan.String())
		}
		// index names the index expected, or several, separated by |.
		used := false
		for _, index := range strings.Split(tt.index, "|") {
			used = used || strings.Contains(plan.String(), index)
		}
		require.True(t, used, "%s uses %s:\n%s", tt.name, tt.index, plan.String())
	}
}

// TestReconcileBatchesStayBounded settles 3,000 stuck messages among
// 100,000 final ones, in batches of 1,000, and checks the work one batch's
// statement does: the rows it visits are bounded by the batch, not by the
// table. The first version of the statement joined its batch, which the
// planner did with a scan of the whole table, and a managed service's
// statement timeout cut it off. It was caught with a 100ms
// statement_timeout, which a loaded machine also exceeds with a good plan;
// rows visited do not depend on the machine.
func TestReconcileBatchesStayBounded(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	schema := migratedSchema(t)
	seedFinalRows(t, schema)
	// Pending messages whose job is gone, as after an operator deleted them.
	stuck := make([]messageRow, 3000)
	for j := range stuck {
		jobID := int64(1000001 + j)
		stuck[j] = messageRow{ID: uuid.New(), ConversationID: jobID, TemplateID: "stuck", JobID: &jobID}
	}
	newFactory(schema).insertMessages(t, stuck)
	_, err := testPool.Exec(ctx, "ANALYZE "+table(schema, "messages"))
	require.NoError(t, err)

	// One batch, analyzed, and undone.
	tx, err := testPool.Begin(ctx)
	require.NoError(t, err)
	var plan []map[string]any
	require.NoError(t, tx.QueryRow(ctx, "EXPLAIN (ANALYZE, FORMAT JSON) "+sqltext.New(schema, schema).ReconcileMessages,
		1000, pgtype.UUID{Valid: true}).Scan(&plan))
	require.NoError(t, tx.Rollback(ctx))
	visited := rowsVisited(plan[0]["Plan"].(map[string]any), "messages")
	t.Logf("one batch of 1,000 visited %.0f rows of messages (103,000 in the table)", visited)
	require.Less(t, visited, 10_000.0, "one batch visited a tenth of the table or more")

	client, err := outbound.New(testPool, &outbound.Config{Schema: schema})
	require.NoError(t, err)
	n, err := client.Reconcile(ctx)
	require.NoError(t, err)
	require.Equal(t, 3000, n)

	var discarded int
	require.NoError(t, testPool.QueryRow(ctx, "SELECT count(*) FROM "+table(schema, "messages")+
		" WHERE template_id = 'stuck' AND status = 'discarded' AND last_error = 'delivery job no longer exists'").Scan(&discarded))
	require.Equal(t, 3000, discarded)
	n, err = client.Reconcile(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "nothing left to settle")
}

// rowsVisited sums, over an analyzed plan's nodes that read the relation,
// the rows they returned and the rows their filters removed, over all loops.
func rowsVisited(node map[string]any, relation string) float64 {
	var n float64
	if node["Relation Name"] == relation {
		loops, _ := node["Actual Loops"].(float64)
		returned, _ := node["Actual Rows"].(float64)
		removed, _ := node["Rows Removed by Filter"].(float64)
		recheck, _ := node["Rows Removed by Index Recheck"].(float64)
		n += loops * (returned + removed + recheck)
	}
	children, _ := node["Plans"].([]any)
	for _, child := range children {
		n += rowsVisited(child.(map[string]any), relation)
	}
	return n
}

// TestClaimAndFailedRecordAreHOT checks that the two updates a failing
// delivery makes most often, its claim (pending to delivering) and its
// failed record (delivering to failed), change no indexed value, so that
// PostgreSQL makes them HOT updates, which touch no index. An index that
// reads status would undo this; ListMessages' status filter goes through
// awaiting_result and final_status instead.
func TestClaimAndFailedRecordAreHOT(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	b := setup(t)
	q := sqltext.New(b.schema, b.schema)
	res := mustTrigger(ctx, t, b.client, 1, &outbound.TriggerOpts{TemplateID: "t"})
	id := pgtype.UUID{Bytes: res.Message.ID, Valid: true}
	claimID := pgtype.UUID{Bytes: uuid.New(), Valid: true}

	tx, err := testPool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	// The backend's counts not yet reported, which include this
	// transaction's exactly: taken as changes from before its first update,
	// since the connection may hold the counts of an earlier test on the
	// same (reused) table.
	read := func() (updated, hot int64) {
		t.Helper()
		require.NoError(t, tx.QueryRow(ctx, "SELECT pg_stat_get_xact_tuples_updated($1::regclass), pg_stat_get_xact_tuples_hot_updated($1::regclass)",
			table(b.schema, "messages")).Scan(&updated, &hot))
		return updated, hot
	}
	updatedBefore, hotBefore := read()
	counts := func() (updated, hot int64) {
		t.Helper()
		updated, hot = read()
		return updated - updatedBefore, hot - hotBefore
	}
	_, err = tx.Exec(ctx, q.ClaimMessage, id, claimID, 1, 60.0)
	require.NoError(t, err)
	updated, hot := counts()
	require.Equal(t, [2]int64{1, 1}, [2]int64{updated, hot}, "the claim is a HOT update")

	tag, err := tx.Exec(ctx, q.RecordFailed, id, claimID, "failed", "boom")
	require.NoError(t, err)
	require.Equal(t, int64(1), tag.RowsAffected())
	updated, hot = counts()
	require.Equal(t, [2]int64{2, 2}, [2]int64{updated, hot}, "the failed record is a HOT update")

	// Becoming final changes awaiting_result, and so touches the indexes.
	_, err = tx.Exec(ctx, q.ClaimMessage, id, claimID, 2, 60.0)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, q.RecordFailed, id, claimID, "discarded", "boom")
	require.NoError(t, err)
	updated, hot = counts()
	require.Equal(t, [2]int64{4, 3}, [2]int64{updated, hot}, "the discarded record is not")
}
