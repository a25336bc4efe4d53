package outbound_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"testing"

	"github.com/cairnloop/outbound"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// recordingAuditor keeps every event it is given.
type recordingAuditor struct {
	mu     sync.Mutex
	events []outbound.AuditEvent
}

func (a *recordingAuditor) Audit(_ context.Context, _ pgx.Tx, e outbound.AuditEvent) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events = append(a.events, e)
	return nil
}

func keys(m map[string]any) []string { return slices.Sorted(maps.Keys(m)) }

func TestAuditor(t *testing.T) {
	t.Parallel()

	t.Run("NoopIsTheDefault", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		b := setup(t)
		mustTrigger(ctx, t, b.client, 1, &outbound.TriggerOpts{TemplateID: "t"})
		mustBulkTrigger(ctx, t, b.client, []int64{1, 2}, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b"})
		require.Zero(t, countRows(t, b.schema, "audit_events"))
		require.NoError(t, outbound.NoopAuditor{}.Audit(ctx, nil, outbound.AuditEvent{}))
	})

	t.Run("MetadataKeySets", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		rec := &recordingAuditor{}
		b := setup(t, withConfig(&outbound.Config{Auditor: rec, MaxBatchSize: 2}))

		mustTrigger(ctx, t, b.client, 42, &outbound.TriggerOpts{TemplateID: "recovery", Actor: "agent:1", Content: "private body"})
		bulk := mustBulkTrigger(ctx, t, b.client, []int64{1, 2}, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "private body", Actor: "agent:2"})
		_, err := b.client.BulkTrigger(ctx, []int64{1, 2, 3}, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "private body", Actor: "agent:3"})
		var tooLarge *outbound.BatchTooLargeError
		require.ErrorAs(t, err, &tooLarge)

		require.Len(t, rec.events, 3)
		trigger, submitted, refused := rec.events[0], rec.events[1], rec.events[2]

		require.Equal(t, outbound.AuditActionTrigger, trigger.Action)
		require.Equal(t, "outbound_trigger", trigger.Action)
		require.Equal(t, "agent:1", trigger.Actor)
		require.Equal(t, []string{"conversation_id", "template_id"}, keys(trigger.Metadata))
		require.Equal(t, map[string]any{"conversation_id": int64(42), "template_id": "recovery"}, trigger.Metadata)
		require.False(t, trigger.OccurredAt.IsZero())

		require.Equal(t, "bulk_outbound_trigger", submitted.Action)
		require.Equal(t, "agent:2", submitted.Actor)
		require.Equal(t, []string{"bulk_envelope_id", "count", "template_id"}, keys(submitted.Metadata))
		require.Equal(t, map[string]any{"bulk_envelope_id": bulk.Envelope.ID.String(), "count": 2, "template_id": "t"}, submitted.Metadata)

		require.Equal(t, "bulk_outbound_refused", refused.Action)
		require.Equal(t, "agent:3", refused.Actor)
		require.Equal(t, []string{"bulk_envelope_id", "count", "effective_cap", "template_id"}, keys(refused.Metadata))
		require.Equal(t, map[string]any{"bulk_envelope_id": tooLarge.EnvelopeID.String(), "count": 3, "effective_cap": 2, "template_id": "t"}, refused.Metadata)

		for _, e := range rec.events {
			for _, v := range e.Metadata {
				require.NotEqual(t, "private body", v, "no body in audit metadata")
			}
		}
	})

	t.Run("TableAuditorWritesAndLists", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		b := setup(t, audited())

		mustTrigger(ctx, t, b.client, 42, &outbound.TriggerOpts{TemplateID: "recovery", Actor: "agent:1"})
		bulk := mustBulkTrigger(ctx, t, b.client, []int64{1, 2}, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b"})

		events, err := b.audit.ListEvents(ctx, nil)
		require.NoError(t, err)
		require.Len(t, events, 2)
		require.Equal(t, "bulk_outbound_trigger", events[0].Action, "newest first")
		require.Empty(t, events[0].Actor)
		require.Equal(t, map[string]any{"bulk_envelope_id": bulk.Envelope.ID.String(), "count": float64(2), "template_id": "t"}, events[0].Metadata)
		require.Equal(t, "outbound_trigger", events[1].Action)
		require.Equal(t, "agent:1", events[1].Actor)
		require.Equal(t, map[string]any{"conversation_id": float64(42), "template_id": "recovery"}, events[1].Metadata)
		require.NotEqual(t, uuid.Nil, events[1].ID)

		only, err := b.audit.ListEvents(ctx, &outbound.ListAuditEventsParams{Action: "outbound_trigger", Limit: 1})
		require.NoError(t, err)
		require.Len(t, only, 1)
		require.Equal(t, events[1].ID, only[0].ID)

		_, err = b.audit.ListEvents(ctx, &outbound.ListAuditEventsParams{Limit: 501})
		require.ErrorIs(t, err, outbound.ErrInvalidArgument)
	})

	t.Run("PerCallOverride", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		b := setup(t, audited())
		rec := &recordingAuditor{}

		mustTrigger(ctx, t, b.client, 1, &outbound.TriggerOpts{TemplateID: "t", Auditor: rec})
		mustBulkTrigger(ctx, t, b.client, []int64{1}, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b", Auditor: rec})
		require.Len(t, rec.events, 2)
		require.Zero(t, countRows(t, b.schema, "audit_events"), "the configured auditor was not used")

		mustTrigger(ctx, t, b.client, 2, &outbound.TriggerOpts{TemplateID: "t"})
		require.Equal(t, 1, countRows(t, b.schema, "audit_events"), "without an override the configured auditor is used")
	})

	// Ported from the original's atomicity test: an auditor that fails after
	// the rows are staged rolls back envelope, messages and jobs.
	t.Run("ErrorRollsBackEverything", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		b := setup(t, audited())
		auditErr := errors.New("audit store down")
		failing := outbound.AuditorFunc(func(ctx context.Context, tx pgx.Tx, e outbound.AuditEvent) error {
			// Write through tx first, so the rollback has something to undo.
			if err := b.audit.Audit(ctx, tx, e); err != nil {
				return err
			}
			return auditErr
		})

		_, err := b.client.BulkTrigger(ctx, []int64{1, 2, 3}, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b", Auditor: failing})
		require.ErrorIs(t, err, auditErr)
		_, err = b.client.Trigger(ctx, 1, &outbound.TriggerOpts{TemplateID: "t", Auditor: failing})
		require.ErrorIs(t, err, auditErr)
		require.Equal(t, rowCounts{}, countAll(t, b.schema))

		// In a caller's transaction too, which stays usable.
		tx, err := testPool.Begin(ctx)
		require.NoError(t, err)
		_, err = b.client.BulkTriggerTx(ctx, tx, []int64{1, 2}, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b", Auditor: failing})
		require.ErrorIs(t, err, auditErr)
		_, err = b.client.BulkTriggerTx(ctx, tx, []int64{4}, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b"})
		require.NoError(t, err)
		require.NoError(t, tx.Commit(ctx))
		require.Equal(t, rowCounts{Envelopes: 1, Messages: 1, Jobs: 1, AuditEvents: 1}, countAll(t, b.schema))
	})
}
