package outboundtest_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/cairnloop/outbound"
	"github.com/cairnloop/outbound/outboundtest"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"
)

// callLog records the messages a Notifier was handed.
type callLog struct {
	mu  sync.Mutex
	ids []uuid.UUID
}

func (l *callLog) notifier(result func(attempt int) error) outbound.Notifier {
	return outbound.NotifierFunc(func(_ context.Context, msg *outbound.Message) error {
		l.mu.Lock()
		l.ids = append(l.ids, msg.ID)
		n := len(l.ids)
		l.mu.Unlock()
		return result(n)
	})
}

func (l *callLog) calls() []uuid.UUID {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]uuid.UUID(nil), l.ids...)
}

// workerCase is one subtest's inline worker, its notifier's calls, and a
// message to deliver.
type workerCase struct {
	b      *testBundle
	worker *outboundtest.Worker
	log    *callLog
	msg    *outbound.Message
}

// newWorkerCase makes a schema, an inline worker on it with config (whose
// Schema it sets) and a notifier that answers with result, and triggers one
// message for conversation 42 with opts.
func newWorkerCase(t *testing.T, config *outbound.Config, result func(attempt int) error, opts *outbound.TriggerOpts) *workerCase {
	t.Helper()
	b := setup(t)
	config.Schema = b.schema
	log := &callLog{}
	worker := outboundtest.NewWorker(t, testPool, config, log.notifier(result))
	client, err := outbound.New(testPool, config)
	require.NoError(t, err)
	res, err := client.Trigger(context.Background(), 42, opts)
	require.NoError(t, err)
	return &workerCase{b: b, worker: worker, log: log, msg: res.Message}
}

// succeed is a notifier result: every call succeeds.
func succeed(int) error { return nil }

func TestWorker(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("Sent", func(t *testing.T) {
		t.Parallel()
		// Scheduled for later: Deliver works it now all the same.
		c := newWorkerCase(t, &outbound.Config{}, succeed, &outbound.TriggerOpts{TemplateID: "recovery", ScheduleIn: time.Hour})

		done, err := c.worker.Deliver(ctx, t, c.msg.ID)
		require.NoError(t, err)
		require.Equal(t, []uuid.UUID{c.msg.ID}, c.log.calls(), "the notifier was called once with the message")
		require.Equal(t, outbound.MessageStatusSent, done.Message.Status)
		require.Equal(t, 1, done.Message.Attempts)
		require.False(t, done.Message.SentAt.IsZero())
		require.Equal(t, rivertype.JobStateCompleted, done.Job.State)
		require.Equal(t, 1, done.Job.Attempt)
		require.NotNil(t, done.Job.FinalizedAt)
		require.Equal(t, []string{"outboundtest"}, done.Job.AttemptedBy)
	})

	t.Run("FailedThenSent", func(t *testing.T) {
		t.Parallel()
		c := newWorkerCase(t, &outbound.Config{}, func(n int) error {
			if n == 1 {
				return errors.New("mailbox full")
			}
			return nil
		}, &outbound.TriggerOpts{TemplateID: "recovery"})

		first, err := c.worker.Deliver(ctx, t, c.msg.ID)
		require.ErrorContains(t, err, "mailbox full")
		require.Equal(t, outbound.MessageStatusFailed, first.Message.Status)
		require.Equal(t, "mailbox full", first.Message.LastError)
		require.Equal(t, rivertype.JobStateRetryable, first.Job.State)
		require.Len(t, first.Job.Errors, 1)
		require.Contains(t, first.Job.Errors[0].Error, "mailbox full")
		require.True(t, first.Job.ScheduledAt.After(time.Now()), "retried later, by River's policy")

		second, err := c.worker.Deliver(ctx, t, c.msg.ID)
		require.NoError(t, err)
		require.Equal(t, outbound.MessageStatusSent, second.Message.Status)
		require.Equal(t, 2, second.Message.Attempts)
		require.Equal(t, rivertype.JobStateCompleted, second.Job.State)
		require.Equal(t, 2, second.Job.Attempt)
	})

	t.Run("LastAttemptDiscards", func(t *testing.T) {
		t.Parallel()
		c := newWorkerCase(t, &outbound.Config{MaxAttempts: 1}, func(int) error { return errors.New("bounced") },
			&outbound.TriggerOpts{TemplateID: "recovery"})

		done, err := c.worker.Deliver(ctx, t, c.msg.ID)
		require.ErrorContains(t, err, "bounced")
		require.Equal(t, outbound.MessageStatusDiscarded, done.Message.Status)
		require.Equal(t, rivertype.JobStateDiscarded, done.Job.State)
	})

	t.Run("PermanentCancelsTheJob", func(t *testing.T) {
		t.Parallel()
		c := newWorkerCase(t, &outbound.Config{}, func(int) error { return outbound.Permanent(errors.New("no such address")) },
			&outbound.TriggerOpts{TemplateID: "recovery"})

		done, err := c.worker.Deliver(ctx, t, c.msg.ID)
		var cancelErr *river.JobCancelError
		require.ErrorAs(t, err, &cancelErr)
		require.Equal(t, outbound.MessageStatusDiscarded, done.Message.Status)
		require.Equal(t, rivertype.JobStateCancelled, done.Job.State)
	})

	t.Run("RetryAfterSchedulesTheRetry", func(t *testing.T) {
		t.Parallel()
		c := newWorkerCase(t, &outbound.Config{}, func(int) error { return outbound.RetryAfter(time.Hour, errors.New("rate limited")) },
			&outbound.TriggerOpts{TemplateID: "recovery"})

		done, err := c.worker.Deliver(ctx, t, c.msg.ID)
		require.ErrorContains(t, err, "rate limited")
		require.Equal(t, rivertype.JobStateRetryable, done.Job.State)
		require.WithinDuration(t, time.Now().Add(time.Hour), done.Job.ScheduledAt, time.Minute)
	})

	t.Run("CancelledIsNotDelivered", func(t *testing.T) {
		t.Parallel()
		c := newWorkerCase(t, &outbound.Config{}, succeed, &outbound.TriggerOpts{TemplateID: "recovery"})
		require.NoError(t, c.b.client.CancelMessage(ctx, c.msg.ID, nil))

		done, err := c.worker.Deliver(ctx, t, c.msg.ID)
		require.Error(t, err)
		require.Empty(t, c.log.calls(), "the notifier was not called")
		require.Equal(t, outbound.MessageStatusCancelled, done.Message.Status)
		require.Equal(t, rivertype.JobStateCancelled, done.Job.State)
	})

	t.Run("ClaimedElsewhereSnoozes", func(t *testing.T) {
		t.Parallel()
		c := newWorkerCase(t, &outbound.Config{}, succeed, &outbound.TriggerOpts{TemplateID: "recovery"})
		// Another attempt holds the claim for a minute more.
		_, err := testPool.Exec(ctx, "UPDATE "+pgx.Identifier{c.b.schema, "messages"}.Sanitize()+
			" SET status = 'delivering', claim_id = gen_random_uuid(), claimed_until = now() + interval '1 minute' WHERE id = $1", c.msg.ID)
		require.NoError(t, err)

		done, err := c.worker.Deliver(ctx, t, c.msg.ID)
		var snoozeErr *river.JobSnoozeError
		require.ErrorAs(t, err, &snoozeErr)
		require.Empty(t, c.log.calls())
		require.Equal(t, rivertype.JobStateScheduled, done.Job.State)
		require.Zero(t, done.Job.Attempt, "a snooze uses no attempt")
		require.WithinDuration(t, time.Now().Add(time.Minute), done.Job.ScheduledAt, 30*time.Second)
	})

	t.Run("FailsTheTestForAnUnknownMessage", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		worker := outboundtest.NewWorker(t, testPool, &outbound.Config{Schema: b.schema}, nil)
		id := uuid.New()
		requireFailure(t, func(tb testing.TB) {
			res, err := worker.Deliver(ctx, tb, id)
			require.Nil(t, res)
			require.NoError(t, err)
		}, "Deliver: outbound: not found: message "+id.String())
	})

	t.Run("FailsTheTestForAnInvalidConfig", func(t *testing.T) {
		t.Parallel()
		requireFailure(t, func(tb testing.TB) {
			require.Nil(t, outboundtest.NewWorker(tb, testPool, &outbound.Config{Schema: "no spaces allowed"}, nil))
		}, "NewWorker: outbound: invalid argument: ")
	})
}
