package outbound_test

import (
	"context"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"github.com/cairnloop/outbound"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// TestRefusal checks what a refusal over the cap costs, and that it is prompt
// when it cannot be recorded.
func TestRefusal(t *testing.T) {
	t.Parallel()

	// CostsLittle refuses lists far over the cap and checks that what
	// is stored and what is allocated do not grow with the list.
	t.Run("CostsLittle", func(t *testing.T) {
		t.Parallel()

		t.Run("TwoMillionIds", func(t *testing.T) {
			t.Parallel()
			ctx := ctxT(t)
			b := setup(t, audited())
			const n = 2_000_000
			ids := make([]int64, n)
			for i := range ids {
				ids[i] = int64(n - i) // not in numeric order
			}
			opts := &outbound.BulkTriggerOpts{TemplateID: "outage", RenderedBody: "We are back.", Actor: "agent:1"}

			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := b.client.BulkTrigger(ctx, ids, opts)
			runtime.ReadMemStats(&after)
			var tooLarge *outbound.BatchTooLargeError
			require.ErrorAs(t, err, &tooLarge)
			require.Equal(t, n, tooLarge.Count)
			require.Equal(t, 25, tooLarge.Cap)
			// The list itself is 16 MB; a set of its ids, to find repeats, was
			// 280 MB. Other tests run beside this one and allocate too, so the
			// bound is loose.
			allocated := after.TotalAlloc - before.TotalAlloc
			t.Logf("allocated %d bytes refusing %d ids", allocated, n)
			require.Less(t, allocated, uint64(64<<20))

			env, err := b.client.Envelope(ctx, tooLarge.EnvelopeID)
			require.NoError(t, err)
			require.Equal(t, outbound.EnvelopeStatusRefusedCapExceeded, env.Status)
			require.Equal(t, n, env.Count, "the full count is kept")
			require.Equal(t, ids[:outbound.MaxRefusedRecipientsKept], env.RecipientConversationIDs, "the first ids are kept")
			require.Equal(t, "batch_size 2000000 exceeds cap 25", env.RefusedReason)
			var rowBytes int
			require.NoError(t, testPool.QueryRow(ctx, "SELECT pg_column_size(e.*) FROM "+table(b.schema, "bulk_envelopes")+" e WHERE id = $1", env.ID).Scan(&rowBytes))
			t.Logf("refused envelope row: %d bytes", rowBytes)
			require.Less(t, rowBytes, 256<<10)

			// A retry of the same request replays the refusal; the same id with
			// another list is a conflict, even one that differs only at its end.
			opts.EnvelopeID = env.ID
			_, err = b.client.BulkTrigger(ctx, ids, opts)
			require.ErrorAs(t, err, &tooLarge)
			require.Equal(t, env.ID, tooLarge.EnvelopeID)
			ids[n-1] = n + 1
			_, err = b.client.BulkTrigger(ctx, ids, opts)
			require.ErrorIs(t, err, outbound.ErrIdempotencyConflict)
			require.Equal(t, rowCounts{Envelopes: 1, AuditEvents: 1}, countAll(t, b.schema))
		})

		t.Run("ShortListsAreKeptWhole", func(t *testing.T) {
			t.Parallel()
			ctx := ctxT(t)
			b := setup(t, withConfig(&outbound.Config{MaxBatchSize: 2}))
			ids := []int64{9, 3, 5}
			_, err := b.client.BulkTrigger(ctx, ids, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b"})
			var tooLarge *outbound.BatchTooLargeError
			require.ErrorAs(t, err, &tooLarge)
			env, err := b.client.Envelope(ctx, tooLarge.EnvelopeID)
			require.NoError(t, err)
			require.Equal(t, ids, env.RecipientConversationIDs)

			// A refusal's retry must list the recipients in the same order: it
			// is compared by digest.
			_, err = b.client.BulkTrigger(ctx, []int64{3, 5, 9}, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b", EnvelopeID: env.ID})
			require.ErrorIs(t, err, outbound.ErrIdempotencyConflict)
			// So is a retry that asks for another schedule.
			_, err = b.client.BulkTrigger(ctx, ids, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b", ScheduleIn: time.Minute, EnvelopeID: env.ID})
			require.ErrorIs(t, err, outbound.ErrIdempotencyConflict)
			require.ErrorContains(t, err, "different schedule")
		})
	})

	// OnAnExhaustedPool refuses an over-cap BulkTriggerTx whose
	// caller's transaction holds the pool's only connection, with a context that
	// has no deadline: the refusal cannot be recorded, and the call says so
	// promptly instead of waiting for a connection that never comes.
	t.Run("OnAnExhaustedPool", func(t *testing.T) {
		t.Parallel()
		schema := migratedSchema(t)
		pool := newTestPool(t, 1)
		var logs syncBuffer
		reader, providers := newTelemetryRecorder()
		client, err := outbound.New(pool, &outbound.Config{
			Schema:         schema,
			MaxBatchSize:   2,
			Logger:         slog.New(slog.NewTextHandler(&logs, nil)),
			MeterProvider:  providers.meter,
			TracerProvider: providers.tracer,
		})
		require.NoError(t, err)

		ctx := context.Background() // no deadline
		tx, err := pool.Begin(ctx)
		require.NoError(t, err)
		defer func() { _ = tx.Rollback(ctx) }()

		start := time.Now()
		_, err = client.BulkTriggerTx(ctx, tx, []int64{1, 2, 3}, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b"})
		took := time.Since(start)
		t.Logf("refused in %s", took)
		require.ErrorIs(t, err, outbound.ErrBatchTooLarge)
		var tooLarge *outbound.BatchTooLargeError
		require.ErrorAs(t, err, &tooLarge)
		require.Equal(t, uuid.Nil, tooLarge.EnvelopeID, "no refused envelope was recorded")
		require.Less(t, took, outbound.RefusalRecordTimeoutForTest+hungPast, "the refusal waited for a connection")
		require.Contains(t, logs.String(), "could not record refused bulk envelope")
		require.Equal(t, map[string]int64{"refused_cap_exceeded_audit_failed": 1}, pointSums(t, reader, "outbound.bulk_trigger.duration", byOutcome))

		// The caller's transaction is untouched and still usable.
		var one int
		require.NoError(t, tx.QueryRow(ctx, "SELECT 1").Scan(&one))
		require.NoError(t, tx.Rollback(ctx))
		require.Equal(t, rowCounts{}, countAll(t, schema))

		// With the connection back, the refusal is recorded again.
		_, err = client.BulkTrigger(ctx, []int64{1, 2, 3}, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b"})
		require.ErrorAs(t, err, &tooLarge)
		require.NotEqual(t, uuid.Nil, tooLarge.EnvelopeID)
		require.Equal(t, rowCounts{Envelopes: 1}, countAll(t, schema))
	})
}
