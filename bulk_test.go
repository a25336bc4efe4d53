package outbound_test

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnloop/outbound"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

func TestBulkTrigger(t *testing.T) {
	t.Parallel()

	t.Run("EnvelopeMessagesAndJobsInInputOrder", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		b := setup(t, audited())
		ids := []int64{42, 7, 1001, 3}

		res, err := b.client.BulkTrigger(ctx, ids, &outbound.BulkTriggerOpts{
			TemplateID:   "recovery",
			RenderedBody: "Hi, we fixed it.",
			Actor:        "agent:7",
		})
		require.NoError(t, err)
		require.False(t, res.Replayed)

		env := res.Envelope
		require.Equal(t, uuid.Version(7), env.ID.Version())
		require.Equal(t, "recovery", env.TemplateID)
		require.Equal(t, "Hi, we fixed it.", env.RenderedBody)
		require.Equal(t, ids, env.RecipientConversationIDs)
		require.Equal(t, 4, env.Count)
		require.Equal(t, 25, env.EffectiveCap)
		require.Equal(t, "agent:7", env.RequestedBy)
		require.Equal(t, outbound.EnvelopeStatusSubmitted, env.Status)
		require.Empty(t, env.RefusedReason)
		stored, err := b.client.Envelope(ctx, env.ID)
		require.NoError(t, err)
		require.Equal(t, env, stored)

		require.Len(t, res.Messages, len(ids))
		jobIDs := map[int64]bool{}
		for i, m := range res.Messages {
			require.Equal(t, ids[i], m.ConversationID, "messages in input order")
			require.Equal(t, "Hi, we fixed it.", m.Content, "body snapshotted on every message")
			require.Equal(t, env.ID, m.BulkEnvelopeID)
			require.Equal(t, outbound.MessageStatusPending, m.Status)
			require.Equal(t, map[string]any{"template_id": "recovery", "status": "pending", "bulk_envelope_id": env.ID.String()}, m.Metadata)
			storedMessage, err := b.client.Message(ctx, m.ID)
			require.NoError(t, err)
			require.Equal(t, m, storedMessage, "the result is the row as stored")
			job := jobByID(t, b.schema, m.JobID)
			require.Equal(t, map[string]any{
				"message_id":       m.ID.String(),
				"conversation_id":  float64(ids[i]),
				"template_id":      "recovery",
				"bulk_envelope_id": env.ID.String(),
			}, job.Args)
			require.Equal(t, "available", job.State)
			jobIDs[m.JobID] = true
		}
		require.Len(t, jobIDs, len(ids), "one job per recipient")
		require.Equal(t, rowCounts{Envelopes: 1, Messages: 4, Jobs: 4, AuditEvents: 1}, countAll(t, b.schema))
	})

	t.Run("ScheduleIn", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		b := setup(t)
		res := mustBulkTrigger(ctx, t, b.client, []int64{1, 2}, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b", ScheduleIn: 10 * time.Minute})
		for _, m := range res.Messages {
			job := jobByID(t, b.schema, m.JobID)
			require.Equal(t, "scheduled", job.State)
			require.WithinDuration(t, time.Now().Add(10*time.Minute), job.ScheduledAt, time.Minute)
		}
	})

	t.Run("TxRollbackRemovesEverything", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		b := setup(t, audited())
		tx, err := testPool.Begin(ctx)
		require.NoError(t, err)
		_, err = b.client.BulkTriggerTx(ctx, tx, []int64{1, 2, 3}, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b"})
		require.NoError(t, err)
		require.NoError(t, tx.Rollback(ctx))
		require.Equal(t, rowCounts{}, countAll(t, b.schema))
	})

	t.Run("TxCommit", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		b := setup(t, audited())
		tx, err := testPool.Begin(ctx)
		require.NoError(t, err)
		res, err := b.client.BulkTriggerTx(ctx, tx, []int64{1, 2, 3}, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b"})
		require.NoError(t, err)
		require.NoError(t, tx.Commit(ctx))
		require.Equal(t, rowCounts{Envelopes: 1, Messages: 3, Jobs: 3, AuditEvents: 1}, countAll(t, b.schema))
		_, err = b.client.Envelope(ctx, res.Envelope.ID)
		require.NoError(t, err)
	})

	t.Run("RecipientAlreadyHoldingKeyGetsExistingMessage", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		b := setup(t)
		envelopeID := uuid.Must(uuid.NewV7())
		// Trigger accepts any envelope id, so a key can be taken before the
		// envelope exists.
		single := mustTrigger(ctx, t, b.client, 2, &outbound.TriggerOpts{TemplateID: "t", BulkEnvelopeID: envelopeID})

		res := mustBulkTrigger(ctx, t, b.client, []int64{1, 2, 3}, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b", EnvelopeID: envelopeID})
		require.Equal(t, single.Message.ID, res.Messages[1].ID)
		require.Equal(t, rowCounts{Envelopes: 1, Messages: 3, Jobs: 3}, countAll(t, b.schema), "no orphan job for the duplicate")
		var orphans int
		require.NoError(t, testPool.QueryRow(ctx, "SELECT count(*) FROM "+table(b.schema, "river_job")+" j WHERE NOT EXISTS (SELECT 1 FROM "+table(b.schema, "messages")+" m WHERE m.job_id = j.id)").Scan(&orphans))
		require.Zero(t, orphans)
	})
}

func TestBulkTriggerCap(t *testing.T) {
	t.Parallel()

	t.Run("ExactlyCapPassesOneMoreIsRefused", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		b := setup(t, audited())
		require.Equal(t, 25, b.client.MaxBatchSize())

		res := mustBulkTrigger(ctx, t, b.client, conversations(25), &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b"})
		require.Len(t, res.Messages, 25)

		ids := conversations(26)
		_, err := b.client.BulkTrigger(ctx, ids, &outbound.BulkTriggerOpts{TemplateID: "t2", RenderedBody: "b2", Actor: "agent:1"})
		require.ErrorIs(t, err, outbound.ErrBatchTooLarge)
		var tooLarge *outbound.BatchTooLargeError
		require.ErrorAs(t, err, &tooLarge)
		require.Equal(t, 26, tooLarge.Count)
		require.Equal(t, 25, tooLarge.Cap)
		require.NotEqual(t, uuid.Nil, tooLarge.EnvelopeID)

		env, err := b.client.Envelope(ctx, tooLarge.EnvelopeID)
		require.NoError(t, err)
		require.Equal(t, outbound.EnvelopeStatusRefusedCapExceeded, env.Status)
		require.Equal(t, "batch_size 26 exceeds cap 25", env.RefusedReason)
		require.Equal(t, 25, env.EffectiveCap)
		require.Equal(t, 26, env.Count)
		require.Equal(t, ids, env.RecipientConversationIDs)
		require.Equal(t, "agent:1", env.RequestedBy)
		require.Equal(t, "b2", env.RenderedBody)

		// Only the refused envelope and its audit event were added.
		require.Equal(t, rowCounts{Envelopes: 2, Messages: 25, Jobs: 25, AuditEvents: 2}, countAll(t, b.schema))
		events, err := b.audit.ListEvents(ctx, &outbound.ListAuditEventsParams{Action: outbound.AuditActionBulkRefused})
		require.NoError(t, err)
		require.Len(t, events, 1)
	})

	t.Run("RefusalSurvivesCallerRollback", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		b := setup(t, withConfig(&outbound.Config{MaxBatchSize: 2}))
		tx, err := testPool.Begin(ctx)
		require.NoError(t, err)
		_, err = b.client.BulkTriggerTx(ctx, tx, []int64{1, 2, 3}, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b"})
		var tooLarge *outbound.BatchTooLargeError
		require.ErrorAs(t, err, &tooLarge)
		require.NoError(t, tx.Rollback(ctx))

		env, err := b.client.Envelope(ctx, tooLarge.EnvelopeID)
		require.NoError(t, err)
		require.Equal(t, outbound.EnvelopeStatusRefusedCapExceeded, env.Status)
		require.Equal(t, 2, env.EffectiveCap)
		require.Equal(t, rowCounts{Envelopes: 1}, countAll(t, b.schema))
	})

	t.Run("SetMaxBatchSizeLive", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		b := setup(t)
		opts := &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b"}

		require.NoError(t, b.client.SetMaxBatchSize(3))
		require.Equal(t, 3, b.client.MaxBatchSize())
		_, err := b.client.BulkTrigger(ctx, []int64{1, 2, 3, 4}, opts)
		require.ErrorIs(t, err, outbound.ErrBatchTooLarge)
		res := mustBulkTrigger(ctx, t, b.client, []int64{1, 2, 3}, opts)
		require.Equal(t, 3, res.Envelope.EffectiveCap)

		require.NoError(t, b.client.SetMaxBatchSize(100))
		res = mustBulkTrigger(ctx, t, b.client, conversations(100), &outbound.BulkTriggerOpts{TemplateID: "t3", RenderedBody: "b"})
		require.Equal(t, 100, res.Envelope.EffectiveCap)

		for _, n := range []int{0, -1} {
			err := b.client.SetMaxBatchSize(n)
			require.ErrorIs(t, err, outbound.ErrInvalidArgument)
			require.ErrorContains(t, err, "max batch size")
		}
		require.Equal(t, 100, b.client.MaxBatchSize(), "a rejected cap changes nothing")
	})

	t.Run("RefusalThatCannotBeRecorded", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		var logs syncBuffer
		reader, providers := newTelemetryRecorder()
		b := setup(t, withConfig(&outbound.Config{
			MaxBatchSize:   1,
			Logger:         slog.New(slog.NewTextHandler(&logs, nil)),
			TracerProvider: providers.tracer,
			MeterProvider:  providers.meter,
		}))

		_, err := b.client.BulkTrigger(ctx, []int64{1, 2}, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "secret body", Actor: "agent:secret", Auditor: failingAuditor})
		require.ErrorIs(t, err, outbound.ErrBatchTooLarge)
		var tooLarge *outbound.BatchTooLargeError
		require.ErrorAs(t, err, &tooLarge)
		require.Equal(t, uuid.Nil, tooLarge.EnvelopeID)
		require.Equal(t, 2, tooLarge.Count)
		require.Equal(t, rowCounts{}, countAll(t, b.schema), "the refusal rolled back with its audit")

		line := logs.String()
		require.Contains(t, line, "could not record refused bulk envelope")
		require.Contains(t, line, "count=2")
		require.NotContains(t, line, "secret")

		require.Equal(t, map[string]int64{"refused_cap_exceeded_audit_failed": 1}, pointSums(t, reader, "outbound.bulk_trigger.duration", byOutcome))
	})

	t.Run("RefusedEnvelopeIDReplaysRefusal", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		b := setup(t, withConfig(&outbound.Config{MaxBatchSize: 1}))
		envelopeID := uuid.Must(uuid.NewV7())
		opts := &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b", EnvelopeID: envelopeID}
		for range 2 {
			_, err := b.client.BulkTrigger(ctx, []int64{1, 2}, opts)
			var tooLarge *outbound.BatchTooLargeError
			require.ErrorAs(t, err, &tooLarge)
			require.Equal(t, envelopeID, tooLarge.EnvelopeID)
		}
		require.Equal(t, rowCounts{Envelopes: 1}, countAll(t, b.schema))
	})
}

func TestBulkTriggerIdempotency(t *testing.T) {
	t.Parallel()

	t.Run("ReplayReturnsStoredResult", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		b := setup(t, audited())
		envelopeID := uuid.Must(uuid.NewV7())
		opts := &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b", EnvelopeID: envelopeID}

		first := mustBulkTrigger(ctx, t, b.client, []int64{5, 3, 9}, opts)
		require.Equal(t, envelopeID, first.Envelope.ID)
		before := countAll(t, b.schema)

		// Same recipients in another order: the same request.
		again := mustBulkTrigger(ctx, t, b.client, []int64{9, 5, 3}, opts)
		require.True(t, again.Replayed)
		require.Equal(t, first.Envelope, again.Envelope)
		require.Equal(t, []*outbound.Message{first.Messages[2], first.Messages[0], first.Messages[1]}, again.Messages)
		require.Equal(t, before, countAll(t, b.schema))
	})

	t.Run("ConflictingReuse", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		b := setup(t, audited())
		envelopeID := uuid.Must(uuid.NewV7())
		opts := func(change func(*outbound.BulkTriggerOpts)) *outbound.BulkTriggerOpts {
			o := &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b", Actor: "agent:7", ScheduleIn: time.Hour, EnvelopeID: envelopeID}
			if change != nil {
				change(o)
			}
			return o
		}
		mustBulkTrigger(ctx, t, b.client, []int64{1, 2}, opts(nil))
		before := countAll(t, b.schema)

		for name, tc := range map[string]struct {
			ids     []int64
			opts    *outbound.BulkTriggerOpts
			differs string
		}{
			"Template":       {[]int64{1, 2}, opts(func(o *outbound.BulkTriggerOpts) { o.TemplateID = "other" }), "template"},
			"Body":           {[]int64{1, 2}, opts(func(o *outbound.BulkTriggerOpts) { o.RenderedBody = "other" }), "body"},
			"Recipients":     {[]int64{1, 3}, opts(nil), "recipients"},
			"MoreRecipients": {[]int64{1, 2, 3}, opts(nil), "recipients"},
			"Actor":          {[]int64{1, 2}, opts(func(o *outbound.BulkTriggerOpts) { o.Actor = "agent:8" }), "actor"},
			"NoActor":        {[]int64{1, 2}, opts(func(o *outbound.BulkTriggerOpts) { o.Actor = "" }), "actor"},
			"Schedule":       {[]int64{1, 2}, opts(func(o *outbound.BulkTriggerOpts) { o.ScheduleIn = 2 * time.Hour }), "schedule"},
			"NoSchedule":     {[]int64{1, 2}, opts(func(o *outbound.BulkTriggerOpts) { o.ScheduleIn = 0 }), "schedule"},
		} {
			_, err := b.client.BulkTrigger(ctx, tc.ids, tc.opts)
			require.ErrorIs(t, err, outbound.ErrIdempotencyConflict, name)
			require.ErrorContains(t, err, "created with a different "+tc.differs, name)
		}
		require.Equal(t, before, countAll(t, b.schema))

		// The same request, its schedule given to the nanosecond, replays.
		res := mustBulkTrigger(ctx, t, b.client, []int64{2, 1}, opts(func(o *outbound.BulkTriggerOpts) { o.ScheduleIn = time.Hour + 300*time.Nanosecond }))
		require.True(t, res.Replayed)
	})

	t.Run("ConcurrentReplays", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		b := setup(t, audited())
		envelopeID := uuid.Must(uuid.NewV7())
		opts := &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b", EnvelopeID: envelopeID}

		const racers = 8
		var (
			wg       sync.WaitGroup
			start    = make(chan struct{})
			replayed atomic.Int64
			errs     = make([]error, racers)
		)
		for i := range racers {
			wg.Go(func() {
				<-start
				res, err := b.client.BulkTrigger(ctx, conversations(10), opts)
				errs[i] = err
				if err == nil && res.Replayed {
					replayed.Add(1)
				}
			})
		}
		close(start)
		wg.Wait()
		for _, err := range errs {
			require.NoError(t, err)
		}
		require.Equal(t, int64(racers-1), replayed.Load())
		require.Equal(t, rowCounts{Envelopes: 1, Messages: 10, Jobs: 10, AuditEvents: 1}, countAll(t, b.schema))
	})
}
