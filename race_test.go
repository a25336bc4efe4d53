package outbound_test

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/cairnloop/outbound"
	"github.com/google/uuid"
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
