package outbound_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cairnloop/outbound"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// TestPriority: a one-to-one Trigger outranks bulk recipients in River's
// fetch order, and a call's Priority overrides either default.
func TestPriority(t *testing.T) {
	t.Parallel()

	// SingleOvertakesBulk is the case the priorities are for: a slow worker
	// (2 workers, a 20 ms notifier) is busy with a bulk of 500 when an agent
	// triggers one follow-up. With one priority for all, the follow-up
	// would be the 501st delivery, about 25 seconds later at the default
	// fetch cooldown.
	t.Run("SingleOvertakesBulk", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		const bulkSize, single = 500, 9001
		order := &deliveryOrder{}
		b := setup(t, working(), withConfig(&outbound.Config{MaxWorkers: 2, MaxBatchSize: bulkSize,
			Notifier: outbound.NotifierFunc(func(ctx context.Context, msg *outbound.Message) error {
				time.Sleep(20 * time.Millisecond)
				order.add(msg.ConversationID)
				return nil
			})}))

		mustBulkTrigger(ctx, t, b.client, conversations(bulkSize), &outbound.BulkTriggerOpts{TemplateID: "outage", RenderedBody: "Back up."})
		require.Eventually(t, func() bool { return order.len() >= 2 }, waitCeiling, 5*time.Millisecond, "the bulk is being delivered")
		mustTrigger(ctx, t, b.client, single, &outbound.TriggerOpts{TemplateID: "recovery"})
		// Counted once the trigger has committed, so that a slow call does
		// not count against the priority.
		deliveredBefore := order.len()
		require.Eventually(t, func() bool { return order.position(single) >= 0 }, waitCeiling, 5*time.Millisecond)

		// When the single commits, the two workers may hold two bulk
		// recipients, and a fetch already under way may bring two more;
		// River's next fetch brings the single.
		position := order.position(single)
		t.Logf("deliveries before the trigger committed: %d; the single was delivery %d of %d queued", deliveredBefore, position+1, bulkSize+1)
		require.LessOrEqual(t, position, deliveredBefore+4, "the single waited behind bulk recipients queued before it")
	})

	// DefaultsAndOverrides commits, in one transaction, a bulk raised to
	// priority 1, a bulk at the default (2), a single at the default (1) and
	// a single lowered to 4. One worker then delivers them one at a time in
	// River's fetch order: by priority, then in insertion order.
	t.Run("DefaultsAndOverrides", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		order := &deliveryOrder{}
		b := setup(t, working(), withConfig(&outbound.Config{MaxWorkers: 1, FetchCooldown: 5 * time.Millisecond,
			Notifier: outbound.NotifierFunc(func(ctx context.Context, msg *outbound.Message) error {
				order.add(msg.ConversationID)
				return nil
			})}))

		tx, err := b.pool.Begin(ctx)
		require.NoError(t, err)
		defer tx.Rollback(ctx)
		urgentBulk, err := b.client.BulkTriggerTx(ctx, tx, []int64{1, 2, 3}, &outbound.BulkTriggerOpts{TemplateID: "urgent", RenderedBody: "b", Priority: 1})
		require.NoError(t, err)
		bulk, err := b.client.BulkTriggerTx(ctx, tx, []int64{4, 5}, &outbound.BulkTriggerOpts{TemplateID: "outage", RenderedBody: "b"})
		require.NoError(t, err)
		single, err := b.client.TriggerTx(ctx, tx, 10, &outbound.TriggerOpts{TemplateID: "recovery"})
		require.NoError(t, err)
		lowSingle, err := b.client.TriggerTx(ctx, tx, 20, &outbound.TriggerOpts{TemplateID: "digest", Priority: 4})
		require.NoError(t, err)
		require.NoError(t, tx.Commit(ctx))

		for _, want := range []struct {
			msgs     []*outbound.Message
			priority int
		}{
			{urgentBulk.Messages, 1},
			{[]*outbound.Message{single.Message}, outbound.DefaultTriggerPriority},
			{[]*outbound.Message{lowSingle.Message}, 4},
			{bulk.Messages, outbound.DefaultBulkTriggerPriority},
		} {
			for _, m := range want.msgs {
				require.Equal(t, want.priority, jobByID(t, b.schema, m.JobID).Priority, "conversation %d", m.ConversationID)
			}
		}
		require.Eventually(t, func() bool { return order.len() == 7 }, waitCeiling, 5*time.Millisecond)
		require.Equal(t, []int64{1, 2, 3, 10, 4, 5, 20}, order.all())
	})
}

// deliveryOrder records the conversations a notifier was called for, in
// order.
type deliveryOrder struct {
	mu            sync.Mutex
	conversations []int64
}

func (o *deliveryOrder) add(conversationID int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.conversations = append(o.conversations, conversationID)
}

func (o *deliveryOrder) len() int { return len(o.all()) }

func (o *deliveryOrder) all() []int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.conversations)
}

// position is the index of the conversation's first delivery, or -1.
func (o *deliveryOrder) position(conversationID int64) int {
	return slices.Index(o.all(), conversationID)
}

// TestScheduledAt: an absolute time delays delivery until then; one in the
// past means now; ScheduleIn and ScheduledAt together are refused.
func TestScheduledAt(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	b := setup(t)
	at := time.Now().Add(26 * time.Hour).Truncate(time.Microsecond)

	t.Run("Future", func(t *testing.T) {
		t.Parallel()
		res := mustTrigger(ctx, t, b.client, 1, &outbound.TriggerOpts{TemplateID: "t", ScheduledAt: at})
		require.True(t, res.Message.ScheduledAt.Equal(at), "message scheduled at %v, want %v", res.Message.ScheduledAt, at)
		job := jobByID(t, b.schema, res.Message.JobID)
		require.True(t, job.ScheduledAt.Equal(at), "job scheduled at %v, want %v", job.ScheduledAt, at)
		require.Equal(t, "scheduled", job.State)

		bulk := mustBulkTrigger(ctx, t, b.client, []int64{2, 3}, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b", ScheduledAt: at})
		for _, m := range bulk.Messages {
			require.True(t, m.ScheduledAt.Equal(at))
			stored, err := b.client.Message(ctx, m.ID)
			require.NoError(t, err)
			require.True(t, stored.ScheduledAt.Equal(at))
			require.Equal(t, "scheduled", jobByID(t, b.schema, m.JobID).State)
		}
	})

	t.Run("PastMeansNow", func(t *testing.T) {
		t.Parallel()
		before := time.Now()
		res := mustTrigger(ctx, t, b.client, 4, &outbound.TriggerOpts{TemplateID: "t", ScheduledAt: before.Add(-time.Hour)})
		require.False(t, res.Message.ScheduledAt.Before(before.Add(-time.Second)), "scheduled at %v, an hour back", res.Message.ScheduledAt)
		job := jobByID(t, b.schema, res.Message.JobID)
		require.Equal(t, "available", job.State)
		require.False(t, job.ScheduledAt.Before(before.Add(-time.Second)))

		bulk := mustBulkTrigger(ctx, t, b.client, []int64{5}, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b", ScheduledAt: before.Add(-time.Hour)})
		require.False(t, bulk.Messages[0].ScheduledAt.Before(before.Add(-time.Second)))
		require.Equal(t, "available", jobByID(t, b.schema, bulk.Messages[0].JobID).State)
	})

	t.Run("BothSet", func(t *testing.T) {
		t.Parallel()
		schema := migratedSchema(t)
		client, err := outbound.New(testPool, &outbound.Config{Schema: schema})
		require.NoError(t, err)
		_, err = client.Trigger(ctx, 6, &outbound.TriggerOpts{TemplateID: "t", ScheduleIn: time.Hour, ScheduledAt: at})
		require.ErrorIs(t, err, outbound.ErrInvalidArgument)
		require.ErrorContains(t, err, "TriggerOpts.ScheduledAt must not be set together with TriggerOpts.ScheduleIn (1h0m0s)")
		_, err = client.BulkTrigger(ctx, []int64{6}, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b", ScheduleIn: time.Hour, ScheduledAt: at})
		require.ErrorIs(t, err, outbound.ErrInvalidArgument)
		require.ErrorContains(t, err, "BulkTriggerOpts.ScheduledAt must not be set together with BulkTriggerOpts.ScheduleIn")
		require.Equal(t, rowCounts{}, countAll(t, schema), "nothing is written")
	})
}

// TestMaxAttempts: a call's MaxAttempts overrides Config.MaxAttempts, for
// the job River retries and for when the worker discards the message.
func TestMaxAttempts(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	b := setup(t, working(), withConfig(&outbound.Config{MaxAttempts: 9,
		Notifier: outbound.NotifierFunc(func(context.Context, *outbound.Message) error {
			return errors.New("smtp: 451 try again later")
		})}))

	// Scheduled an hour out, so that the worker leaves it alone.
	byDefault := mustTrigger(ctx, t, b.client, 1, &outbound.TriggerOpts{TemplateID: "t", ScheduleIn: time.Hour})
	require.Equal(t, 9, jobByID(t, b.schema, byDefault.Message.JobID).MaxAttempts)

	single := mustTrigger(ctx, t, b.client, 2, &outbound.TriggerOpts{TemplateID: "t", MaxAttempts: 2})
	bulk := mustBulkTrigger(ctx, t, b.client, []int64{3, 4}, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b", MaxAttempts: 1})
	require.Equal(t, 2, jobByID(t, b.schema, single.Message.JobID).MaxAttempts)
	ids := []uuid.UUID{single.Message.ID}
	for _, m := range bulk.Messages {
		require.Equal(t, 1, jobByID(t, b.schema, m.JobID).MaxAttempts)
		ids = append(ids, m.ID)
	}

	discarded := waitForStatus(t, b.client, ids, outbound.MessageStatusDiscarded)
	require.Equal(t, []int{2, 1, 1}, []int{discarded[0].Attempts, discarded[1].Attempts, discarded[2].Attempts})
	for _, m := range discarded {
		require.Equal(t, "smtp: 451 try again later", m.LastError)
		require.Eventually(t, func() bool { return jobByID(t, b.schema, m.JobID).State == "discarded" },
			waitCeiling, 10*time.Millisecond, "River discards the job after its last attempt")
	}
}

// TestDeliveryOptsValidation: out-of-range options are ErrInvalidArgument,
// name the field, and write nothing.
func TestDeliveryOptsValidation(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	schema := migratedSchema(t)
	client, err := outbound.New(testPool, &outbound.Config{Schema: schema})
	require.NoError(t, err)

	for _, tc := range []struct {
		name        string
		priority    int
		maxAttempts int
		want        string
	}{
		{"PriorityTooHigh", 5, 0, "Priority must be between 1 (highest) and 4, River's priorities, or 0 for the default; got 5"},
		{"PriorityNegative", -1, 0, "Priority must be between 1 (highest) and 4, River's priorities, or 0 for the default; got -1"},
		{"MaxAttemptsNegative", 0, -1, "MaxAttempts must be between 1 and 32767, or 0 for the client's default; got -1"},
		{"MaxAttemptsOverSmallint", 0, 40000, "MaxAttempts must be between 1 and 32767, or 0 for the client's default; got 40000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := client.Trigger(ctx, 1, &outbound.TriggerOpts{TemplateID: "t", Priority: tc.priority, MaxAttempts: tc.maxAttempts})
			require.ErrorIs(t, err, outbound.ErrInvalidArgument)
			require.ErrorContains(t, err, "TriggerOpts."+tc.want)
			_, err = client.BulkTrigger(ctx, []int64{1}, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b", Priority: tc.priority, MaxAttempts: tc.maxAttempts})
			require.ErrorIs(t, err, outbound.ErrInvalidArgument)
			require.ErrorContains(t, err, "BulkTriggerOpts."+tc.want)
		})
	}
	require.Equal(t, rowCounts{}, countAll(t, schema), "nothing is written")

	_, err = outbound.New(testPool, &outbound.Config{Schema: schema, MaxAttempts: 40000})
	require.ErrorIs(t, err, outbound.ErrInvalidArgument)
	require.ErrorContains(t, err, "Config.MaxAttempts must be between 1 and 32767 (0 means the default, 20), got 40000")
}

// TestDeliveryOptsReplay: a bulk's idempotency key replays only a request
// with the same schedule, priority and attempts, submitted or refused.
func TestDeliveryOptsReplay(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	b := setup(t, withConfig(&outbound.Config{MaxBatchSize: 2}))
	at := time.Now().Add(time.Hour)

	for _, tc := range []struct {
		name string
		ids  []int64
	}{
		{"Submitted", []int64{1, 2}},
		{"Refused", []int64{1, 2, 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			opts := func() *outbound.BulkTriggerOpts {
				return &outbound.BulkTriggerOpts{TemplateID: tc.name, RenderedBody: "b", ScheduledAt: at, Priority: 3, MaxAttempts: 4}
			}
			first := opts()
			first.EnvelopeID = uuid.Must(uuid.NewV7())
			_, err := b.client.BulkTrigger(ctx, tc.ids, first)
			wantErr := err // nil when submitted, the refusal when refused

			same := opts()
			same.EnvelopeID = first.EnvelopeID
			res, err := b.client.BulkTrigger(ctx, tc.ids, same)
			if wantErr == nil {
				require.NoError(t, err)
				require.True(t, res.Replayed)
			} else {
				require.ErrorIs(t, err, outbound.ErrBatchTooLarge)
			}

			for _, change := range []struct {
				differs string
				edit    func(o *outbound.BulkTriggerOpts)
			}{
				{"schedule", func(o *outbound.BulkTriggerOpts) { o.ScheduledAt = at.Add(time.Second) }},
				{"schedule", func(o *outbound.BulkTriggerOpts) { o.ScheduledAt = time.Time{} }},
				{"priority", func(o *outbound.BulkTriggerOpts) { o.Priority = 0 }},
				{"priority", func(o *outbound.BulkTriggerOpts) { o.Priority = 2 }},
				{"max attempts", func(o *outbound.BulkTriggerOpts) { o.MaxAttempts = 5 }},
			} {
				other := opts()
				other.EnvelopeID = first.EnvelopeID
				change.edit(other)
				_, err := b.client.BulkTrigger(ctx, tc.ids, other)
				require.ErrorIs(t, err, outbound.ErrIdempotencyConflict)
				require.ErrorContains(t, err, "different "+change.differs)
			}
		})
	}
}
