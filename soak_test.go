package outbound_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnloop/outbound"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// soakDuration is how long TestSoak keeps its load up, and
// shortSoakDuration how long under go test -short; OUTBOUND_SOAK_DURATION (a
// Go duration) overrides both for a longer run.
const (
	soakDuration      = time.Minute
	shortSoakDuration = 2 * time.Second
)

// soakRequest is a bulk the soak sent, kept to replay and to cancel.
type soakRequest struct {
	ids        []int64
	envelopeID uuid.UUID
}

// TestSoak keeps a mixed load up for about a minute: triggers with repeated
// keys, bulks, bulk replays, cancels of messages and envelopes, and deliveries
// through a notifier that fails one call in five, and every call for one
// conversation in 97, a dead address whose messages are surely discarded
// however short the run. Then it lets retries run
// out, reconciles, and checks that every message ended sent, discarded or
// cancelled, every job is finished, the telemetry counters agree with the
// rows, and no goroutine is left. It does not run in parallel, so that the
// goroutine check sees its own goroutines only.
func TestSoak(t *testing.T) {
	duration := soakDuration
	if testing.Short() {
		duration = shortSoakDuration
	}
	if d, err := time.ParseDuration(os.Getenv("OUTBOUND_SOAK_DURATION")); err == nil {
		duration = d
	}
	before := goleak.IgnoreCurrent()
	ctx, cancel := context.WithTimeout(context.Background(), duration+2*waitCeiling)
	defer cancel()

	reader, providers := newTelemetryRecorder()
	var notified, notifyFailed atomic.Int64
	notifier := outbound.NotifierFunc(func(ctx context.Context, msg *outbound.Message) error {
		notified.Add(1)
		if msg.ConversationID%97 == 0 || rand.IntN(5) == 0 {
			notifyFailed.Add(1)
			return errors.New("provider unavailable")
		}
		return nil
	})
	schema := migratedSchema(t)
	pool := newTestPool(t, 16)
	client, err := outbound.New(pool, &outbound.Config{
		Schema: schema, MaxBatchSize: 25, Notifier: notifier, MaxAttempts: 3,
		MaxWorkers: 8, FetchCooldown: 5 * time.Millisecond, RetryPolicy: fixedRetry(50 * time.Millisecond),
		TracerProvider: providers.tracer, MeterProvider: providers.meter,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	require.NoError(t, err)
	require.NoError(t, client.Start(ctx))

	var (
		mu       sync.Mutex
		bulks    []soakRequest
		messages []uuid.UUID
		ops      = map[string]int{}
		loadErr  error
		loadCtx  context.Context
		stopLoad context.CancelFunc
		wg       sync.WaitGroup
		retries  atomic.Int64
	)
	loadCtx, stopLoad = context.WithCancel(ctx)
	defer stopLoad()
	// The load runs for duration, and on until it has made a message of
	// each final status the checks below expect (a discard needs three
	// failed calls in a row, which a slow machine's short run may not
	// reach): how long that takes is the machine's business.
	wg.Go(func() {
		defer stopLoad()
		started := time.Now()
		for time.Since(started) < duration+waitCeiling {
			time.Sleep(50 * time.Millisecond)
			if time.Since(started) < duration {
				continue
			}
			var discarded, cancelled bool
			if err := testPool.QueryRow(ctx, "SELECT bool_or(status = 'discarded'), bool_or(status = 'cancelled') FROM "+
				table(schema, "messages")).Scan(&discarded, &cancelled); err == nil && discarded && cancelled {
				return
			}
		}
	})
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		loadErr = errors.Join(loadErr, err)
	}
	// A call that met a dedup key held by a message cancelled in the same
	// moment asks to be retried; cancels racing triggers make that happen.
	failUnlessRetry := func(err error) {
		if strings.HasSuffix(err.Error(), "during the call; retry") {
			retries.Add(1)
			return
		}
		fail(err)
	}
	pick := func() (soakRequest, uuid.UUID, bool) {
		mu.Lock()
		defer mu.Unlock()
		if len(bulks) == 0 || len(messages) == 0 {
			return soakRequest{}, uuid.Nil, false
		}
		return bulks[rand.IntN(len(bulks))], messages[rand.IntN(len(messages))], true
	}
	for range 4 {
		wg.Go(func() {
			for loadCtx.Err() == nil {
				// Paced so that deliveries keep up, as in a service: the soak
				// is of a steady state, not of a backlog.
				time.Sleep(time.Duration(20+rand.IntN(20)) * time.Millisecond)
				op := rand.IntN(10)
				prev, messageID, havePrev := pick()
				var name string
				switch {
				case op < 4:
					name = "trigger"
					res, err := client.Trigger(ctx, 1+rand.Int64N(2000), &outbound.TriggerOpts{TemplateID: []string{"a", "b"}[rand.IntN(2)]})
					if err != nil {
						failUnlessRetry(err)
						continue
					}
					mu.Lock()
					messages = append(messages, res.Message.ID)
					mu.Unlock()
				case op < 7 || !havePrev:
					name = "bulk"
					req := soakRequest{envelopeID: uuid.Must(uuid.NewV7())}
					seen := map[int64]bool{}
					for range 1 + rand.IntN(25) {
						id := 1 + rand.Int64N(2000)
						if !seen[id] {
							seen[id] = true
							req.ids = append(req.ids, id)
						}
					}
					res, err := client.BulkTrigger(ctx, req.ids, &outbound.BulkTriggerOpts{TemplateID: "bulk", RenderedBody: "body", EnvelopeID: req.envelopeID})
					if err != nil {
						failUnlessRetry(err)
						continue
					}
					mu.Lock()
					bulks = append(bulks, req)
					messages = append(messages, messageIDs(res.Messages)...)
					mu.Unlock()
				case op == 7:
					name = "replay"
					res, err := client.BulkTrigger(ctx, prev.ids, &outbound.BulkTriggerOpts{TemplateID: "bulk", RenderedBody: "body", EnvelopeID: prev.envelopeID})
					if err != nil {
						fail(err)
					} else if !res.Replayed {
						fail(errors.New("a replay was not replayed"))
					}
				case op == 8:
					name = "cancel_message"
					if err := client.CancelMessage(ctx, messageID, nil); err != nil && !errors.Is(err, outbound.ErrNotCancellable) {
						fail(err)
					}
				default:
					name = "cancel_envelope"
					if _, err := client.CancelEnvelope(ctx, prev.envelopeID, nil); err != nil && !errors.Is(err, outbound.ErrNotCancellable) {
						fail(err)
					}
				}
				mu.Lock()
				ops[name]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	require.NoError(t, loadErr)
	t.Logf("load for %s: %v (%d calls asked to be retried); notifier calls %d, failed %d",
		duration, ops, retries.Load(), notified.Load(), notifyFailed.Load())

	// Retries run out within MaxAttempts; then nothing may be left undelivered.
	undelivered := func() int {
		var n int
		require.NoError(t, testPool.QueryRow(ctx, "SELECT count(*) FROM "+table(schema, "messages")+
			" WHERE status IN ('pending', 'delivering', 'failed')").Scan(&n))
		return n
	}
	require.Eventually(t, func() bool { return undelivered() == 0 }, waitCeiling, 50*time.Millisecond,
		"messages still pending, in flight or failed after the load")
	settled, err := client.Reconcile(ctx)
	require.NoError(t, err)
	require.Zero(t, settled, "reconcile found messages whose job ended without a result")
	require.NoError(t, client.Stop(ctx))

	byStatus := map[string]int{}
	rows, err := testPool.Query(ctx, "SELECT status, count(*) FROM "+table(schema, "messages")+" GROUP BY status")
	require.NoError(t, err)
	for rows.Next() {
		var status string
		var n int
		require.NoError(t, rows.Scan(&status, &n))
		byStatus[status] = n
	}
	require.NoError(t, rows.Err())
	var unfinishedJobs int
	require.NoError(t, testPool.QueryRow(ctx, "SELECT count(*) FROM "+table(schema, "river_job")+
		" WHERE kind = 'outbound_delivery' AND state NOT IN ('completed', 'cancelled', 'discarded')").Scan(&unfinishedJobs))
	deliveries := deliveryCounts(t, reader)
	t.Logf("messages by status: %v; deliveries: %v", byStatus, deliveries)

	total := 0
	for _, n := range byStatus {
		total += n
	}
	require.Equal(t, total, byStatus["sent"]+byStatus["discarded"]+byStatus["cancelled"],
		"every message ended sent, discarded or cancelled")
	require.Positive(t, byStatus["sent"])
	require.Positive(t, byStatus["discarded"], "the dead addresses' messages are discarded after 3 attempts")
	require.Positive(t, byStatus["cancelled"])
	require.Zero(t, unfinishedJobs, "a delivery job was left unfinished")

	// The counters agree with the rows.
	require.Equal(t, int64(byStatus["sent"]), deliveries["sent/notifier_ok"], "sent deliveries against sent rows")
	require.Equal(t, int64(byStatus["discarded"]), deliveries["discarded/notifier_returned_error"], "discarded deliveries against discarded rows")
	// A failed call ends its attempt failed, or discarded on the last
	// attempt, or cancelled when CancelEnvelope met the message in flight.
	require.Equal(t, notifyFailed.Load(), deliveries["failed/notifier_returned_error"]+deliveries["discarded/notifier_returned_error"]+
		deliveries["cancelled/notifier_returned_error"], "failed deliveries against the notifier's failures")
	require.Equal(t, int64(total), pointSums(t, reader, "outbound.trigger.messages", byOutcome)["triggered"], "triggered counter against message rows")
	require.Equal(t, map[string]int64{"pending": 0, "delivering": 0, "failed": 0}, gaugeByStatus(t, reader), "no backlog is left")
	// No metric attribute carries an id, whatever the outcome.
	idLike := regexp.MustCompile(`[0-9]`)
	for _, sm := range collect(t, reader).ScopeMetrics {
		for _, m := range sm.Metrics {
			for _, set := range metricAttributeSets(t, m) {
				for _, kv := range set.ToSlice() {
					require.Contains(t, []string{"outcome", "reason", "status"}, string(kv.Key), "metric %s", m.Name)
					require.NotRegexp(t, idLike, kv.Value.String(), "metric %s attribute %s", m.Name, kv.Key)
				}
			}
		}
	}

	pool.Close()
	goleak.VerifyNone(t, before)
}
