package outbound_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/cairnloop/outbound"
	"github.com/cairnloop/outbound/internal/sqltext"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// readsRows is how many messages BenchmarkReads seeds.
const readsRows = 1_000_000

// readsID is the id of the i-th seeded message: ids in seeding order, as
// UUIDv7 ids are in creation order.
func readsID(i int) uuid.UUID {
	return uuid.MustParse(fmt.Sprintf("00000000-0000-7000-8000-%012x", i))
}

// seedReads fills a schema with readsRows messages, as a year of a busy
// service might leave them: 5 per conversation, half of them in 10,000
// envelopes of 50, 97.5% sent, and a backlog of 1% pending, 0.5% failed and
// 0.2% delivering; then has PostgreSQL analyze them.
func seedReads(tb testing.TB, schema string) {
	tb.Helper()
	_, err := testPool.Exec(context.Background(), `
INSERT INTO `+table(schema, "bulk_envelopes")+` (id, template_id, rendered_body, recipient_conversation_ids, count, effective_cap, status, requested_at)
SELECT ('00000000-0000-7000-9000-' || lpad(to_hex(e), 12, '0'))::uuid, 'bulk', 'b', ARRAY[e::bigint], 1, 50, 'submitted',
	now() - interval '30 days' + e * interval '1 minute'
FROM generate_series(1, 10000) e;

INSERT INTO `+table(schema, "messages")+` (id, conversation_id, template_id, content, status, sent_at, bulk_envelope_id, metadata)
SELECT ('00000000-0000-7000-8000-' || lpad(to_hex(i), 12, '0'))::uuid,
	1 + i % 200000,
	't' || (i / 200000),
	'body',
	s.status,
	CASE WHEN s.status = 'sent' THEN now() - interval '7 days' END,
	CASE WHEN i % 2 = 0 THEN ('00000000-0000-7000-9000-' || lpad(to_hex(1 + (i / 2) % 10000), 12, '0'))::uuid END,
	'{}'
FROM generate_series(1, `+fmt.Sprint(readsRows)+`) i,
	LATERAL (SELECT CASE
		WHEN i % 1000 < 10 THEN 'pending'
		WHEN i % 1000 < 15 THEN 'failed'
		WHEN i % 1000 < 17 THEN 'delivering'
		WHEN i % 1000 < 20 THEN 'discarded'
		WHEN i % 1000 < 25 THEN 'cancelled'
		ELSE 'sent' END AS status) s`)
	require.NoError(tb, err)
	// VACUUM sets the visibility map, as autovacuum would have by now.
	_, err = testPool.Exec(context.Background(), "VACUUM ANALYZE "+table(schema, "bulk_envelopes")+", "+table(schema, "messages"))
	require.NoError(tb, err)
}

// BenchmarkReads times the outbound.message.backlog gauges's query and ListMessages
// under each kind of filter, on 1,000,000 messages, and ListEnvelopes on
// 10,000 envelopes. Before timing, it logs each statement's EXPLAIN ANALYZE
// and fails if one scans a whole table.
func BenchmarkReads(b *testing.B) {
	ctx := context.Background()
	e := newBenchEnv(b, 4)
	seedReads(b, e.schema)
	reader := sdkmetric.NewManualReader()
	client := e.client(b, &outbound.Config{MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))})
	outbound.SetStatusGaugeMinInterval(client, 0)
	q := sqltext.New(e.schema, e.schema)

	middle := readsID(readsRows / 2)
	envelope := uuid.MustParse("00000000-0000-7000-9000-000000000007")
	envelopes, err := client.ListEnvelopes(ctx, &outbound.ListEnvelopesParams{Limit: 500})
	require.NoError(b, err)
	envelopeCursor := envelopes.NextCursor

	explain := func(name, sql string, args ...any) {
		b.Helper()
		rows, err := e.pool.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS) "+sql, args...)
		require.NoError(b, err)
		var plan strings.Builder
		for rows.Next() {
			var line string
			require.NoError(b, rows.Scan(&line))
			plan.WriteString("    " + line + "\n")
		}
		require.NoError(b, rows.Err())
		require.NotContains(b, plan.String(), "Seq Scan", name)
		b.Logf("%s:\n%s", name, plan.String())
	}
	id := func(u uuid.UUID) pgtype.UUID { return pgtype.UUID{Bytes: u, Valid: true} }
	messages := []struct {
		name   string
		params outbound.ListMessagesParams
		filter sqltext.MessageFilter
		args   []any
	}{
		{"newest", outbound.ListMessagesParams{}, sqltext.MessageFilter{}, nil},
		{"deep_page", outbound.ListMessagesParams{After: outbound.MessageListCursorFromMessage(&outbound.Message{ID: middle})},
			sqltext.MessageFilter{After: true}, []any{id(middle)}},
		{"conversation", outbound.ListMessagesParams{ConversationID: 4242},
			sqltext.MessageFilter{Conversation: true}, []any{int64(4242)}},
		{"envelope", outbound.ListMessagesParams{BulkEnvelopeID: envelope},
			sqltext.MessageFilter{Envelope: true}, []any{id(envelope)}},
		{"status=failed", outbound.ListMessagesParams{Status: outbound.MessageStatusFailed},
			sqltext.MessageFilter{Status: sqltext.AwaitingStatus}, []any{"failed"}},
		{"status=discarded", outbound.ListMessagesParams{Status: outbound.MessageStatusDiscarded},
			sqltext.MessageFilter{Status: sqltext.FinalStatus}, []any{"discarded"}},
		{"status=discarded/deep_page", outbound.ListMessagesParams{Status: outbound.MessageStatusDiscarded,
			After: outbound.MessageListCursorFromMessage(&outbound.Message{ID: middle})},
			sqltext.MessageFilter{Status: sqltext.FinalStatus, After: true}, []any{"discarded", id(middle)}},
		{"conversation/status=sent", outbound.ListMessagesParams{ConversationID: 4242, Status: outbound.MessageStatusSent},
			sqltext.MessageFilter{Conversation: true, Status: sqltext.FinalStatus}, []any{int64(4242), "sent"}},
		{"envelope/status=failed", outbound.ListMessagesParams{BulkEnvelopeID: envelope, Status: outbound.MessageStatusFailed},
			sqltext.MessageFilter{Envelope: true, Status: sqltext.AwaitingStatus}, []any{id(envelope), "failed"}},
	}
	explain("gauge", q.CountAwaitingByStatus)
	for _, m := range messages {
		explain("ListMessages/"+m.name, q.ListMessages[m.filter], append([]any{outbound.DefaultListLimit + 1}, m.args...)...)
	}
	explain("ListEnvelopes/newest", q.ListEnvelopes[sqltext.EnvelopeFilter{}], outbound.DefaultListLimit+1)
	last := envelopes.Envelopes[len(envelopes.Envelopes)-1]
	explain("ListEnvelopes/deep_page", q.ListEnvelopes[sqltext.EnvelopeFilter{After: true}], outbound.DefaultListLimit+1, last.RequestedAt, id(last.ID))

	b.Run("gauge", func(b *testing.B) {
		for b.Loop() {
			var rm metricdata.ResourceMetrics
			require.NoError(b, reader.Collect(ctx, &rm))
		}
	})
	for _, m := range messages {
		b.Run("ListMessages/"+m.name, func(b *testing.B) {
			params := m.params
			for b.Loop() {
				page, err := client.ListMessages(ctx, &params)
				require.NoError(b, err)
				require.NotEmpty(b, page.Messages)
			}
		})
	}
	b.Run("ListEnvelopes/newest", func(b *testing.B) {
		for b.Loop() {
			_, err := client.ListEnvelopes(ctx, nil)
			require.NoError(b, err)
		}
	})
	b.Run("ListEnvelopes/deep_page", func(b *testing.B) {
		for b.Loop() {
			page, err := client.ListEnvelopes(ctx, &outbound.ListEnvelopesParams{After: envelopeCursor})
			require.NoError(b, err)
			require.NotEmpty(b, page.Envelopes)
		}
	})
}
