package outbound_test

import (
	"testing"

	"github.com/cairnloop/outbound"
	"github.com/stretchr/testify/require"
)

// TestReadsTx checks each read's Tx variant, as River's JobGetTx and
// JobListTx: inside the caller's transaction it sees what that transaction
// wrote and has not committed, which the same read on the pool does not; a
// nil tx is refused, naming it.
func TestReadsTx(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	b := setup(t)
	tx, err := testPool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	res, err := b.client.BulkTriggerTx(ctx, tx, []int64{11, 12}, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b"})
	require.NoError(t, err)
	msgID, envID := res.Messages[0].ID, res.Envelope.ID

	msg, err := b.client.MessageTx(ctx, tx, msgID)
	require.NoError(t, err)
	require.Equal(t, int64(11), msg.ConversationID)
	_, err = b.client.Message(ctx, msgID)
	require.ErrorIs(t, err, outbound.ErrNotFound, "uncommitted: the pool cannot see it")

	env, err := b.client.EnvelopeTx(ctx, tx, envID)
	require.NoError(t, err)
	require.Equal(t, []int64{11, 12}, env.RecipientConversationIDs)
	require.Equal(t, outbound.EnvelopeOutcomeInProgress, env.Outcome)
	_, err = b.client.Envelope(ctx, envID)
	require.ErrorIs(t, err, outbound.ErrNotFound)

	progress, err := b.client.EnvelopeProgressTx(ctx, tx, envID)
	require.NoError(t, err)
	require.Equal(t, 2, progress.Pending)
	_, err = b.client.EnvelopeProgress(ctx, envID)
	require.ErrorIs(t, err, outbound.ErrNotFound)

	envelopes, err := b.client.ListEnvelopesTx(ctx, tx, nil)
	require.NoError(t, err)
	require.Len(t, envelopes.Envelopes, 1)
	require.Equal(t, envID, envelopes.Envelopes[0].ID)
	envelopes, err = b.client.ListEnvelopes(ctx, nil)
	require.NoError(t, err)
	require.Empty(t, envelopes.Envelopes)

	messages, err := b.client.ListMessagesTx(ctx, tx, &outbound.ListMessagesParams{BulkEnvelopeID: envID})
	require.NoError(t, err)
	require.Len(t, messages.Messages, 2)
	messages, err = b.client.ListMessages(ctx, &outbound.ListMessagesParams{BulkEnvelopeID: envID})
	require.NoError(t, err)
	require.Empty(t, messages.Messages)

	// Committed, the pool's reads see the same.
	require.NoError(t, tx.Commit(ctx))
	committed, err := b.client.Message(ctx, msgID)
	require.NoError(t, err)
	require.Equal(t, msg.ID, committed.ID)

	for name, call := range map[string]func() error{
		"MessageTx":          func() error { _, err := b.client.MessageTx(ctx, nil, msgID); return err },
		"EnvelopeTx":         func() error { _, err := b.client.EnvelopeTx(ctx, nil, envID); return err },
		"EnvelopeProgressTx": func() error { _, err := b.client.EnvelopeProgressTx(ctx, nil, envID); return err },
		"ListEnvelopesTx":    func() error { _, err := b.client.ListEnvelopesTx(ctx, nil, nil); return err },
		"ListMessagesTx":     func() error { _, err := b.client.ListMessagesTx(ctx, nil, nil); return err },
	} {
		var argErr *outbound.InvalidArgumentError
		require.ErrorAs(t, call(), &argErr, name)
		require.Equal(t, "tx", argErr.Field, name)
	}
}
