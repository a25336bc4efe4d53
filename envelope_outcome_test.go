package outbound_test

import (
	"testing"

	"github.com/cairnloop/outbound"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// An envelope reports how its bulk went, derived from its messages, and
// ListEnvelopes filters by it.
func TestEnvelopeOutcome(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	b := setup(t)
	messages := table(b.schema, "messages")
	// finish gives the bulk's messages these final statuses, in order.
	finish := func(bulk *outbound.BulkTriggerResult, statuses ...outbound.MessageStatus) {
		t.Helper()
		for i, s := range statuses {
			_, err := testPool.Exec(ctx, "UPDATE "+messages+" SET status = $2 WHERE id = $1", bulk.Messages[i].ID, string(s))
			require.NoError(t, err)
		}
	}
	bulk := func(ids ...int64) *outbound.BulkTriggerResult {
		t.Helper()
		res := mustBulkTrigger(ctx, t, b.client, ids, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b"})
		require.Equal(t, outbound.EnvelopeOutcomeInProgress, res.Envelope.Outcome, "a new envelope's messages are all pending")
		return res
	}

	inProgress := bulk(1, 2, 3)
	finish(inProgress, outbound.MessageStatusSent, outbound.MessageStatusDelivering)

	completed := bulk(1, 2)
	finish(completed, outbound.MessageStatusSent, outbound.MessageStatusSent)

	withFailures := bulk(1, 2, 3)
	finish(withFailures, outbound.MessageStatusSent, outbound.MessageStatusDiscarded, outbound.MessageStatusUnconfirmed)

	cancelled := bulk(1, 2)
	_, err := b.client.CancelEnvelope(ctx, cancelled.Envelope.ID, nil)
	require.NoError(t, err)

	partly := bulk(1, 2, 3)
	finish(partly, outbound.MessageStatusSent)
	_, err = b.client.CancelEnvelope(ctx, partly.Envelope.ID, nil)
	require.NoError(t, err)

	require.NoError(t, b.client.SetMaxBatchSize(1))
	_, err = b.client.BulkTrigger(ctx, []int64{1, 2}, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b"})
	var tooLarge *outbound.BatchTooLargeError
	require.ErrorAs(t, err, &tooLarge)
	require.NoError(t, b.client.SetMaxBatchSize(outbound.DefaultMaxBatchSize))

	want := map[uuid.UUID]outbound.EnvelopeOutcome{
		inProgress.Envelope.ID:   outbound.EnvelopeOutcomeInProgress,
		completed.Envelope.ID:    outbound.EnvelopeOutcomeCompleted,
		withFailures.Envelope.ID: outbound.EnvelopeOutcomeCompletedWithFailures,
		cancelled.Envelope.ID:    outbound.EnvelopeOutcomeCancelled,
		partly.Envelope.ID:       outbound.EnvelopeOutcomePartlyCancelled,
		tooLarge.EnvelopeID:      outbound.EnvelopeOutcomeRefused,
	}
	for id, outcome := range want {
		env, err := b.client.Envelope(ctx, id)
		require.NoError(t, err)
		require.Equal(t, outcome, env.Outcome, "Envelope %s", id)
		preview, err := b.client.EnvelopePreview(ctx, id, 1)
		require.NoError(t, err)
		require.Equal(t, outcome, preview.Outcome, "EnvelopePreview %s", id)

		page, err := b.client.ListEnvelopes(ctx, &outbound.ListEnvelopesParams{Outcome: outcome})
		require.NoError(t, err)
		require.Len(t, page.Envelopes, 1, "ListEnvelopes by %s", outcome)
		require.Equal(t, id, page.Envelopes[0].ID)
		require.Equal(t, outcome, page.Envelopes[0].Outcome)
	}
	all, err := b.client.ListEnvelopes(ctx, nil)
	require.NoError(t, err)
	require.Len(t, all.Envelopes, len(want))
	for _, env := range all.Envelopes {
		require.Equal(t, want[env.ID], env.Outcome, "ListEnvelopes %s", env.ID)
	}

	t.Run("PagesByOutcome", func(t *testing.T) {
		another := bulk(4, 5)
		finish(another, outbound.MessageStatusSent, outbound.MessageStatusSent)
		var seen []uuid.UUID
		params := &outbound.ListEnvelopesParams{Outcome: outbound.EnvelopeOutcomeCompleted, Limit: 1}
		for {
			page, err := b.client.ListEnvelopes(ctx, params)
			require.NoError(t, err)
			for _, env := range page.Envelopes {
				seen = append(seen, env.ID)
			}
			if page.NextCursor == nil {
				break
			}
			params.After = page.NextCursor
		}
		require.Equal(t, []uuid.UUID{another.Envelope.ID, completed.Envelope.ID}, seen)
	})

	t.Run("BadFilter", func(t *testing.T) {
		_, err := b.client.ListEnvelopes(ctx, &outbound.ListEnvelopesParams{Outcome: "done"})
		requireInvalidArgument(t, err, "ListEnvelopesParams.Outcome")
		_, err = b.client.ListEnvelopes(ctx, &outbound.ListEnvelopesParams{Outcome: outbound.EnvelopeOutcomeCompleted, Status: outbound.EnvelopeStatusSubmitted})
		requireInvalidArgument(t, err, "ListEnvelopesParams.Outcome")
	})
}
