package outbound_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cairnloop/outbound"
	"github.com/cairnloop/outbound/internal/sqltext"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"
)

// benchTemplate is the template of every benchmark's messages.
//
// The benchmarks compare the library, side by side in one run, with the same
// work written by hand: each benchmark has sub-benchmarks named impl=..., so
// that `benchstat -col /impl` prints them as columns with their ratios.
// BENCHMARKS.md has the commands and the results.
const benchTemplate = "recovery"

// benchEnv is one benchmark's schema, traced pool, and the clients on it.
type benchEnv struct {
	schema     string
	pool       *pgxpool.Pool
	statements *statementCounter
	// nextConversation hands out conversation ids never used in the schema,
	// so that no call meets a dedup key another call holds.
	nextConversation atomic.Int64
}

// newBenchEnv makes a benchmark's schema and pool; maxConns 0 keeps
// pgxpool's defaults.
func newBenchEnv(b *testing.B, maxConns int32) *benchEnv {
	b.Helper()
	env := &benchEnv{schema: migratedSchema(b), statements: &statementCounter{}}
	config, err := pgxpool.ParseConfig(testDatabaseURL)
	require.NoError(b, err)
	if maxConns > 0 {
		config.MaxConns = maxConns
		config.MinConns = maxConns // no connects inside the timed loop
	}
	config.ConnConfig.Tracer = env.statements
	env.pool, err = pgxpool.NewWithConfig(context.Background(), config)
	require.NoError(b, err)
	b.Cleanup(env.pool.Close)
	return env
}

// conversations returns n conversation ids not handed out before.
func (e *benchEnv) conversations(n int) []int64 {
	last := e.nextConversation.Add(int64(n))
	ids := make([]int64, n)
	for i := range ids {
		ids[i] = last - int64(n) + int64(i) + 1
	}
	return ids
}

func (e *benchEnv) client(b *testing.B, config *outbound.Config) *outbound.Client {
	b.Helper()
	if config == nil {
		config = &outbound.Config{}
	}
	config.Schema = e.schema
	config.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	client, err := outbound.New(e.pool, config)
	require.NoError(b, err)
	return client
}

// insertOnlyRiver is a River client that only inserts, on the library's
// schema; callers pass the library's queue and attempts per insert.
func (e *benchEnv) insertOnlyRiver(b *testing.B) *river.Client[pgx.Tx] {
	b.Helper()
	rc, err := river.NewClient(riverpgxv5.New(e.pool), &river.Config{
		Schema: e.schema,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	require.NoError(b, err)
	return rc
}

// resetCounters starts the timer, allocation and statement counts afresh.
func (e *benchEnv) resetCounters(b *testing.B) {
	b.ResetTimer()
	e.statements.n.Store(0)
	e.statements.notifies.Store(0)
}

func (e *benchEnv) reportStatements(b *testing.B) {
	b.ReportMetric(float64(e.statements.n.Load())/float64(b.N), "stmts/op")
	b.ReportMetric(float64(e.statements.notifies.Load())/float64(b.N), "notifies/op")
}

// baselineTrigger is Trigger written by hand: in one transaction, River's
// InsertTx of the same job, then the same message row with pgx, returned.
type baselineTrigger struct {
	pool          *pgxpool.Pool
	river         *river.Client[pgx.Tx]
	insertMessage string
}

func newBaselineTrigger(b *testing.B, e *benchEnv) *baselineTrigger {
	return &baselineTrigger{
		pool:  e.pool,
		river: e.insertOnlyRiver(b),
		insertMessage: fmt.Sprintf(`
INSERT INTO %s.messages (id, conversation_id, job_id, template_id, content, metadata)
VALUES ($1, $2, $3, $4, $5, jsonb_build_object('template_id', $4::text, 'status', 'pending', 'bulk_envelope_id', null))
ON CONFLICT DO NOTHING
RETURNING `+sqltext.MessageColumns,
			pgx.Identifier{e.schema}.Sanitize()),
	}
}

func (h *baselineTrigger) trigger(ctx context.Context, conversationID int64) (*outbound.Message, error) {
	tx, err := h.pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	id, err := uuid.NewV7()
	if err != nil {
		return nil, err
	}
	job, err := h.river.InsertTx(ctx, tx, outbound.DeliveryArgs{
		MessageID: id, ConversationID: conversationID, TemplateID: benchTemplate,
	}, &river.InsertOpts{Queue: outbound.DefaultQueue, MaxAttempts: outbound.DefaultMaxAttempts})
	if err != nil {
		return nil, err
	}
	content, template := "Outbound message using template: "+benchTemplate, benchTemplate
	m, err := scanMessageByHand(tx.QueryRow(ctx, h.insertMessage, id, conversationID, job.Job.ID, template, content))
	if err != nil {
		return nil, err
	}
	return m, tx.Commit(ctx)
}

// scanMessageByHand reads a row of internal/sqltext.MessageColumns, as code
// written by hand would. TestRulesMatchSchema checks that order against the
// library's own scan.
func scanMessageByHand(row pgx.Row) (*outbound.Message, error) {
	var (
		m         outbound.Message
		status    string
		envelope  *uuid.UUID
		jobID     *int64
		lastError *string
		sentAt    *time.Time
		rateWait  *time.Time
		cancelBy  *string
		cancelAt  *time.Time
	)
	if err := row.Scan(&m.ID, &m.ConversationID, &m.Role, &m.TemplateID, &m.Content, &status, &envelope,
		&m.Metadata, &jobID, &m.ScheduledAt, &m.Attempts, &lastError, &sentAt, &m.CreatedAt, &m.UpdatedAt, &rateWait,
		&cancelBy, &cancelAt, &m.Data, &m.Rendered, &m.ContentBytes); err != nil {
		return nil, err
	}
	m.Status = outbound.MessageStatus(status)
	return &m, nil
}

// BenchmarkTrigger compares one Trigger with the hand-written baseline.
func BenchmarkTrigger(b *testing.B) {
	ctx := context.Background()
	b.Run("impl=outbound", func(b *testing.B) {
		e := newBenchEnv(b, 4)
		client := e.client(b, nil)
		opts := &outbound.TriggerOpts{TemplateID: benchTemplate}
		warmUp(b, e, func(id int64) error { _, err := client.Trigger(ctx, id, opts); return err })
		b.ReportAllocs()
		e.resetCounters(b)
		for b.Loop() {
			if _, err := client.Trigger(ctx, e.conversations(1)[0], opts); err != nil {
				b.Fatal(err)
			}
		}
		e.reportStatements(b)
	})
	b.Run("impl=baseline", func(b *testing.B) {
		e := newBenchEnv(b, 4)
		h := newBaselineTrigger(b, e)
		warmUp(b, e, func(id int64) error { _, err := h.trigger(ctx, id); return err })
		b.ReportAllocs()
		e.resetCounters(b)
		for b.Loop() {
			if _, err := h.trigger(ctx, e.conversations(1)[0]); err != nil {
				b.Fatal(err)
			}
		}
		e.reportStatements(b)
	})
}

// warmUp runs fn on every connection of the pool at once, so that each has
// connected and prepared its statements before the timer starts.
func warmUp(b *testing.B, e *benchEnv, fn func(conversationID int64) error) {
	b.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, 4*e.pool.Config().MaxConns)
	for range 4 * e.pool.Config().MaxConns {
		wg.Go(func() { errs <- fn(e.conversations(1)[0]) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(b, err)
	}
}

// BenchmarkTriggerConcurrent compares 16 goroutines calling Trigger with 16
// calling the hand-written baseline, on pools of 16 connections.
func BenchmarkTriggerConcurrent(b *testing.B) {
	const goroutines = 16
	ctx := context.Background()
	run := func(b *testing.B, e *benchEnv, trigger func(conversationID int64) error) {
		warmUp(b, e, trigger)
		b.ReportAllocs()
		e.resetCounters(b)
		var (
			left     atomic.Int64
			wg       sync.WaitGroup
			firstErr error
			errOnce  sync.Once
		)
		left.Store(int64(b.N))
		for range goroutines {
			wg.Go(func() {
				for left.Add(-1) >= 0 {
					if err := trigger(e.conversations(1)[0]); err != nil {
						errOnce.Do(func() { firstErr = err })
						return
					}
				}
			})
		}
		wg.Wait()
		b.StopTimer()
		require.NoError(b, firstErr)
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "triggers/s")
		e.reportStatements(b)
	}
	b.Run("impl=outbound", func(b *testing.B) {
		e := newBenchEnv(b, goroutines)
		client := e.client(b, nil)
		opts := &outbound.TriggerOpts{TemplateID: benchTemplate}
		run(b, e, func(id int64) error { _, err := client.Trigger(ctx, id, opts); return err })
	})
	b.Run("impl=baseline", func(b *testing.B) {
		e := newBenchEnv(b, goroutines)
		h := newBaselineTrigger(b, e)
		run(b, e, func(id int64) error { _, err := h.trigger(ctx, id); return err })
	})
}

// benchBulkSizes are the recipient counts BenchmarkBulkTrigger runs.
var benchBulkSizes = []int{1, 25, 100, 1_000, 10_000}

// sequentialTriggerMax is the largest N that impl=sequential runs: N separate
// Trigger calls at N = 10,000 take seconds per op and say nothing new.
const sequentialTriggerMax = 1_000

const benchBody = "We are sorry your order arrived late. Here is what happens next."

// BenchmarkBulkTrigger writes N recipients five ways: BulkTrigger, and
// BulkTrigger under a rate limit; the database floor, the same rows in one
// transaction by COPY or by multi-row inserts of unnest arrays; and N
// sequential Trigger calls.
func BenchmarkBulkTrigger(b *testing.B) {
	ctx := context.Background()
	for _, n := range benchBulkSizes {
		b.Run(fmt.Sprintf("n=%d/impl=outbound", n), func(b *testing.B) {
			e := newBenchEnv(b, 4)
			client := e.client(b, &outbound.Config{MaxBatchSize: n})
			opts := &outbound.BulkTriggerOpts{TemplateID: benchTemplate, RenderedBody: benchBody}
			runBulk(b, e, n, func(ids []int64) error {
				_, err := client.BulkTrigger(ctx, ids, opts)
				return err
			})
		})
		// Under a rate limit: each message's key stored and the bulk
		// beyond the burst parked, in the same transaction.
		b.Run(fmt.Sprintf("n=%d/impl=outbound_limited", n), func(b *testing.B) {
			e := newBenchEnv(b, 4)
			client := e.client(b, &outbound.Config{
				MaxBatchSize: n,
				RateLimits:   map[string]outbound.RateLimit{"sms": {Limit: 50, Per: time.Second}},
				RateLimitKey: func(*outbound.Message) string { return "sms" },
			})
			opts := &outbound.BulkTriggerOpts{TemplateID: benchTemplate, RenderedBody: benchBody}
			runBulk(b, e, n, func(ids []int64) error {
				_, err := client.BulkTrigger(ctx, ids, opts)
				return err
			})
		})
		b.Run(fmt.Sprintf("n=%d/impl=floor_copy", n), func(b *testing.B) {
			e := newBenchEnv(b, 4)
			f := newBulkFloor(e)
			runBulk(b, e, n, func(ids []int64) error { return f.copy(ctx, ids) })
		})
		b.Run(fmt.Sprintf("n=%d/impl=floor_unnest", n), func(b *testing.B) {
			e := newBenchEnv(b, 4)
			f := newBulkFloor(e)
			runBulk(b, e, n, func(ids []int64) error { return f.unnest(ctx, ids) })
		})
		if n > sequentialTriggerMax {
			continue
		}
		b.Run(fmt.Sprintf("n=%d/impl=sequential", n), func(b *testing.B) {
			e := newBenchEnv(b, 4)
			client := e.client(b, nil)
			runBulk(b, e, n, func(ids []int64) error {
				opts := &outbound.TriggerOpts{TemplateID: benchTemplate, Content: benchBody, BulkEnvelopeID: uuid.Must(uuid.NewV7())}
				for _, id := range ids {
					if _, err := client.Trigger(ctx, id, opts); err != nil {
						return err
					}
				}
				return nil
			})
		})
	}
}

// runBulk times write, called with n fresh conversation ids per op, and
// reports time, allocations and statements per recipient and per op.
func runBulk(b *testing.B, e *benchEnv, n int, write func(ids []int64) error) {
	b.Helper()
	require.NoError(b, write(e.conversations(n))) // prepares statements
	b.ReportAllocs()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	e.resetCounters(b)
	for b.Loop() {
		b.StopTimer()
		ids := e.conversations(n)
		b.StartTimer()
		if err := write(ids); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	runtime.ReadMemStats(&after)
	recipients := float64(b.N * n)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/recipients, "ns/recipient")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/recipients, "allocs/recipient")
	e.reportStatements(b)
}

// bulkFloor writes what BulkTrigger writes, the envelope row and N message
// and job rows with the same columns, by hand with the fastest plain SQL:
// nothing read back, no dedup handling, no telemetry.
type bulkFloor struct {
	pool           *pgxpool.Pool
	schema         string
	insertEnvelope string
	nextJobIDs     string
	insertJobs     string
	insertMessages string
}

func newBulkFloor(e *benchEnv) *bulkFloor {
	s := pgx.Identifier{e.schema}.Sanitize()
	return &bulkFloor{
		pool:   e.pool,
		schema: e.schema,
		insertEnvelope: `INSERT INTO ` + s + `.bulk_envelopes
	(id, template_id, rendered_body, recipient_conversation_ids, count, effective_cap, status)
VALUES ($1, $2, $3, $4::bigint[], cardinality($4::bigint[]), cardinality($4::bigint[]), 'submitted')`,
		nextJobIDs: `SELECT nextval('` + s + `.river_job_id_seq') FROM generate_series(1, $1)`,
		insertJobs: `INSERT INTO ` + s + `.river_job (args, kind, max_attempts, queue)
SELECT a, $2, $3, $4 FROM unnest($1::jsonb[]) AS a RETURNING id`,
		insertMessages: `INSERT INTO ` + s + `.messages (id, conversation_id, job_id, template_id, content, bulk_envelope_id, metadata)
SELECT u.id, u.conversation_id, u.job_id, $4, $5, $6, $7
FROM unnest($1::uuid[], $2::bigint[], $3::bigint[]) AS u(id, conversation_id, job_id)`,
	}
}

// floorRows is what one bulk writes, made before its transaction.
type floorRows struct {
	envelopeID uuid.UUID
	messageIDs []uuid.UUID
	jobArgs    [][]byte
	metadata   []byte
}

// write makes one bulk's ids, job args and message metadata, then, in one
// transaction, inserts the envelope and has writeJobsAndMessages do the rest.
func (f *bulkFloor) write(ctx context.Context, ids []int64, writeJobsAndMessages func(tx pgx.Tx, r *floorRows) error) error {
	r := &floorRows{
		envelopeID: uuid.Must(uuid.NewV7()),
		messageIDs: make([]uuid.UUID, len(ids)),
		jobArgs:    make([][]byte, len(ids)),
	}
	for i, conversationID := range ids {
		r.messageIDs[i] = uuid.Must(uuid.NewV7())
		args, err := json.Marshal(outbound.DeliveryArgs{
			MessageID: r.messageIDs[i], ConversationID: conversationID, TemplateID: benchTemplate, BulkEnvelopeID: &r.envelopeID,
		})
		if err != nil {
			return err
		}
		r.jobArgs[i] = args
	}
	var err error
	r.metadata, err = json.Marshal(map[string]any{"template_id": benchTemplate, "status": "pending", "bulk_envelope_id": r.envelopeID})
	if err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, f.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, f.insertEnvelope, r.envelopeID, benchTemplate, benchBody, ids); err != nil {
			return err
		}
		return writeJobsAndMessages(tx, r)
	})
}

// copy writes the jobs and messages with COPY, the job ids reserved first
// from River's sequence so that messages can carry them.
func (f *bulkFloor) copy(ctx context.Context, ids []int64) error {
	return f.write(ctx, ids, func(tx pgx.Tx, r *floorRows) error {
		rows, _ := tx.Query(ctx, f.nextJobIDs, len(ids))
		jobIDs, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return err
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{f.schema, "river_job"},
			[]string{"id", "args", "kind", "max_attempts", "queue"},
			pgx.CopyFromSlice(len(ids), func(i int) ([]any, error) {
				return []any{jobIDs[i], r.jobArgs[i], outbound.DeliveryJobKind, outbound.DefaultMaxAttempts, outbound.DefaultQueue}, nil
			})); err != nil {
			return err
		}
		_, err = tx.CopyFrom(ctx, pgx.Identifier{f.schema, "messages"},
			[]string{"id", "conversation_id", "job_id", "template_id", "content", "bulk_envelope_id", "metadata"},
			pgx.CopyFromSlice(len(ids), func(i int) ([]any, error) {
				return []any{r.messageIDs[i], ids[i], jobIDs[i], benchTemplate, benchBody, r.envelopeID, r.metadata}, nil
			}))
		return err
	})
}

// unnest writes the jobs and then the messages with one multi-row insert
// each, the job ids coming back from the first.
func (f *bulkFloor) unnest(ctx context.Context, ids []int64) error {
	return f.write(ctx, ids, func(tx pgx.Tx, r *floorRows) error {
		rows, _ := tx.Query(ctx, f.insertJobs, r.jobArgs, outbound.DeliveryJobKind, outbound.DefaultMaxAttempts, outbound.DefaultQueue)
		jobIDs, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, f.insertMessages, r.messageIDs, ids, jobIDs, benchTemplate, benchBody, r.envelopeID, r.metadata)
		return err
	})
}

// BenchmarkBulkTriggerHeap measures the heap while 10,000-recipient bulks
// run: peak-heap-MiB is the largest heap in use seen by a sampler every
// millisecond, the whole test binary's heap included.
func BenchmarkBulkTriggerHeap(b *testing.B) {
	benchBulkHeap(b, func([]int64) *outbound.BulkTriggerOpts {
		return &outbound.BulkTriggerOpts{TemplateID: benchTemplate, RenderedBody: benchBody}
	})
}

// benchBulkHeap runs 10,000-recipient bulks with the options optsFor makes
// for their ids, before the timer starts, and reports the peak heap.
func benchBulkHeap(b *testing.B, optsFor func(ids []int64) *outbound.BulkTriggerOpts) {
	const n = 10_000
	ctx := context.Background()
	e := newBenchEnv(b, 4)
	client := e.client(b, &outbound.Config{MaxBatchSize: n})
	first := e.conversations(n)
	_, err := client.BulkTrigger(ctx, first, optsFor(first))
	require.NoError(b, err)
	runtime.GC()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		ticker := time.NewTicker(time.Millisecond)
		defer ticker.Stop()
		for {
			metrics.Read(sample)
			if v := sample[0].Value.Uint64(); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-stop:
				return
			case <-ticker.C:
			}
		}
	})
	b.ReportAllocs()
	e.resetCounters(b)
	for b.Loop() {
		b.StopTimer()
		ids := e.conversations(n)
		opts := optsFor(ids)
		b.StartTimer()
		if _, err := client.BulkTrigger(ctx, ids, opts); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	close(stop)
	wg.Wait()
	b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MiB")
}

// BenchmarkBulkTriggerRefusal refuses a BulkTrigger far over the cap, with n
// recipients against the default cap of 25: the work and allocation a
// refusal costs, and the bytes of the refused envelope's row. The list is
// made before the timer starts; it is the caller's.
func BenchmarkBulkTriggerRefusal(b *testing.B) {
	for _, n := range []int{1_000, 2_000_000} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			ctx := context.Background()
			e := newBenchEnv(b, 4)
			client := e.client(b, nil)
			ids := e.conversations(n)
			opts := &outbound.BulkTriggerOpts{TemplateID: benchTemplate, RenderedBody: benchBody}
			var envelopeID uuid.UUID
			b.ReportAllocs()
			e.resetCounters(b)
			for b.Loop() {
				_, err := client.BulkTrigger(ctx, ids, opts)
				var tooLarge *outbound.BatchTooLargeError
				if !errors.As(err, &tooLarge) {
					b.Fatalf("want a refusal, got %v", err)
				}
				envelopeID = tooLarge.EnvelopeID
			}
			b.StopTimer()
			var rowBytes int
			require.NoError(b, e.pool.QueryRow(ctx, "SELECT pg_column_size(e.*) FROM "+table(e.schema, "bulk_envelopes")+" e WHERE id = $1", envelopeID).Scan(&rowBytes))
			b.ReportMetric(float64(rowBytes), "row-bytes")
		})
	}
}

// benchDeliveryWorkers is MaxWorkers of every side of BenchmarkDelivery.
const benchDeliveryWorkers = 10

// BenchmarkDelivery works b.N delivery jobs three ways, each on a River client
// with the same queue, MaxWorkers, FetchCooldown and other River defaults,
// given the very same job rows: the library's worker with a notifier that
// does nothing; a bare River worker that does nothing; and, as
// impl=lease_jobcompletetx, a River worker that does the library's lease by
// hand with River's public API for the job: the same claim statement, then
// one transaction that records the message sent and completes the job with
// river.JobCompleteTx. The timer runs from Start until the last job is
// completed; the jobs are inserted before it starts. Run it with a fixed
// -benchtime such as 5000x: each op is one job.
//
// At River's default FetchCooldown (100ms) every side is held to about
// MaxWorkers jobs per cooldown; at 1ms the cost of a job shows.
func BenchmarkDelivery(b *testing.B) {
	for _, cooldown := range []time.Duration{outbound.DefaultFetchCooldown, time.Millisecond} {
		b.Run(fmt.Sprintf("fetch_cooldown=%s/impl=outbound", cooldown), func(b *testing.B) {
			e := newBenchEnv(b, benchDeliveryWorkers+4)
			seedDeliveries(b, e)
			benchmarkOutboundDelivery(b, e, &outbound.Config{
				MaxWorkers:    benchDeliveryWorkers,
				FetchCooldown: cooldown,
				Notifier:      outbound.NotifierFunc(func(context.Context, *outbound.Message) error { return nil }),
			})
		})
		// The same, with a subscriber that receives every sent event: what
		// Subscribe costs a delivery.
		b.Run(fmt.Sprintf("fetch_cooldown=%s/impl=outbound_subscribed", cooldown), func(b *testing.B) {
			e := newBenchEnv(b, benchDeliveryWorkers+4)
			seedDeliveries(b, e)
			client := e.client(b, &outbound.Config{
				MaxWorkers:    benchDeliveryWorkers,
				FetchCooldown: cooldown,
				Notifier:      outbound.NotifierFunc(func(context.Context, *outbound.Message) error { return nil }),
			})
			events, unsubscribe, err := client.Subscribe(outbound.EventKindMessageSent)
			require.NoError(b, err)
			received := make(chan int)
			go func() {
				n := 0
				for range events {
					n++
				}
				received <- n
			}()
			runDelivery(b, e, client.Start, client.Stop)
			unsubscribe()
			if n := <-received; n != b.N {
				b.Fatalf("the subscriber received %d events for %d deliveries", n, b.N)
			}
		})
		b.Run(fmt.Sprintf("fetch_cooldown=%s/impl=river", cooldown), func(b *testing.B) {
			e := newBenchEnv(b, benchDeliveryWorkers+4)
			seedDeliveries(b, e)
			benchmarkRiverDelivery(b, e, benchDeliveryWorkers, cooldown,
				func(context.Context, *river.Job[outbound.DeliveryArgs]) error { return nil })
		})
		b.Run(fmt.Sprintf("fetch_cooldown=%s/impl=lease_jobcompletetx", cooldown), func(b *testing.B) {
			e := newBenchEnv(b, benchDeliveryWorkers+4)
			seedDeliveries(b, e)
			benchmarkRiverDelivery(b, e, benchDeliveryWorkers, cooldown, leaseWithJobCompleteTx(e))
		})
	}
}

// BenchmarkDeliverySlowNotifier works b.N delivery jobs whose notifier takes
// 50ms, as a provider's API call does, with 50 workers on pgxpool's default
// pool (4 connections on 2 cores), River's default FetchCooldown: the library,
// and a bare River worker that sleeps 50ms. Run it with -benchtime 400x.
func BenchmarkDeliverySlowNotifier(b *testing.B) {
	const (
		workers = 50
		call    = 50 * time.Millisecond
	)
	b.Run("impl=outbound", func(b *testing.B) {
		e := newBenchEnv(b, 0)
		seedDeliveries(b, e)
		benchmarkOutboundDelivery(b, e, &outbound.Config{
			MaxWorkers: workers,
			Notifier: outbound.NotifierFunc(func(context.Context, *outbound.Message) error {
				time.Sleep(call)
				return nil
			}),
		})
	})
	b.Run("impl=river", func(b *testing.B) {
		e := newBenchEnv(b, 0)
		seedDeliveries(b, e)
		benchmarkRiverDelivery(b, e, workers, outbound.DefaultFetchCooldown, func(context.Context, *river.Job[outbound.DeliveryArgs]) error {
			time.Sleep(call)
			return nil
		})
	})
}

// seedDeliveries writes b.N messages and their delivery jobs with BulkTrigger,
// so that every side of a delivery benchmark works the very same rows.
func seedDeliveries(b *testing.B, e *benchEnv) {
	b.Helper()
	client := e.client(b, &outbound.Config{MaxBatchSize: 10_000})
	for left := b.N; left > 0; left -= 10_000 {
		_, err := client.BulkTrigger(context.Background(), e.conversations(min(left, 10_000)), &outbound.BulkTriggerOpts{
			TemplateID: benchTemplate, RenderedBody: benchBody,
		})
		require.NoError(b, err)
	}
}

// benchmarkOutboundDelivery works the jobs with the library's own worker.
func benchmarkOutboundDelivery(b *testing.B, e *benchEnv, config *outbound.Config) {
	client := e.client(b, config)
	runDelivery(b, e, client.Start, client.Stop)
}

// benchmarkRiverDelivery works the jobs with a River client whose worker is
// work.
func benchmarkRiverDelivery(b *testing.B, e *benchEnv, workers int, cooldown time.Duration, work func(context.Context, *river.Job[outbound.DeliveryArgs]) error) {
	registered := river.NewWorkers()
	river.AddWorker(registered, river.WorkFunc(work))
	rc, err := river.NewClient(riverpgxv5.New(e.pool), &river.Config{
		Schema:        e.schema,
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		Queues:        map[string]river.QueueConfig{outbound.DefaultQueue: {MaxWorkers: workers}},
		FetchCooldown: cooldown,
		Workers:       registered,
	})
	require.NoError(b, err)
	runDelivery(b, e, rc.Start, rc.Stop)
}

// leaseWithJobCompleteTx is the library's lease written by hand with River's
// public API for the job: the library's claim statement, a notifier that does
// nothing, then one transaction that records the message sent, guarded by
// the claim id, and completes the job with river.JobCompleteTx.
func leaseWithJobCompleteTx(e *benchEnv) func(context.Context, *river.Job[outbound.DeliveryArgs]) error {
	s := pgx.Identifier{e.schema}.Sanitize()
	claim := `UPDATE ` + s + `.messages
SET status = 'delivering', attempts = greatest(attempts + 1, $3), claim_id = $2,
	claimed_until = now() + make_interval(secs => 50),
	metadata = jsonb_set(metadata, '{status}', '"delivering"'), updated_at = now()
WHERE id = $1 AND status IN ('pending', 'failed')
RETURNING ` + sqltext.MessageColumns
	record := `UPDATE ` + s + `.messages
SET status = 'sent', sent_at = now(), last_error = NULL, claimed_until = NULL,
	metadata = jsonb_set(metadata, '{status}', '"sent"'), updated_at = now()
WHERE id = $1 AND claim_id = $2 AND status = 'delivering'`
	return func(ctx context.Context, job *river.Job[outbound.DeliveryArgs]) error {
		claimID := uuid.New()
		if _, err := scanMessageByHand(e.pool.QueryRow(ctx, claim, job.Args.MessageID, claimID, job.Attempt)); err != nil {
			return err
		}
		return pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, record, job.Args.MessageID, claimID); err != nil {
				return err
			}
			_, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job)
			return err
		})
	}
}

// runDelivery starts a worker, waits until b.N delivery jobs are completed,
// and stops it, timing from start to the last completion. Besides jobs/s it
// reports the CPU time each job cost, over the timed run: go-cpu-us/op is
// this process's (the worker, River and pgx), db-cpu-us/op the rest of the
// machine's, which is PostgreSQL's, since the two share the machine.
func runDelivery(b *testing.B, e *benchEnv, start, stop func(context.Context) error) {
	b.Helper()
	ctx := context.Background()
	jobs := pgx.Identifier{e.schema, "river_job"}.Sanitize()
	var lastJob int64
	require.NoError(b, testPool.QueryRow(ctx, "SELECT max(id) FROM "+jobs+" WHERE kind = $1", outbound.DeliveryJobKind).Scan(&lastJob))
	b.ReportAllocs()
	e.resetCounters(b)
	cpu := startCPUCount(b)
	require.NoError(b, start(ctx))
	// Polled on the shared test pool, so the worker's pool is all its own.
	// Jobs are worked in id order, so the last job's state, one index
	// lookup, says when to count them all; counting every 10ms would cost
	// the database more per job on the slower side.
	for done := false; !done; {
		time.Sleep(10 * time.Millisecond)
		var state string
		require.NoError(b, testPool.QueryRow(ctx, "SELECT state FROM "+jobs+" WHERE id = $1", lastJob).Scan(&state))
		if state != "completed" {
			continue
		}
		var left int
		require.NoError(b, testPool.QueryRow(ctx, "SELECT count(*) FROM "+jobs+" WHERE kind = $1 AND state <> 'completed'",
			outbound.DeliveryJobKind).Scan(&left))
		done = left == 0
	}
	b.StopTimer()
	cpu.report(b)
	e.reportStatements(b)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
	require.NoError(b, stop(ctx))
}

// cpuCount is the CPU time used so far by this process and by the machine.
type cpuCount struct{ self, machine time.Duration }

func startCPUCount(b *testing.B) cpuCount {
	b.Helper()
	return readCPUCount(b)
}

// report reports the CPU time per op since c was read.
func (c cpuCount) report(b *testing.B) {
	b.Helper()
	now := readCPUCount(b)
	self, machine := now.self-c.self, now.machine-c.machine
	b.ReportMetric(float64(self.Microseconds())/float64(b.N), "go-cpu-us/op")
	// The machine's count is in 10ms ticks, this process's finer: over a
	// short run the difference can fall below zero.
	b.ReportMetric(float64(max(machine-self, 0).Microseconds())/float64(b.N), "db-cpu-us/op")
}

func readCPUCount(b *testing.B) cpuCount {
	b.Helper()
	var usage syscall.Rusage
	require.NoError(b, syscall.Getrusage(syscall.RUSAGE_SELF, &usage))
	self := time.Duration(usage.Utime.Nano() + usage.Stime.Nano())
	// The first line of /proc/stat sums every CPU's time, in USER_HZ
	// (100ths of a second): user, nice, system, idle, iowait, irq, softirq.
	stat, err := os.ReadFile("/proc/stat")
	require.NoError(b, err)
	fields := strings.Fields(strings.SplitN(string(stat), "\n", 2)[0])
	var busy int64
	for i, f := range fields[1:8] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		n, err := strconv.ParseInt(f, 10, 64)
		require.NoError(b, err)
		busy += n
	}
	return cpuCount{self: self, machine: time.Duration(busy) * 10 * time.Millisecond}
}
