package outbound_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/cairnloop/outbound"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// TestRaceTriggersAndBulkReplays races, on the same dedup keys, single
// triggers carrying an envelope id against a bulk with that envelope id and
// its replays: every key ends with exactly one live message, every caller
// was handed that message, and no job is left without its message.
func TestRaceTriggersAndBulkReplays(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	b := setup(t, withConfig(&outbound.Config{MaxBatchSize: 40}))
	envelopeID := uuid.Must(uuid.NewV7())
	recipients := make([]int64, 40)
	for i := range recipients {
		recipients[i] = int64(i + 1)
	}

	const (
		bulkRacers    = 4
		triggerRacers = 8
		triggersEach  = 20
	)
	var (
		mu       sync.Mutex
		handedTo = map[int64]map[uuid.UUID]bool{} // conversation -> message ids callers got
		replays  int
		wg       sync.WaitGroup
		start    = make(chan struct{})
		errs     = make(chan error, bulkRacers+triggerRacers*triggersEach)
	)
	record := func(conversationID int64, id uuid.UUID) {
		mu.Lock()
		defer mu.Unlock()
		if handedTo[conversationID] == nil {
			handedTo[conversationID] = map[uuid.UUID]bool{}
		}
		handedTo[conversationID][id] = true
	}
	for range bulkRacers {
		wg.Go(func() {
			<-start
			res, err := b.client.BulkTrigger(ctx, recipients, &outbound.BulkTriggerOpts{
				TemplateID: "race", RenderedBody: "b", EnvelopeID: envelopeID,
			})
			if err != nil {
				errs <- err
				return
			}
			for i, m := range res.Messages {
				if m.ConversationID != recipients[i] {
					errs <- fmt.Errorf("message %d is for conversation %d, not %d", i, m.ConversationID, recipients[i])
					return
				}
				record(m.ConversationID, m.ID)
			}
			if res.Replayed {
				mu.Lock()
				replays++
				mu.Unlock()
			}
		})
	}
	for range triggerRacers {
		wg.Go(func() {
			<-start
			for range triggersEach {
				conversationID := recipients[rand.IntN(len(recipients))]
				res, err := b.client.Trigger(ctx, conversationID, &outbound.TriggerOpts{
					TemplateID: "race", BulkEnvelopeID: envelopeID,
				})
				if err != nil {
					errs <- err
					return
				}
				record(conversationID, res.Message.ID)
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	require.Equal(t, bulkRacers-1, replays, "one bulk wrote, the others replayed it")
	for _, conversationID := range recipients {
		require.Len(t, handedTo[conversationID], 1, "callers for conversation %d were handed different messages", conversationID)
	}
	var live, messages, jobs, orphanJobs int
	require.NoError(t, testPool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM `+table(b.schema, "messages")+` WHERE status = 'pending'),
		(SELECT count(*) FROM `+table(b.schema, "messages")+`),
		(SELECT count(*) FROM `+table(b.schema, "river_job")+`),
		(SELECT count(*) FROM `+table(b.schema, "river_job")+` j WHERE NOT EXISTS (
			SELECT 1 FROM `+table(b.schema, "messages")+` m WHERE m.job_id = j.id))`).
		Scan(&live, &messages, &jobs, &orphanJobs))
	require.Equal(t, len(recipients), live, "one live message per key")
	require.Equal(t, len(recipients), messages, "no row written for a lost race")
	require.Equal(t, len(recipients), jobs)
	require.Zero(t, orphanJobs)
}

// pauseBeforeStatement is a pgx tracer that runs hook once, before the first
// statement it sees whose text contains all of parts, so that a test can act
// between two statements of the library's own.
type pauseBeforeStatement struct {
	parts []string
	hook  func()
	once  sync.Once
}

func (p *pauseBeforeStatement) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	for _, part := range p.parts {
		if !strings.Contains(d.SQL, part) {
			return ctx
		}
	}
	p.once.Do(p.hook)
	return ctx
}

func (p *pauseBeforeStatement) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// TestDedupKeyFreedDuringTrigger frees a dedup key between the statement
// that finds it held and the one that reads its holder: the holder is
// cancelled right then, from another connection. The call writes its message
// after all, as if the key had been free from the start. Before, it failed
// with an untyped "dedup key ... changed during the call; retry" (11 of
// 12,104 racing triggers in one run), which the example service answered
// with a 500.
func TestDedupKeyFreedDuringTrigger(t *testing.T) {
	t.Parallel()

	// Racing: 8 goroutines trigger one key and cancel whatever message they
	// are handed, 250 times each (100 under -short), so that keys are taken
	// and freed between any two statements of any call. Every trigger
	// succeeds.
	t.Run("Racing", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		b := setup(t)
		const racers = 8
		rounds := 250
		if testing.Short() {
			rounds = 100
		}
		var (
			wg   sync.WaitGroup
			errs = make(chan error, racers*rounds)
		)
		for range racers {
			wg.Go(func() {
				for range rounds {
					res, err := b.client.Trigger(ctx, 1, &outbound.TriggerOpts{TemplateID: "t"})
					if err != nil {
						errs <- err
						continue
					}
					if err := b.client.CancelMessage(ctx, res.Message.ID, nil); err != nil {
						errs <- err
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		var failed []string
		for err := range errs {
			failed = append(failed, err.Error())
		}
		t.Logf("%d triggers and cancels, %d messages written, %d calls failed", racers*rounds, countRows(t, b.schema, "messages"), len(failed))
		require.Empty(t, failed)
	})

	for _, bulk := range []bool{false, true} {
		t.Run(fmt.Sprintf("Bulk=%t", bulk), func(t *testing.T) {
			t.Parallel()
			ctx := ctxT(t)
			schema := migratedSchema(t)
			other, err := outbound.New(testPool, &outbound.Config{Schema: schema})
			require.NoError(t, err)
			envelopeID := uuid.Must(uuid.NewV7())
			// Conversation 1's holder is cancelled mid-call; conversation 2's
			// stays, and is a duplicate.
			freed := mustTrigger(ctx, t, other, 1, &outbound.TriggerOpts{TemplateID: "t", BulkEnvelopeID: envelopeID})
			kept := mustTrigger(ctx, t, other, 2, &outbound.TriggerOpts{TemplateID: "t", BulkEnvelopeID: envelopeID})

			pause := &pauseBeforeStatement{
				// SelectLiveMessagesByKey: the read of the holders.
				parts: []string{"SELECT", "holds_dedup_key", "coalesce(bulk_envelope_id"},
				hook:  func() { require.NoError(t, other.CancelMessage(ctx, freed.Message.ID, nil)) },
			}
			pool := newTestPool(t, 2, func(c *pgxpool.Config) { c.ConnConfig.Tracer = pause })
			client, err := outbound.New(pool, &outbound.Config{Schema: schema})
			require.NoError(t, err)

			var got []*outbound.Message
			if bulk {
				res, err := client.BulkTrigger(ctx, []int64{1, 2}, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b", EnvelopeID: envelopeID})
				require.NoError(t, err)
				got = res.Messages
				require.Equal(t, kept.Message.ID, got[1].ID, "conversation 2's holder")
			} else {
				res, err := client.Trigger(ctx, 1, &outbound.TriggerOpts{TemplateID: "t", BulkEnvelopeID: envelopeID})
				require.NoError(t, err)
				require.False(t, res.Duplicate)
				got = []*outbound.Message{res.Message}
			}
			called := false
			pause.once.Do(func() { called = true })
			require.False(t, called, "the holders were never read")

			require.NotEqual(t, freed.Message.ID, got[0].ID, "a new message for the freed key")
			require.Equal(t, outbound.MessageStatusPending, got[0].Status)
			stored, err := client.Message(ctx, got[0].ID)
			require.NoError(t, err)
			require.Equal(t, got[0].JobID, stored.JobID)
			require.Equal(t, "outbound_delivery", jobByID(t, schema, stored.JobID).Kind)
			// The holders' two jobs, and the new message's: none orphaned.
			require.Equal(t, 3, countRows(t, schema, "river_job"))
			require.Equal(t, 3, countRows(t, schema, "messages"))
		})
	}
}
