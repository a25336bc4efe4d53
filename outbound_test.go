package outbound_test

import (
	"sync"
	"testing"
	"time"

	"github.com/cairnloop/outbound"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

func TestTrigger(t *testing.T) {
	t.Parallel()

	t.Run("WritesMessageAndJob", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		b := setup(t)

		res := mustTrigger(ctx, t, b.client, 42, &outbound.TriggerOpts{TemplateID: "recovery"})
		require.False(t, res.Duplicate)

		m := res.Message
		require.NotEqual(t, uuid.Nil, m.ID)
		require.Equal(t, uuid.Version(7), m.ID.Version(), "message ids are UUIDv7")
		require.Equal(t, int64(42), m.ConversationID)
		require.Equal(t, outbound.RoleSystemOutbound, m.Role)
		require.Equal(t, "system_outbound", m.Role)
		require.Equal(t, "recovery", m.TemplateID)
		require.Equal(t, "Outbound message using template: recovery", m.Content)
		require.Equal(t, outbound.MessageStatusPending, m.Status)
		require.Equal(t, uuid.Nil, m.BulkEnvelopeID)
		require.Equal(t, map[string]any{"template_id": "recovery", "status": "pending", "bulk_envelope_id": nil}, m.Metadata)
		require.NotZero(t, m.JobID)
		require.Zero(t, m.Attempts)
		require.True(t, m.SentAt.IsZero())

		stored, err := b.client.Message(ctx, m.ID)
		require.NoError(t, err)
		require.Equal(t, m, stored)

		job := jobByID(t, b.schema, m.JobID)
		require.Equal(t, outbound.DeliveryJobKind, job.Kind)
		require.Equal(t, "outbound", job.Queue)
		require.Equal(t, "available", job.State)
		require.Equal(t, outbound.DefaultMaxAttempts, job.MaxAttempts)
		require.Equal(t, map[string]any{
			"message_id":       m.ID.String(),
			"conversation_id":  float64(42),
			"template_id":      "recovery",
			"bulk_envelope_id": nil,
		}, job.Args)
		require.Equal(t, rowCounts{Messages: 1, Jobs: 1}, countAll(t, b.schema))
	})

	t.Run("ContentEnvelopeQueueAttempts", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		b := setup(t, withConfig(&outbound.Config{Queue: "follow_ups", MaxAttempts: 3}))
		envelopeID := uuid.Must(uuid.NewV7())

		res := mustTrigger(ctx, t, b.client, 7, &outbound.TriggerOpts{TemplateID: "t1", Content: "Hello again", BulkEnvelopeID: envelopeID})
		m := res.Message
		require.Equal(t, "Hello again", m.Content)
		require.Equal(t, envelopeID, m.BulkEnvelopeID)
		require.Equal(t, envelopeID.String(), m.Metadata["bulk_envelope_id"])
		stored, err := b.client.Message(ctx, m.ID)
		require.NoError(t, err)
		require.Equal(t, m, stored, "the result is the row as stored")

		job := jobByID(t, b.schema, m.JobID)
		require.Equal(t, "follow_ups", job.Queue)
		require.Equal(t, 3, job.MaxAttempts)
		require.Equal(t, envelopeID.String(), job.Args["bulk_envelope_id"])
	})

	t.Run("ScheduleIn", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		b := setup(t)

		before := time.Now()
		res := mustTrigger(ctx, t, b.client, 1, &outbound.TriggerOpts{TemplateID: "later", ScheduleIn: time.Hour})
		after := time.Now()

		job := jobByID(t, b.schema, res.Message.JobID)
		require.Equal(t, "scheduled", job.State)
		require.WithinRange(t, job.ScheduledAt, before.Add(time.Hour).Add(-time.Millisecond), after.Add(time.Hour))
		require.WithinDuration(t, job.ScheduledAt, res.Message.ScheduledAt, time.Millisecond)
		stored, err := b.client.Message(ctx, res.Message.ID)
		require.NoError(t, err)
		require.Equal(t, res.Message, stored, "the result is the row as stored")
	})
}

func TestTriggerTx(t *testing.T) {
	t.Parallel()

	t.Run("CallerRollbackRemovesEverything", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		b := setup(t, audited())

		tx, err := testPool.Begin(ctx)
		require.NoError(t, err)
		res, err := b.client.TriggerTx(ctx, tx, 42, &outbound.TriggerOpts{TemplateID: "recovery", Actor: "agent:7"})
		require.NoError(t, err)
		require.NotZero(t, res.Message.JobID)

		// Visible inside the caller's transaction, invisible outside it.
		var inside int
		require.NoError(t, tx.QueryRow(ctx, "SELECT count(*) FROM "+table(b.schema, "messages")).Scan(&inside))
		require.Equal(t, 1, inside)
		require.Equal(t, rowCounts{}, countAll(t, b.schema))

		require.NoError(t, tx.Rollback(ctx))
		require.Equal(t, rowCounts{}, countAll(t, b.schema))
		_, err = b.client.Message(ctx, res.Message.ID)
		require.ErrorIs(t, err, outbound.ErrNotFound)
	})

	t.Run("CallerCommitKeepsHostWritesAndMessage", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		b := setup(t, audited())
		_, err := testPool.Exec(ctx, "CREATE TABLE "+table(b.schema, "host_notes")+" (note text)")
		require.NoError(t, err)

		tx, err := testPool.Begin(ctx)
		require.NoError(t, err)
		_, err = tx.Exec(ctx, "INSERT INTO "+table(b.schema, "host_notes")+" VALUES ('closed')")
		require.NoError(t, err)
		res, err := b.client.TriggerTx(ctx, tx, 42, &outbound.TriggerOpts{TemplateID: "recovery"})
		require.NoError(t, err)
		require.NoError(t, tx.Commit(ctx))

		require.Equal(t, rowCounts{Messages: 1, Jobs: 1, AuditEvents: 1}, countAll(t, b.schema))
		require.Equal(t, 1, countRows(t, b.schema, "host_notes"))
		stored, err := b.client.Message(ctx, res.Message.ID)
		require.NoError(t, err)
		require.Equal(t, res.Message.JobID, stored.JobID)
	})

	t.Run("ErrorLeavesCallerTxUsable", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		b := setup(t)
		_, err := testPool.Exec(ctx, "CREATE TABLE "+table(b.schema, "host_notes")+" (note text)")
		require.NoError(t, err)

		tx, err := testPool.Begin(ctx)
		require.NoError(t, err)
		defer tx.Rollback(ctx)
		_, err = b.client.TriggerTx(ctx, tx, 42, &outbound.TriggerOpts{TemplateID: "recovery", Auditor: failingAuditor})
		require.ErrorContains(t, err, "audit store down")

		// The failed call's rows are gone; the caller's transaction goes on.
		_, err = tx.Exec(ctx, "INSERT INTO "+table(b.schema, "host_notes")+" VALUES ('still fine')")
		require.NoError(t, err)
		require.NoError(t, tx.Commit(ctx))
		require.Equal(t, rowCounts{}, countAll(t, b.schema))
		require.Equal(t, 1, countRows(t, b.schema, "host_notes"))
	})

	t.Run("NilTx", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, err := b.client.TriggerTx(ctxT(t), nil, 1, &outbound.TriggerOpts{TemplateID: "x"})
		require.ErrorIs(t, err, outbound.ErrInvalidArgument)
		require.ErrorContains(t, err, "tx")
	})
}

func TestTriggerDedup(t *testing.T) {
	t.Parallel()

	t.Run("DuplicateWritesNothing", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		b := setup(t, audited())

		first := mustTrigger(ctx, t, b.client, 42, &outbound.TriggerOpts{TemplateID: "recovery"})
		before := countAll(t, b.schema)

		second := mustTrigger(ctx, t, b.client, 42, &outbound.TriggerOpts{TemplateID: "recovery", Content: "other text"})
		require.True(t, second.Duplicate)
		require.Equal(t, first.Message, second.Message)
		require.Equal(t, before, countAll(t, b.schema))
		require.Equal(t, rowCounts{Messages: 1, Jobs: 1, AuditEvents: 1}, before)

		// Another template, another conversation or another envelope is
		// another key.
		for _, opts := range []struct {
			conversationID int64
			opts           *outbound.TriggerOpts
		}{
			{42, &outbound.TriggerOpts{TemplateID: "other"}},
			{43, &outbound.TriggerOpts{TemplateID: "recovery"}},
			{42, &outbound.TriggerOpts{TemplateID: "recovery", BulkEnvelopeID: uuid.Must(uuid.NewV7())}},
		} {
			res := mustTrigger(ctx, t, b.client, opts.conversationID, opts.opts)
			require.False(t, res.Duplicate)
		}
		require.Equal(t, 4, countRows(t, b.schema, "messages"))
	})

	t.Run("CancelledOrDiscardedFreesKey", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		b := setup(t)

		for _, status := range []outbound.MessageStatus{outbound.MessageStatusCancelled, outbound.MessageStatusDiscarded} {
			first := mustTrigger(ctx, t, b.client, 42, &outbound.TriggerOpts{TemplateID: "recovery"})
			require.False(t, first.Duplicate)
			b.factory.setStatus(t, first.Message.ID, status)

			again := mustTrigger(ctx, t, b.client, 42, &outbound.TriggerOpts{TemplateID: "recovery"})
			require.False(t, again.Duplicate, "a %s message frees its key", status)
			require.NotEqual(t, first.Message.ID, again.Message.ID)
			b.factory.setStatus(t, again.Message.ID, status)
		}
		// Sent and failed messages keep the key.
		for _, status := range []string{"sent", "failed"} {
			res := mustTrigger(ctx, t, b.client, 50, &outbound.TriggerOpts{TemplateID: status})
			b.factory.setStatus(t, res.Message.ID, outbound.MessageStatus(status))
			again := mustTrigger(ctx, t, b.client, 50, &outbound.TriggerOpts{TemplateID: status})
			require.True(t, again.Duplicate, "a %s message keeps its key", status)
		}
	})

	t.Run("SixteenGoroutinesRace", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		b := setup(t, audited())

		const racers = 16
		var (
			wg      sync.WaitGroup
			start   = make(chan struct{})
			results = make([]*outbound.TriggerResult, racers)
			errs    = make([]error, racers)
		)
		for i := range racers {
			wg.Go(func() {
				<-start
				results[i], errs[i] = b.client.Trigger(ctx, 42, &outbound.TriggerOpts{TemplateID: "recovery"})
			})
		}
		close(start)
		wg.Wait()

		winners := 0
		for i := range racers {
			require.NoError(t, errs[i])
			if !results[i].Duplicate {
				winners++
			}
		}
		require.Equal(t, 1, winners)
		for i := range racers {
			require.Equal(t, results[0].Message.ID, results[i].Message.ID)
		}
		require.Equal(t, rowCounts{Messages: 1, Jobs: 1, AuditEvents: 1}, countAll(t, b.schema))
		require.Equal(t, results[0].Message.JobID, jobByID(t, b.schema, results[0].Message.JobID).ID)
	})
}

func TestMessageNotFound(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, err := b.client.Message(ctxT(t), uuid.Must(uuid.NewV7()))
	require.ErrorIs(t, err, outbound.ErrNotFound)
}
