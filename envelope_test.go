package outbound_test

import (
	"testing"

	"github.com/cairnloop/outbound"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

func TestEnvelopeReads(t *testing.T) {
	t.Parallel()

	t.Run("EnvelopeNotFound", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, err := b.client.Envelope(ctxT(t), uuid.Must(uuid.NewV7()))
		require.ErrorIs(t, err, outbound.ErrNotFound)
	})

	t.Run("ListNewestFirstDefaultLimitAndStatus", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		b := setup(t, withConfig(&outbound.Config{MaxBatchSize: 1}))

		const submitted = 52
		var ids []uuid.UUID
		for i := range submitted {
			res := mustBulkTrigger(ctx, t, b.client, []int64{int64(i + 1)}, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b"})
			ids = append(ids, res.Envelope.ID)
		}
		var refused []uuid.UUID
		for range 3 {
			_, err := b.client.BulkTrigger(ctx, []int64{1, 2}, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b"})
			var tooLarge *outbound.BatchTooLargeError
			require.ErrorAs(t, err, &tooLarge)
			refused = append(refused, tooLarge.EnvelopeID)
		}

		page, err := b.client.ListEnvelopes(ctx, nil)
		require.NoError(t, err)
		all := page.Envelopes
		require.NotNil(t, page.NextCursor, "more than one page")
		require.Len(t, all, outbound.DefaultListLimit)
		require.Equal(t, 50, len(all))
		require.Equal(t, []uuid.UUID{refused[2], refused[1], refused[0]}, envelopeIDs(all[:3]), "newest first")
		require.Equal(t, ids[submitted-1], all[3].ID)
		for i := 1; i < len(all); i++ {
			require.False(t, all[i].RequestedAt.After(all[i-1].RequestedAt))
		}

		many, err := b.client.ListEnvelopes(ctx, &outbound.ListEnvelopesParams{Limit: 500})
		require.NoError(t, err)
		require.Len(t, many.Envelopes, submitted+3)
		require.Nil(t, many.NextCursor, "the last page")

		onlyRefused, err := b.client.ListEnvelopes(ctx, &outbound.ListEnvelopesParams{Status: outbound.EnvelopeStatusRefusedCapExceeded})
		require.NoError(t, err)
		require.Equal(t, []uuid.UUID{refused[2], refused[1], refused[0]}, envelopeIDs(onlyRefused.Envelopes))

		two, err := b.client.ListEnvelopes(ctx, &outbound.ListEnvelopesParams{Status: outbound.EnvelopeStatusSubmitted, Limit: 2})
		require.NoError(t, err)
		require.Equal(t, []uuid.UUID{ids[submitted-1], ids[submitted-2]}, envelopeIDs(two.Envelopes))

		none, err := b.client.ListEnvelopes(ctx, &outbound.ListEnvelopesParams{Status: outbound.EnvelopeStatusCancelled})
		require.NoError(t, err)
		require.Empty(t, none.Envelopes)
		require.Nil(t, none.NextCursor)
	})
}

func envelopeIDs(envs []*outbound.Envelope) []uuid.UUID {
	ids := make([]uuid.UUID, len(envs))
	for i, e := range envs {
		ids[i] = e.ID
	}
	return ids
}
