package outbound_test

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"testing"

	"github.com/cairnloop/outbound"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// personalBulkSize is the size of BenchmarkPersonalisedBulk's bulks.
const personalBulkSize = 1_000

// personalised is a bulk's options with a body and data of each recipient's
// own, as a host that renders per recipient makes them: the body as long as
// benchBody, the data a phone number.
func personalised(ids []int64) *outbound.BulkTriggerOpts {
	opts := &outbound.BulkTriggerOpts{TemplateID: benchTemplate, Data: map[string]any{"channel": "sms"},
		Recipients: make(map[int64]outbound.BulkRecipient, len(ids))}
	for _, id := range ids {
		opts.Recipients[id] = outbound.BulkRecipient{
			RenderedBody: fmt.Sprintf("Hi customer %d, we are sorry your order arrived late. Here is what happens.", id),
			Data:         map[string]any{"phone": fmt.Sprintf("+1555%07d", id)},
		}
	}
	return opts
}

// BenchmarkPersonalisedBulk compares a 1,000-recipient bulk whose recipients
// each have their own body and data with the same bulk with one body, and
// with the fastest hand-written SQL that writes the same personalised rows
// (the floor, as BenchmarkBulkTrigger's). The options, which the host
// renders, are made before the timer starts.
func BenchmarkPersonalisedBulk(b *testing.B) {
	ctx := context.Background()
	n := personalBulkSize
	b.Run("impl=one_body", func(b *testing.B) {
		e := newBenchEnv(b, 4)
		client := e.client(b, &outbound.Config{MaxBatchSize: n})
		runBulkPrepared(b, e, n, func(ids []int64) func() error {
			opts := &outbound.BulkTriggerOpts{TemplateID: benchTemplate, RenderedBody: benchBody, Data: map[string]any{"channel": "sms"}}
			return func() error { _, err := client.BulkTrigger(ctx, ids, opts); return err }
		})
	})
	b.Run("impl=personalised", func(b *testing.B) {
		e := newBenchEnv(b, 4)
		client := e.client(b, &outbound.Config{MaxBatchSize: n})
		runBulkPrepared(b, e, n, func(ids []int64) func() error {
			opts := personalised(ids)
			return func() error { _, err := client.BulkTrigger(ctx, ids, opts); return err }
		})
	})
	b.Run("impl=floor_personalised", func(b *testing.B) {
		e := newBenchEnv(b, 4)
		f := newBulkFloor(e)
		insertMessages := `INSERT INTO ` + pgx.Identifier{e.schema}.Sanitize() + `.messages
	(id, conversation_id, job_id, template_id, content, bulk_envelope_id, metadata, data, rendered)
SELECT u.id, u.conversation_id, u.job_id, $4, u.content, $5, $6, u.data::jsonb, true
FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $7::text[], $8::text[]) AS u(id, conversation_id, job_id, content, data)`
		runBulkPrepared(b, e, n, func(ids []int64) func() error {
			// The bodies and data as the host would hand them over.
			opts := personalised(ids)
			return func() error {
				contents, data := make([]string, len(ids)), make([]string, len(ids))
				for i, id := range ids {
					r := opts.Recipients[id]
					contents[i] = r.RenderedBody
					encoded, err := json.Marshal(map[string]any{"channel": "sms", "phone": r.Data["phone"]})
					if err != nil {
						return err
					}
					data[i] = string(encoded)
				}
				return f.write(ctx, ids, func(tx pgx.Tx, r *floorRows) error {
					rows, _ := tx.Query(ctx, f.insertJobs, r.jobArgs, outbound.DeliveryJobKind, outbound.DefaultMaxAttempts, outbound.DefaultQueue)
					jobIDs, err := pgx.CollectRows(rows, pgx.RowTo[int64])
					if err != nil {
						return err
					}
					_, err = tx.Exec(ctx, insertMessages, r.messageIDs, ids, jobIDs, benchTemplate, r.envelopeID, r.metadata, contents, data)
					return err
				})
			}
		})
	})
}

// BenchmarkPersonalisedBulkHeap is BenchmarkBulkTriggerHeap with a body and
// data of each recipient's own.
func BenchmarkPersonalisedBulkHeap(b *testing.B) {
	benchBulkHeap(b, personalised)
}

// runBulkPrepared is runBulk for a write that needs its options made for
// its ids: prepare makes them, before the timer starts, and returns the
// write to time.
func runBulkPrepared(b *testing.B, e *benchEnv, n int, prepare func(ids []int64) func() error) {
	b.Helper()
	require.NoError(b, prepare(e.conversations(n))()) // prepares statements
	b.ReportAllocs()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	e.resetCounters(b)
	mallocs := before.Mallocs
	for b.Loop() {
		b.StopTimer()
		runtime.ReadMemStats(&after)
		preparing := after.Mallocs
		write := prepare(e.conversations(n))
		runtime.ReadMemStats(&after)
		// The host's allocations to make its options are not the call's.
		mallocs += after.Mallocs - preparing
		b.StartTimer()
		if err := write(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	runtime.ReadMemStats(&after)
	recipients := float64(b.N * n)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/recipients, "ns/recipient")
	b.ReportMetric(float64(after.Mallocs-mallocs)/recipients, "allocs/recipient")
	e.reportStatements(b)
}
