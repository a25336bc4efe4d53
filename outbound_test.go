package outbound_test

import (
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
		b := setup(t, nil)

		res, err := b.client.Trigger(ctx, 42, &outbound.TriggerOpts{TemplateID: "recovery"})
		require.NoError(t, err)
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
		b := setup(t, &outbound.Config{Queue: "follow_ups", MaxAttempts: 3})
		envelopeID := uuid.Must(uuid.NewV7())

		res, err := b.client.Trigger(ctx, 7, &outbound.TriggerOpts{TemplateID: "t1", Content: "Hello again", BulkEnvelopeID: envelopeID})
		require.NoError(t, err)
		m := res.Message
		require.Equal(t, "Hello again", m.Content)
		require.Equal(t, envelopeID, m.BulkEnvelopeID)
		require.Equal(t, envelopeID.String(), m.Metadata["bulk_envelope_id"])

		job := jobByID(t, b.schema, m.JobID)
		require.Equal(t, "follow_ups", job.Queue)
		require.Equal(t, 3, job.MaxAttempts)
		require.Equal(t, envelopeID.String(), job.Args["bulk_envelope_id"])
	})

	t.Run("ScheduleIn", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		b := setup(t, nil)

		before := time.Now()
		res, err := b.client.Trigger(ctx, 1, &outbound.TriggerOpts{TemplateID: "later", ScheduleIn: time.Hour})
		require.NoError(t, err)
		after := time.Now()

		job := jobByID(t, b.schema, res.Message.JobID)
		require.Equal(t, "scheduled", job.State)
		require.WithinRange(t, job.ScheduledAt, before.Add(time.Hour).Add(-time.Millisecond), after.Add(time.Hour))
		require.WithinDuration(t, job.ScheduledAt, res.Message.ScheduledAt, time.Millisecond)
	})
}

