package outbound_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"testing"

	"github.com/cairnloop/outbound"
	"github.com/cairnloop/outbound/outboundui"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// boundedRows is how many messages BenchmarkBoundedReads seeds: a page of
// MaxListLimit.
const boundedRows = outbound.MaxListLimit

// boundedBodyBytes is each seeded body's length: 1 MiB, so that every
// benchmark's one run in CI stays quick, or OUTBOUND_BENCH_BODY_BYTES, as
// BENCHMARKS.md sets it to MaxContentBytes' largest allowed value, 64 MiB.
func boundedBodyBytes(tb testing.TB) int {
	n := 1 << 20
	if v := os.Getenv("OUTBOUND_BENCH_BODY_BYTES"); v != "" {
		var err error
		n, err = strconv.Atoi(v)
		require.NoError(tb, err, "OUTBOUND_BENCH_BODY_BYTES")
	}
	return n
}

// BenchmarkBoundedReads measures the memory that reads take when every body
// is long: a 500-row ListMessages, a message's preview, and the dashboard's
// pages, over 500 messages of one envelope whose bodies are each
// boundedBodyBytes long. B/op, all a call allocates, bounds the heap it
// uses.
func BenchmarkBoundedReads(b *testing.B) {
	ctx := context.Background()
	size := boundedBodyBytes(b)
	schema := migratedSchema(b)
	client, err := outbound.New(testPool, &outbound.Config{Schema: schema, MaxContentBytes: max(size, 1), MaxWorkers: 1})
	require.NoError(b, err)

	// The bodies are made by the server, compressed with lz4 as
	// PostgreSQL's TOAST stores them, so that seeding 32 GiB of bodies does
	// not send them over the wire.
	envelopeID := uuid.Must(uuid.NewV7())
	conn, err := testPool.Acquire(ctx)
	require.NoError(b, err)
	_, err = conn.Exec(ctx, "SET default_toast_compression = lz4")
	require.NoError(b, err)
	_, err = conn.Exec(ctx, `
INSERT INTO `+table(schema, "bulk_envelopes")+` (id, template_id, rendered_body, recipient_conversation_ids, count, effective_cap, status)
VALUES ($1, 't', repeat('x', $2), ARRAY(SELECT generate_series(1, $3)::bigint), $3, $3, 'submitted')`, envelopeID, size, boundedRows)
	require.NoError(b, err)
	_, err = conn.Exec(ctx, `
INSERT INTO `+table(schema, "messages")+` (id, conversation_id, template_id, content, bulk_envelope_id, metadata)
SELECT ('00000000-0000-7000-8000-' || lpad(to_hex(i), 12, '0'))::uuid, i, 't', repeat('x', $2), $1, '{}'
FROM generate_series(1, $3) i`, envelopeID, size, boundedRows)
	require.NoError(b, err)
	conn.Release()
	messageID := readsID(1)

	ui, err := outboundui.NewHandler(&outboundui.HandlerOpts{Client: client})
	require.NoError(b, err)
	page := func(b *testing.B, path string) {
		rec := httptest.NewRecorder()
		ui.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != http.StatusOK {
			b.Fatalf("GET %s: %d", path, rec.Code)
		}
	}

	for _, bm := range []struct {
		name string
		read func(b *testing.B)
	}{
		{"ListMessages/500_rows", func(b *testing.B) {
			res, err := client.ListMessages(ctx, &outbound.ListMessagesParams{Limit: boundedRows})
			require.NoError(b, err)
			require.Len(b, res.Messages, boundedRows)
			require.Equal(b, size, res.Messages[0].ContentBytes)
		}},
		{"ListEnvelopes", func(b *testing.B) {
			_, err := client.ListEnvelopes(ctx, nil)
			require.NoError(b, err)
		}},
		{"MessagePreview/64KiB", func(b *testing.B) {
			_, err := client.MessagePreview(ctx, messageID, 64<<10)
			require.NoError(b, err)
		}},
		{"dashboard/envelopes", func(b *testing.B) { page(b, "/") }},
		{"dashboard/envelope", func(b *testing.B) { page(b, "/envelopes/"+envelopeID.String()) }},
		{"dashboard/messages", func(b *testing.B) { page(b, "/messages") }},
		{"dashboard/message", func(b *testing.B) { page(b, "/messages/"+messageID.String()) }},
	} {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				bm.read(b)
			}
		})
	}
}
