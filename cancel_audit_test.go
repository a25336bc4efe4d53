package outbound_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/cairnloop/outbound"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// Cancels are audited: the rows keep who cancelled and when, and the Auditor
// receives an outbound_cancel event inside the cancel's transaction.
func TestCancelAudit(t *testing.T) {
	t.Parallel()

	t.Run("Message", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		b := setup(t, audited())
		res := mustTrigger(ctx, t, b.client, 42, &outbound.TriggerOpts{TemplateID: "recovery"})
		require.NoError(t, b.client.CancelMessage(ctx, res.Message.ID, &outbound.CancelOpts{Actor: "agent:7"}))

		msg, err := b.client.Message(ctx, res.Message.ID)
		require.NoError(t, err)
		require.Equal(t, "agent:7", msg.CancelledBy)
		require.False(t, msg.CancelledAt.IsZero())
		require.WithinDuration(t, msg.UpdatedAt, msg.CancelledAt, 0, "cancelled in the statement that cancelled it")

		events, err := b.audit.ListEvents(ctx, &outbound.ListAuditEventsParams{Action: outbound.AuditActionCancel})
		require.NoError(t, err)
		require.Len(t, events, 1)
		require.Equal(t, "agent:7", events[0].Actor)
		require.Equal(t, map[string]any{
			"message_id": res.Message.ID.String(), "conversation_id": float64(42), "template_id": "recovery",
		}, events[0].Metadata)
		require.True(t, events[0].OccurredAt.Equal(msg.CancelledAt), "the event occurs at the cancel's database time")

		// Cancelling it again changes nothing, and audits nothing.
		require.NoError(t, b.client.CancelMessage(ctx, res.Message.ID, &outbound.CancelOpts{Actor: "agent:8"}))
		again, err := b.client.Message(ctx, res.Message.ID)
		require.NoError(t, err)
		require.Equal(t, "agent:7", again.CancelledBy)
		events, err = b.audit.ListEvents(ctx, &outbound.ListAuditEventsParams{Action: outbound.AuditActionCancel})
		require.NoError(t, err)
		require.Len(t, events, 1)
	})

	t.Run("MessageOfEnvelope", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		b := setup(t, audited())
		bulk := mustBulkTrigger(ctx, t, b.client, []int64{1}, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b"})
		require.NoError(t, b.client.CancelMessage(ctx, bulk.Messages[0].ID, &outbound.CancelOpts{Actor: "agent:7"}))
		events, err := b.audit.ListEvents(ctx, &outbound.ListAuditEventsParams{Action: outbound.AuditActionCancel})
		require.NoError(t, err)
		require.Len(t, events, 1)
		require.Equal(t, bulk.Envelope.ID.String(), events[0].Metadata["bulk_envelope_id"])

		// Its last message's cancel ends the envelope, by the same actor.
		env, err := b.client.Envelope(ctx, bulk.Envelope.ID)
		require.NoError(t, err)
		require.Equal(t, outbound.EnvelopeStatusCancelled, env.Status)
		require.Equal(t, "agent:7", env.CancelledBy)
		require.False(t, env.CancelledAt.IsZero())
	})

	t.Run("Envelope", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		b := setup(t, audited())
		bulk := mustBulkTrigger(ctx, t, b.client, []int64{1, 2, 3}, &outbound.BulkTriggerOpts{TemplateID: "outage", RenderedBody: "Back up."})
		n, err := b.client.CancelEnvelope(ctx, bulk.Envelope.ID, &outbound.CancelOpts{Actor: "agent:7"})
		require.NoError(t, err)
		require.Equal(t, 3, n)

		env, err := b.client.Envelope(ctx, bulk.Envelope.ID)
		require.NoError(t, err)
		require.Equal(t, "agent:7", env.CancelledBy)
		require.False(t, env.CancelledAt.IsZero())
		for _, m := range bulk.Messages {
			msg, err := b.client.Message(ctx, m.ID)
			require.NoError(t, err)
			require.Equal(t, "agent:7", msg.CancelledBy)
			require.True(t, msg.CancelledAt.Equal(env.CancelledAt), "one transaction, one time")
		}
		events, err := b.audit.ListEvents(ctx, &outbound.ListAuditEventsParams{Action: outbound.AuditActionCancel})
		require.NoError(t, err)
		require.Len(t, events, 1)
		require.Equal(t, "agent:7", events[0].Actor)
		require.Equal(t, map[string]any{
			"bulk_envelope_id": bulk.Envelope.ID.String(), "template_id": "outage", "count": float64(3),
		}, events[0].Metadata)

		// A later cancel is audited too, but the envelope keeps its first.
		_, err = b.client.CancelEnvelope(ctx, bulk.Envelope.ID, &outbound.CancelOpts{Actor: "agent:8"})
		require.NoError(t, err)
		env, err = b.client.Envelope(ctx, bulk.Envelope.ID)
		require.NoError(t, err)
		require.Equal(t, "agent:7", env.CancelledBy)
		events, err = b.audit.ListEvents(ctx, &outbound.ListAuditEventsParams{Action: outbound.AuditActionCancel})
		require.NoError(t, err)
		require.Len(t, events, 2)
		require.Equal(t, "agent:8", events[0].Actor)
		require.Equal(t, float64(0), events[0].Metadata["count"])
	})

	t.Run("WithoutActor", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		b := setup(t, audited())
		res := mustTrigger(ctx, t, b.client, 1, &outbound.TriggerOpts{TemplateID: "t"})
		require.NoError(t, b.client.CancelMessage(ctx, res.Message.ID, nil))
		msg, err := b.client.Message(ctx, res.Message.ID)
		require.NoError(t, err)
		require.Empty(t, msg.CancelledBy)
		require.False(t, msg.CancelledAt.IsZero())
		events, err := b.audit.ListEvents(ctx, &outbound.ListAuditEventsParams{Action: outbound.AuditActionCancel})
		require.NoError(t, err)
		require.Len(t, events, 1)
		require.Empty(t, events[0].Actor)
	})

	// The event is written in the caller's transaction: its rollback undoes
	// the cancel and the event together.
	t.Run("TxRollback", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		b := setup(t, audited())
		res := mustTrigger(ctx, t, b.client, 1, &outbound.TriggerOpts{TemplateID: "t"})
		bulk := mustBulkTrigger(ctx, t, b.client, []int64{1, 2}, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b"})
		tx, err := b.pool.Begin(ctx)
		require.NoError(t, err)
		require.NoError(t, b.client.CancelMessageTx(ctx, tx, res.Message.ID, &outbound.CancelOpts{Actor: "agent:7"}))
		_, err = b.client.CancelEnvelopeTx(ctx, tx, bulk.Envelope.ID, &outbound.CancelOpts{Actor: "agent:7"})
		require.NoError(t, err)
		var inTx int
		require.NoError(t, tx.QueryRow(ctx, "SELECT count(*) FROM "+table(b.schema, "audit_events")+" WHERE action = $1", outbound.AuditActionCancel).Scan(&inTx))
		require.Equal(t, 2, inTx, "both events are in the caller's transaction")
		require.NoError(t, tx.Rollback(ctx))

		events, err := b.audit.ListEvents(ctx, &outbound.ListAuditEventsParams{Action: outbound.AuditActionCancel})
		require.NoError(t, err)
		require.Empty(t, events)
		msg, err := b.client.Message(ctx, res.Message.ID)
		require.NoError(t, err)
		require.Equal(t, outbound.MessageStatusPending, msg.Status)
		require.Empty(t, msg.CancelledBy)
		env, err := b.client.Envelope(ctx, bulk.Envelope.ID)
		require.NoError(t, err)
		require.True(t, env.CancelledAt.IsZero())
	})

	t.Run("AuditorErrorUndoesCancel", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		failing := outbound.AuditorFunc(func(_ context.Context, _ pgx.Tx, ev outbound.AuditEvent) error {
			if ev.Action == outbound.AuditActionCancel {
				return errors.New("audit log unavailable")
			}
			return nil
		})
		b := setup(t, withConfig(&outbound.Config{Auditor: failing}))
		res := mustTrigger(ctx, t, b.client, 1, &outbound.TriggerOpts{TemplateID: "t"})
		bulk := mustBulkTrigger(ctx, t, b.client, []int64{1, 2}, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b"})

		err := b.client.CancelMessage(ctx, res.Message.ID, &outbound.CancelOpts{Actor: "agent:7"})
		require.ErrorContains(t, err, "audit log unavailable")
		_, err = b.client.CancelEnvelope(ctx, bulk.Envelope.ID, &outbound.CancelOpts{Actor: "agent:7"})
		require.ErrorContains(t, err, "audit log unavailable")

		for _, id := range []uuid.UUID{res.Message.ID, bulk.Messages[0].ID, bulk.Messages[1].ID} {
			msg, err := b.client.Message(ctx, id)
			require.NoError(t, err)
			require.Equal(t, outbound.MessageStatusPending, msg.Status, "the cancel was undone")
			require.Empty(t, msg.CancelledBy)
		}
	})

	t.Run("BadActor", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		b := setup(t)
		res := mustTrigger(ctx, t, b.client, 1, &outbound.TriggerOpts{TemplateID: "t"})
		long := &outbound.CancelOpts{Actor: strings.Repeat("a", outbound.MaxActorBytes+1)}
		requireInvalidArgument(t, b.client.CancelMessage(ctx, res.Message.ID, long), "CancelOpts.Actor")
		_, err := b.client.CancelEnvelope(ctx, uuid.Must(uuid.NewV7()), &outbound.CancelOpts{Actor: "bad\x00actor"})
		requireInvalidArgument(t, err, "CancelOpts.Actor")
		msg, err := b.client.Message(ctx, res.Message.ID)
		require.NoError(t, err)
		require.Equal(t, outbound.MessageStatusPending, msg.Status)
	})
}

// requireInvalidArgument requires err to be an *outbound.InvalidArgumentError
// naming field.
func requireInvalidArgument(tb testing.TB, err error, field string) {
	tb.Helper()
	var argErr *outbound.InvalidArgumentError
	require.ErrorAs(tb, err, &argErr)
	require.Equal(tb, field, argErr.Field)
}
