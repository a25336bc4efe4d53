package outbound_test

import (
	"testing"

	"github.com/cairnloop/outbound"
	"github.com/cairnloop/outbound/internal/sqltext"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// Reads carry a body only when asked for it: a body may be MaxContentBytes
// long, and a page of them would take that many times its rows.
func TestBoundedReads(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	b := setup(t)
	// "é" and "ö" are two bytes each.
	const body = "héllo wörld"
	res := mustTrigger(ctx, t, b.client, 1, &outbound.TriggerOpts{TemplateID: "t", Content: body})
	bulk := mustBulkTrigger(ctx, t, b.client, []int64{1, 2}, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: body})

	t.Run("MessagePreview", func(t *testing.T) {
		for n, want := range map[int]string{1: "h", 2: "h", 3: "hé", 4: "hél", 100: body} {
			msg, err := b.client.MessagePreview(ctx, res.Message.ID, n)
			require.NoError(t, err)
			require.Equal(t, want, msg.Content, "at most %d bytes, cut at a character", n)
			require.Equal(t, len(body), msg.ContentBytes)
		}
		whole, err := b.client.Message(ctx, res.Message.ID)
		require.NoError(t, err)
		preview, err := b.client.MessagePreview(ctx, res.Message.ID, 3)
		require.NoError(t, err)
		preview.Content = whole.Content
		require.Equal(t, whole, preview, "every other field is read")

		_, err = b.client.MessagePreview(ctx, uuid.Must(uuid.NewV7()), 10)
		require.ErrorIs(t, err, outbound.ErrNotFound)
		_, err = b.client.MessagePreview(ctx, res.Message.ID, 0)
		requireInvalidArgument(t, err, "maxContentBytes")
	})

	t.Run("EnvelopePreview", func(t *testing.T) {
		env, err := b.client.EnvelopePreview(ctx, bulk.Envelope.ID, 4)
		require.NoError(t, err)
		require.Equal(t, "hél", env.RenderedBody)
		require.Equal(t, len(body), env.RenderedBodyBytes)
		whole, err := b.client.Envelope(ctx, bulk.Envelope.ID)
		require.NoError(t, err)
		require.Equal(t, body, whole.RenderedBody)
		env.RenderedBody = whole.RenderedBody
		require.Equal(t, whole, env)

		_, err = b.client.EnvelopePreview(ctx, uuid.Must(uuid.NewV7()), 10)
		require.ErrorIs(t, err, outbound.ErrNotFound)
		_, err = b.client.EnvelopePreview(ctx, bulk.Envelope.ID, -1)
		requireInvalidArgument(t, err, "maxBodyBytes")
	})

	t.Run("ListEnvelopes", func(t *testing.T) {
		page, err := b.client.ListEnvelopes(ctx, nil)
		require.NoError(t, err)
		require.Len(t, page.Envelopes, 1)
		require.Empty(t, page.Envelopes[0].RenderedBody)
		require.Equal(t, len(body), page.Envelopes[0].RenderedBodyBytes)

		page, err = b.client.ListEnvelopes(ctx, &outbound.ListEnvelopesParams{IncludeBody: true})
		require.NoError(t, err)
		require.Equal(t, body, page.Envelopes[0].RenderedBody)
	})

	// The statements that read a message for an attempt, other than the
	// claim that hands it to the Notifier, read no content: a claim reads
	// the body once.
	t.Run("ClaimReadsContentOnce", func(t *testing.T) {
		q := sqltext.New("s", "rs")
		for name, sql := range map[string]string{
			"SelectMessageClaim": q.SelectMessageClaim,
			"SelectMessageKey":   q.SelectMessageKey,
			"LockMessage":        q.LockMessage,
		} {
			require.Contains(t, sql, sqltext.MessageColumnsWithoutContent, name)
			require.NotContains(t, sql, sqltext.MessageColumns, name)
		}
		for name, sql := range map[string]string{"ClaimMessage": q.ClaimMessage, "ClaimMessageLimited": q.ClaimMessageLimited} {
			require.Contains(t, sql, sqltext.MessageColumns, name, "the claim reads the body for the Notifier")
		}
		// ClaimMessageLimited reads the body only in its branch that claims.
		require.Contains(t, q.ClaimMessageLimited, "RETURNING "+sqltext.MessageColumnsWithoutContent+", extract(epoch FROM rate_wait_until")
	})
}
