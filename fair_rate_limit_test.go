package outbound_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/cairnloop/outbound"
)

// callIndex is the position of a message's first call among a notifier's
// calls, or -1.
func callIndex(calls []notifierCall, id uuid.UUID) int {
	return slices.IndexFunc(calls, func(c notifierCall) bool { return c.Message.ID == id })
}

// waitForCalls waits until the notifier has received at least n calls.
func waitForCalls(t *testing.T, n *recordingNotifier, want int) {
	t.Helper()
	require.Eventually(t, func() bool { return len(n.Calls()) >= want }, waitCeiling, time.Millisecond)
}

// limitedConfig is a config with one rate limit on key "sms" for every
// message, polling fast so that waits are the limit's, not River's.
func limitedConfig(n outbound.Notifier, l outbound.RateLimit) *outbound.Config {
	return &outbound.Config{
		Notifier:          n,
		RateLimits:        map[string]outbound.RateLimit{"sms": l},
		RateLimitKey:      func(*outbound.Message) string { return "sms" },
		MaxBatchSize:      2000,
		MaxWorkers:        20,
		FetchCooldown:     10 * time.Millisecond,
		FetchPollInterval: 100 * time.Millisecond,
	}
}

// TestFairRateLimits holds the limit's order: a key's slots go to its most
// urgent due message, bulks take turns, and nothing that no longer waits
// holds a slot. The tests assert order and counts, by the calls the
// Notifier receives, never how long a wait took on this machine.
func TestFairRateLimits(t *testing.T) {
	t.Parallel()

	// A one-to-one follow-up (priority 1) triggered while a bulk (priority
	// 2) drains its key is among the next few calls.
	t.Run("PriorityWithinKey", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		notifier := &recordingNotifier{}
		limit := outbound.RateLimit{Limit: 50, Per: time.Second, Burst: 5}
		b := setup(t, working(), withConfig(limitedConfig(notifier, limit)))
		const n = 300
		mustBulkTrigger(ctx, t, b.client, conversations(n), &outbound.BulkTriggerOpts{TemplateID: "bulk", RenderedBody: "body"})
		waitForCalls(t, notifier, 30)

		var followUps []uuid.UUID
		for i := range 3 {
			res := mustTrigger(ctx, t, b.client, int64(10_000+i), &outbound.TriggerOpts{TemplateID: "follow-up"})
			followUps = append(followUps, res.Message.ID)
			// Counted once the follow-up is seen parked, after it
			// parked: how long its first fetch took is the machine's, not
			// the limit's. One sent at its first claim took a free slot.
			parkedAt := -1
			require.Eventually(t, func() bool {
				m, err := b.client.Message(ctx, res.Message.ID)
				require.NoError(t, err)
				if m.Status == outbound.MessageStatusPending && !m.RateLimitedUntil.IsZero() {
					parkedAt = len(notifier.Calls())
					return true
				}
				return m.Status == outbound.MessageStatusSent || m.Status == outbound.MessageStatusDelivering
			}, waitCeiling, time.Millisecond)
			waitForStatus(t, b.client, []uuid.UUID{res.Message.ID}, outbound.MessageStatusSent)
			at := callIndex(notifier.Calls(), res.Message.ID)
			t.Logf("follow-up %d: call %d, seen parked after call %d", i, at, parkedAt)
			if parkedAt < 0 {
				continue
			}
			// Ahead of it at most: the slots released before it parked
			// and not yet claimed (the burst, at most), those its own
			// release waits behind until they are claimed (the burst
			// again), the few released while its job is fetched, and the
			// calls claimed and not yet started. With bookings it would
			// wait behind the whole bulk, 270 calls.
			require.LessOrEqualf(t, at-parkedAt, 3*limit.Burst+5,
				"follow-up %d was call %d; %d calls had started when it was seen parked", i, at, parkedAt)
		}
		waitForStatus(t, b.client, followUps, outbound.MessageStatusSent)
		require.Less(t, len(notifier.Calls()), n+len(followUps), "the follow-ups went before the bulk finished")
	})

	// A bulk of 20 triggered during a larger bulk's drain takes turns with
	// it, and messages triggered one by one count as one share: they are
	// spaced like a bulk's, not all put first.
	t.Run("SharedBetweenEnvelopes", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		notifier := &recordingNotifier{}
		limit := outbound.RateLimit{Limit: 50, Per: time.Second, Burst: 5}
		b := setup(t, working(), withConfig(limitedConfig(notifier, limit)))
		big := mustBulkTrigger(ctx, t, b.client, conversations(400), &outbound.BulkTriggerOpts{TemplateID: "big", RenderedBody: "body"})
		// Into the drain.
		waitForCalls(t, notifier, 30)

		// Counted from the trigger, which placed every message of the
		// small bulk in the key's order.
		before := len(notifier.Calls())
		small := mustBulkTrigger(ctx, t, b.client, conversations(20), &outbound.BulkTriggerOpts{TemplateID: "small", RenderedBody: "body"})
		waitForStatus(t, b.client, messageIDs(small.Messages), outbound.MessageStatusSent)
		calls := notifier.Calls()
		last := 0
		for _, m := range small.Messages {
			last = max(last, callIndex(calls, m.ID))
		}
		// Its 20 calls came within the next 20 of each share, the slots
		// already released (the burst at most) and the burst's head start
		// of the big one, and the calls claimed before its trigger.
		require.LessOrEqualf(t, last-before, 2*20+2*limit.Burst+5,
			"the small bulk's last call was call %d, %d after its trigger", last, last-before)

		// Twenty messages triggered one by one, at the same priority as
		// the big bulk.
		var singles []uuid.UUID
		for i := range 20 {
			res := mustTrigger(ctx, t, b.client, int64(20_000+i), &outbound.TriggerOpts{TemplateID: "single", Priority: outbound.DefaultBulkTriggerPriority})
			singles = append(singles, res.Message.ID)
		}
		waitForStatus(t, b.client, singles, outbound.MessageStatusSent)
		calls = notifier.Calls()
		first, lastSingle := len(calls), 0
		for _, id := range singles {
			i := callIndex(calls, id)
			first, lastSingle = min(first, i), max(lastSingle, i)
		}
		bigIDs := map[uuid.UUID]bool{}
		for _, m := range big.Messages {
			bigIDs[m.ID] = true
		}
		bigBetween := 0
		for _, c := range calls[first : lastSingle+1] {
			if bigIDs[c.Message.ID] {
				bigBetween++
			}
		}
		// Spaced as one share, the singles alternate with the big bulk
		// (9 to 20 of its calls between them seen here); each its own
		// share, they would all go first, behind only the slots already
		// released (3 seen).
		require.GreaterOrEqualf(t, bigBetween, 6, "between the first and the last single (calls %d to %d), %d calls of the big bulk", first, lastSingle, bigBetween)
		waitForStatus(t, b.client, messageIDs(big.Messages), outbound.MessageStatusSent)
	})

	// A drain's messages park at their trigger, not at a claim: River
	// fetches each once, when its slot is released, but for the few
	// released that lost their slot to another claim. None waits for its
	// job's own safety net: the dispatcher released every slot.
	t.Run("NeverIdle", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		reader, providers := newTelemetryRecorder()
		notifier := &recordingNotifier{}
		limit := outbound.RateLimit{Limit: 50, Per: time.Second, Burst: 10}
		config := limitedConfig(notifier, limit)
		config.MeterProvider = providers.meter
		first := setup(t, working(), withConfig(config))
		second := limitedConfig(notifier, limit)
		second.MeterProvider = providers.meter
		setup(t, working(), withConfig(second), onSchema(first.schema))
		const n = 300
		started := time.Now()
		res := mustBulkTrigger(ctx, t, first.client, conversations(n), &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "body"})
		waitForStatus(t, first.client, messageIDs(res.Messages), outbound.MessageStatusSent)
		// Both processes' attempts: 0 or 1 parks seen here, where every
		// message once parked at its claim before it was placed at its
		// trigger.
		parks := deliveries(t, reader, "deferred", "rate_limit_wait")
		require.Equal(t, int64(n), deliveries(t, reader, "sent", "notifier_ok"))
		require.LessOrEqualf(t, parks, int64(n/10), "%d parks at a claim for %d messages", parks, n)
		grants := grants(notifier)
		require.Len(t, grants, n)
		requireWithinLimit(t, grants, limit)
		// A job woken by its safety net, not by a dispatcher, wakes
		// parkSlack (30s) after its turn: the drain of 6 seconds of
		// slots would have taken that much longer.
		require.Less(t, time.Since(started), 30*time.Second, "a parked message waited for its job's safety net")
	})

	// A message's key is computed once, at its trigger, and stored with
	// it; a bulk's messages beyond the key's burst park there, placed in
	// the key's order, their jobs asleep, so that River never fetches
	// them only for them to park. A key without a limit stores nothing.
	t.Run("PlacedAtTrigger", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		notifier := &recordingNotifier{}
		var keyCalls atomic.Int64
		limit := outbound.RateLimit{Limit: 1, Per: time.Hour, Burst: 3}
		config := limitedConfig(notifier, limit)
		config.RateLimitKey = func(m *outbound.Message) string {
			keyCalls.Add(1)
			return m.TemplateID
		}
		// Triggered with no process working the queue.
		b := setup(t, withConfig(config))
		res := mustBulkTrigger(ctx, t, b.client, conversations(10), &outbound.BulkTriggerOpts{TemplateID: "sms", RenderedBody: "body"})
		email := mustTrigger(ctx, t, b.client, 100, &outbound.TriggerOpts{TemplateID: "email"})
		require.EqualValues(t, 11, keyCalls.Load(), "one key per message, at its trigger")

		jobs := hostRiver(t, b.schema)
		var lastVT time.Time
		for i, m := range res.Messages {
			read, err := b.client.Message(ctx, m.ID)
			require.NoError(t, err)
			require.Equal(t, read, m, "the result is the row")
			var (
				key *string
				vt  time.Time
			)
			require.NoError(t, testPool.QueryRow(ctx, "SELECT rate_key, rate_vt FROM "+table(b.schema, "messages")+" WHERE id = $1", m.ID).Scan(&key, &vt))
			require.Equal(t, "sms", *key)
			require.Truef(t, vt.After(lastVT), "message %d is placed after the one before it", i)
			lastVT = vt
			job, err := jobs.JobGet(ctx, m.JobID)
			require.NoError(t, err)
			if i < limit.Burst {
				require.Zerof(t, m.RateLimitedUntil, "message %d is within the burst", i)
				require.Equal(t, rivertype.JobStateAvailable, job.State)
				continue
			}
			require.NotZerof(t, m.RateLimitedUntil, "message %d is beyond the burst: parked", i)
			require.Equal(t, rivertype.JobStateScheduled, job.State)
			// Its job sleeps until 30s past its expected turn, an hour at
			// most, by the trigger's clock: the database's.
			wake := m.RateLimitedUntil.Add(30 * time.Second)
			wake = time.UnixMicro(min(wake.UnixMicro(), m.CreatedAt.Add(time.Hour).UnixMicro()))
			require.WithinDuration(t, wake, job.ScheduledAt, time.Millisecond)
		}
		var emailKey *string
		require.NoError(t, testPool.QueryRow(ctx, "SELECT rate_key FROM "+table(b.schema, "messages")+" WHERE id = $1", email.Message.ID).Scan(&emailKey))
		require.Nil(t, emailKey, "a key without a limit is not stored")

		// A process works the queue: the burst and the email go, and the
		// parked messages' jobs are not fetched. Only the email's key is
		// computed again, at its attempt: the others are stored.
		setup(t, working(), withConfig(config), onSchema(b.schema))
		waitForCalls(t, notifier, limit.Burst+1)
		waitForStatus(t, b.client, []uuid.UUID{email.Message.ID}, outbound.MessageStatusSent)
		require.EqualValues(t, 12, keyCalls.Load())
		for _, m := range res.Messages[limit.Burst:] {
			job, err := jobs.JobGet(ctx, m.JobID)
			require.NoError(t, err)
			require.Zero(t, job.Attempt, "River fetched a message parked at its trigger")
		}
		require.Len(t, notifier.Calls(), limit.Burst+1)
	})

	// On a key idle for a day, a bulk's first burst goes at once and its
	// parked messages' jobs sleep each until after its own turn, not all
	// until the same moment (when River would fetch them all only for
	// them to park). A bulk triggered while messages of its priority wait
	// releases nothing itself: its turn comes by the key's order.
	t.Run("ParkedJobsWakeInTurn", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		limit := outbound.RateLimit{Limit: 10, Per: time.Minute, Burst: 3}
		b := setup(t, withConfig(limitedConfig(&recordingNotifier{}, limit)))
		_, err := testPool.Exec(ctx, "INSERT INTO "+table(b.schema, "rate_limits")+
			" (key, tat, next_wake, updated_at, vtime) VALUES ('sms', now() - interval '1 day', now() - interval '1 day', now(), now() - interval '1 day')")
		require.NoError(t, err)
		first := mustBulkTrigger(ctx, t, b.client, conversations(10), &outbound.BulkTriggerOpts{TemplateID: "first", RenderedBody: "body"})
		jobs := hostRiver(t, b.schema)
		var lastTurn, lastWake time.Time
		for i, m := range first.Messages {
			job, err := jobs.JobGet(ctx, m.JobID)
			require.NoError(t, err)
			if i < limit.Burst {
				require.Zerof(t, m.RateLimitedUntil, "message %d is within the burst", i)
				continue
			}
			// Its turn: the burst, then one slot every 6s.
			require.WithinDurationf(t, m.CreatedAt.Add(time.Duration(i-limit.Burst+1)*6*time.Second), m.RateLimitedUntil, time.Millisecond, "message %d", i)
			require.Truef(t, m.RateLimitedUntil.After(lastTurn), "message %d's turn is after the one before", i)
			require.Equal(t, rivertype.JobStateScheduled, job.State)
			require.WithinDuration(t, m.RateLimitedUntil.Add(30*time.Second), job.ScheduledAt, time.Millisecond)
			require.Truef(t, job.ScheduledAt.After(lastWake), "message %d's job wakes after the one before", i)
			lastTurn, lastWake = m.RateLimitedUntil, job.ScheduledAt
		}

		second := mustBulkTrigger(ctx, t, b.client, conversations(3), &outbound.BulkTriggerOpts{TemplateID: "second", RenderedBody: "body"})
		for i, m := range second.Messages {
			require.NotZerof(t, m.RateLimitedUntil, "message %d of a bulk triggered behind waiting messages of its priority parks", i)
		}
	})

	// A key's row that no call has used has its whole burst free, even
	// when a dispatcher made it after the trigger's transaction began (its
	// tat then comes after the trigger's now()).
	t.Run("FreshRowIsFree", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		limit := outbound.RateLimit{Limit: 1, Per: time.Hour, Burst: 2}
		b := setup(t, withConfig(limitedConfig(&recordingNotifier{}, limit)))
		_, err := testPool.Exec(ctx, "INSERT INTO "+table(b.schema, "rate_limits")+
			" (key, tat, next_wake, updated_at) VALUES ('sms', now() + interval '2 seconds', now(), now())")
		require.NoError(t, err)
		res := mustBulkTrigger(ctx, t, b.client, conversations(3), &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "body"})
		require.Zero(t, res.Messages[0].RateLimitedUntil, "released")
		require.Zero(t, res.Messages[1].RateLimitedUntil, "released")
		require.NotZero(t, res.Messages[2].RateLimitedUntil, "beyond the burst: parked")
	})

	// A cancelled waiting bulk leaves no slot promised: the next message on
	// the key goes at the key's next slot, not after the cancelled ones'.
	t.Run("CancelledWaitersHoldNothing", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		notifier := &recordingNotifier{}
		limit := outbound.RateLimit{Limit: 1, Per: time.Second, Burst: 1}
		b := setup(t, working(), withConfig(limitedConfig(notifier, limit)))
		bulk := mustBulkTrigger(ctx, t, b.client, conversations(30), &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "body"})
		waitForCalls(t, notifier, 2)
		_, err := b.client.CancelEnvelope(ctx, bulk.Envelope.ID, nil)
		require.NoError(t, err)
		waitForStatus(t, b.client, messageIDs(bulk.Messages), outbound.MessageStatusSent, outbound.MessageStatusCancelled)
		lastBulkCall := grants(notifier)[len(notifier.Calls())-1]

		next := mustTrigger(ctx, t, b.client, 100, &outbound.TriggerOpts{TemplateID: "t"})
		m := waitForStatus(t, b.client, []uuid.UUID{next.Message.ID}, outbound.MessageStatusSent)[0]
		// Granted at the key's next slot (by the database's clock), one
		// interval after the last call: the 28 cancelled messages would
		// have held it 28 intervals back.
		granted := notifier.callsFor(m.ID)[0].Message.UpdatedAt
		require.Lessf(t, granted.Sub(lastBulkCall), 10*time.Second,
			"the new message was granted %s after the last call; the cancelled bulk held %d slots", granted.Sub(lastBulkCall), 28)
	})

	// Deleted waiting messages (as a prune or a host would delete them)
	// hold nothing either.
	t.Run("DeletedWaitersHoldNothing", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		notifier := &recordingNotifier{}
		limit := outbound.RateLimit{Limit: 1, Per: time.Second, Burst: 1}
		b := setup(t, working(), withConfig(limitedConfig(notifier, limit)))
		bulk := mustBulkTrigger(ctx, t, b.client, conversations(30), &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "body"})
		_, err := testPool.Exec(ctx, "DELETE FROM "+table(b.schema, "messages")+" WHERE bulk_envelope_id = $1 AND rate_parked_at IS NOT NULL", bulk.Envelope.ID)
		require.NoError(t, err)
		calls := len(notifier.Calls())
		require.Less(t, calls, 30)
		lastBulkCall := time.Time{}
		if calls > 0 {
			lastBulkCall = grants(notifier)[calls-1]
		}

		next := mustTrigger(ctx, t, b.client, 100, &outbound.TriggerOpts{TemplateID: "t"})
		waitForStatus(t, b.client, []uuid.UUID{next.Message.ID}, outbound.MessageStatusSent)
		granted := notifier.callsFor(next.Message.ID)[0].Message.UpdatedAt
		if !lastBulkCall.IsZero() {
			require.Lessf(t, granted.Sub(lastBulkCall), 10*time.Second,
				"the new message was granted %s after the last call; the deleted messages held %d slots", granted.Sub(lastBulkCall), 30-calls)
		}
	})

	// A process killed with jobs fetched (left running in River, as a dead
	// process leaves them) holds no slot: the key serves its other
	// messages, while the dead process's wait for River's rescue. Slots
	// released to its jobs count as taken only for ReleaseHorizon.
	t.Run("KilledProcessHoldsNothing", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		notifier := &recordingNotifier{}
		limit := outbound.RateLimit{Limit: 20, Per: time.Second, Burst: 1}
		config := limitedConfig(notifier, limit)
		// The dead process's jobs stay running for the whole test.
		config.RescueStuckJobsAfter = time.Hour
		b := setup(t, withConfig(config))
		bulk := mustBulkTrigger(ctx, t, b.client, conversations(40), &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "body"})
		var deadJobs []int64
		var dead []uuid.UUID
		for _, m := range bulk.Messages[:10] {
			deadJobs, dead = append(deadJobs, m.JobID), append(dead, m.ID)
		}
		b.factory.setJobState(t, "running", deadJobs...)
		// Five of them had been released a slot each when it died; the
		// other five, more urgent, had parked, and it died before River
		// recorded their snoozes: no dispatcher can release them until
		// River rescues them, so they hold back no one.
		_, err := testPool.Exec(ctx, "UPDATE "+table(b.schema, "messages")+" SET rate_key = 'sms', rate_priority = 2, rate_vt = now(), rate_released_at = now(), rate_parked_at = NULL WHERE id = ANY($1)", dead[:5])
		require.NoError(t, err)
		_, err = testPool.Exec(ctx, "UPDATE "+table(b.schema, "messages")+" SET rate_key = 'sms', rate_priority = 1, rate_vt = now(), rate_released_at = NULL, rate_parked_at = now() WHERE id = ANY($1)", dead[5:])
		require.NoError(t, err)

		started := time.Now()
		require.NoError(t, b.client.Start(ctx))
		t.Cleanup(func() { _ = b.client.Stop(context.WithoutCancel(ctx)) })
		live := messageIDs(bulk.Messages[10:])
		waitForStatus(t, b.client, live, outbound.MessageStatusSent)
		// Parked at their trigger, on a key no claim had made a row for:
		// released by a dispatcher, not woken by their jobs' safety net,
		// 30s after their turns.
		require.Less(t, time.Since(started), 30*time.Second, "the parked messages waited for their jobs' safety net")
		for _, id := range dead {
			m, err := b.client.Message(ctx, id)
			require.NoError(t, err)
			require.Equal(t, outbound.MessageStatusPending, m.Status, "the dead process's fetched jobs wait for River's rescue")
		}
		grants := grants(notifier)
		require.Len(t, grants, 30)
		requireWithinLimit(t, grants, limit)
	})

	// A limit loosened between deploys: messages parked under an hour's
	// slot by the old deploy go at the new limit's pace once the new one
	// starts, holding nothing from the old.
	t.Run("LimitLoosenedBetweenDeploys", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		notifier := &recordingNotifier{}
		old := setup(t, withConfig(limitedConfig(notifier, outbound.RateLimit{Limit: 1, Per: time.Hour})))
		require.NoError(t, old.client.Start(ctx))
		bulk := mustBulkTrigger(ctx, t, old.client, conversations(10), &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "body"})
		waitForCalls(t, notifier, 1)
		require.NoError(t, old.client.Stop(ctx))
		require.Len(t, notifier.Calls(), 1, "one call an hour")

		setup(t, working(), withConfig(limitedConfig(notifier, outbound.RateLimit{Limit: 100, Per: time.Second})), onSchema(old.schema))
		waitForStatus(t, old.client, messageIDs(bulk.Messages), outbound.MessageStatusSent)
		require.Len(t, notifier.Calls(), 10)
	})

	// With River's clock 20 seconds ahead of the database's (or behind),
	// waiting messages wake by the database's: every release is a
	// dispatcher's, timed by durations the database computed.
	t.Run("DatabaseClockDecides", func(t *testing.T) {
		t.Parallel()
		for _, skew := range []time.Duration{20 * time.Second, -20 * time.Second} {
			t.Run(skew.String(), func(t *testing.T) {
				t.Parallel()
				ctx := ctxT(t)
				reader, providers := newTelemetryRecorder()
				notifier := &recordingNotifier{}
				limit := outbound.RateLimit{Limit: 20, Per: time.Second, Burst: 2}
				config := limitedConfig(notifier, limit)
				config.MeterProvider = providers.meter
				outbound.SetRiverTime(config, skewedClock(skew))
				b := setup(t, working(), withConfig(config))

				const n = 60
				started := time.Now()
				res := mustBulkTrigger(ctx, t, b.client, conversations(n), &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "body"})
				waitForStatus(t, b.client, messageIDs(res.Messages), outbound.MessageStatusSent)
				// A wake late by the skew would add 20s to the 3s of
				// slots; one early would fetch the parked messages
				// again and again.
				require.Less(t, time.Since(started), 20*time.Second, "a waiting message woke by River's clock")
				// Parked at their trigger, as NeverIdle's: a claim that
				// parks is the exception, whatever River's clock says.
				parks := deliveries(t, reader, "deferred", "rate_limit_wait")
				require.LessOrEqualf(t, parks, int64(n/10), "%d parks at a claim for %d messages", parks, n)
				requireWithinLimit(t, grants(notifier), limit)
			})
		}
	})

	// A Notifier's RateLimited pause is capped by Config.MaxRateLimitedPause,
	// and an operator can lift it.
	t.Run("PauseCappedAndLifted", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		var once sync.Once
		notifier := &recordingNotifier{fn: func(ctx context.Context, msg *outbound.Message) error {
			var err error
			once.Do(func() { err = outbound.RateLimited(87600*time.Hour, errors.New("429")) })
			return err
		}}
		config := limitedConfig(notifier, outbound.RateLimit{Limit: 100, Per: time.Second})
		config.MaxRateLimitedPause = 10 * time.Minute
		b := setup(t, working(), withConfig(config))
		lead := mustTrigger(ctx, t, b.client, 1, &outbound.TriggerOpts{TemplateID: "t"})
		m := waitForRateLimited(t, b.client, lead.Message.ID)
		until := pausedUntil(t, b.schema, "sms")
		require.WithinDuration(t, time.Now().Add(10*time.Minute), until, time.Minute, "the pause is capped")
		require.WithinDuration(t, until, m.RateLimitedUntil, time.Second)

		others := mustBulkTrigger(ctx, t, b.client, conversations(5), &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "body"})
		states, err := b.client.RateLimitStates(ctx)
		require.NoError(t, err)
		require.Len(t, states, 1)
		require.Equal(t, "sms", states[0].Key)
		require.WithinDuration(t, until, states[0].PausedUntil, time.Millisecond)

		lifted, err := b.client.LiftRateLimitPause(ctx, "sms")
		require.NoError(t, err)
		require.True(t, lifted)
		waitForStatus(t, b.client, append(messageIDs(others.Messages), lead.Message.ID), outbound.MessageStatusSent)
		require.True(t, pausedUntil(t, b.schema, "sms").IsZero())

		lifted, err = b.client.LiftRateLimitPause(ctx, "sms")
		require.NoError(t, err)
		require.False(t, lifted, "no pause to lift")
		_, err = b.client.LiftRateLimitPause(ctx, "email")
		var invalid *outbound.InvalidArgumentError
		require.ErrorAs(t, err, &invalid)
	})

	// A RateLimitKey that panics fails the attempt as a Notifier's panic
	// does, with a bounded last_error, and calls no one.
	t.Run("KeyPanicIsRecorded", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		notifier := &recordingNotifier{}
		config := limitedConfig(notifier, outbound.RateLimit{Limit: 100, Per: time.Second})
		config.MaxAttempts = 1
		huge := make([]byte, 100_000)
		for i := range huge {
			huge[i] = 'x'
		}
		config.RateLimitKey = func(*outbound.Message) string { panic(string(huge)) }
		b := setup(t, working(), withConfig(config))
		res := mustTrigger(ctx, t, b.client, 1, &outbound.TriggerOpts{TemplateID: "t"})
		m := waitForStatus(t, b.client, []uuid.UUID{res.Message.ID}, outbound.MessageStatusDiscarded)[0]
		require.Contains(t, m.LastError, "Config.RateLimitKey panicked")
		require.LessOrEqual(t, len(m.LastError), 2048)
		require.Empty(t, notifier.Calls())
	})

	// A key with two limits holds to both: 100 a second, and 5 in any
	// window of two seconds.
	t.Run("SeveralLimitsOnOneKey", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		notifier := &recordingNotifier{}
		window := outbound.RateLimit{Limit: 5, Per: 2 * time.Second}
		limit := outbound.RateLimit{Limit: 100, Per: time.Second, Also: []outbound.RateLimit{window}}
		b := setup(t, working(), withConfig(limitedConfig(notifier, limit)))
		const n = 12
		res := mustBulkTrigger(ctx, t, b.client, conversations(n), &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "body"})
		waitForStatus(t, b.client, messageIDs(res.Messages), outbound.MessageStatusSent)
		grants := grants(notifier)
		require.Len(t, grants, n)
		requireWithinLimit(t, grants, outbound.RateLimit{Limit: 100, Per: time.Second, Burst: 100})
		for i := range grants {
			in := 0
			for j := i; j < len(grants) && grants[j].Sub(grants[i]) < window.Per; j++ {
				in++
			}
			require.LessOrEqualf(t, in, window.Limit, "%d calls in the %s from call %d", in, window.Per, i)
		}
		// 12 calls at 5 per 2s: the last is at least 4s after the first.
		require.GreaterOrEqual(t, grants[n-1].Sub(grants[0]), 4*time.Second)
	})

	t.Run("BoundsRefused", func(t *testing.T) {
		t.Parallel()
		cases := map[string]*outbound.Config{
			`Config.RateLimits["sms"].Burst`:           {RateLimits: map[string]outbound.RateLimit{"sms": {Limit: 1, Per: time.Hour, Burst: 1e10}}},
			`Config.RateLimits["sms"].Also[0].Burst`:   {RateLimits: map[string]outbound.RateLimit{"sms": {Limit: 1, Per: time.Second, Also: []outbound.RateLimit{{Limit: 1, Per: time.Hour, Burst: 2}}}}},
			`Config.RateLimits["sms"].Also[0].Per`:     {RateLimits: map[string]outbound.RateLimit{"sms": {Limit: 1, Per: time.Second, Also: []outbound.RateLimit{{Limit: 1}}}}},
			`Config.RateLimits["sms"].Also[0].Limit`:   {RateLimits: map[string]outbound.RateLimit{"sms": {Limit: 1, Per: time.Second, Also: []outbound.RateLimit{{Limit: 2_000_000, Per: time.Hour}}}}},
			`Config.RateLimits["sms"].Also[0].Also`:    {RateLimits: map[string]outbound.RateLimit{"sms": {Limit: 1, Per: time.Second, Also: []outbound.RateLimit{{Limit: 1, Per: time.Hour, Also: []outbound.RateLimit{{Limit: 1, Per: time.Hour}}}}}}},
			`Config.MaxRateLimitedPause`:               {MaxRateLimitedPause: -time.Second},
			`Config.RateLimits["sms"].Burst(overflow)`: {RateLimits: map[string]outbound.RateLimit{"sms": {Limit: 1, Per: 200 * 24 * time.Hour, Burst: 1 << 40}}},
		}
		for name, config := range cases {
			config.Schema = "unused"
			_, err := outbound.New(testPool, config)
			var invalid *outbound.InvalidArgumentError
			require.ErrorAs(t, err, &invalid, name)
			require.Equal(t, trimCase(name), invalid.Field, name)
		}
	})
}

// trimCase drops a case's note in parentheses from its field.
func trimCase(name string) string {
	if i := len(name) - 1; i > 0 && name[i] == ')' {
		for j := i; j >= 0; j-- {
			if name[j] == '(' {
				return name[:j]
			}
		}
	}
	return name
}

// skewedClock is River's clock set off the database's by skew, as on a
// machine whose clock is wrong: NowOrNil stays nil, so that River's SQL
// keeps the database's now().
type skewedClock time.Duration

func (s skewedClock) Now() time.Time       { return time.Now().Add(time.Duration(s)) }
func (s skewedClock) NowOrNil() *time.Time { return nil }
