package outbound_test

import (
	"testing"

	"github.com/cairnloop/outbound"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

func TestCancelMessageTx(t *testing.T) {
	t.Parallel()

	t.Run("VisibleOnCommit", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		b := setup(t)
		res := mustTrigger(ctx, t, b.client, 42, &outbound.TriggerOpts{TemplateID: "recovery"})

		tx, err := testPool.Begin(ctx)
		require.NoError(t, err)
		defer func() { _ = tx.Rollback(ctx) }()
		require.NoError(t, b.client.CancelMessageTx(ctx, tx, res.Message.ID, nil))

		// Outside the transaction nothing has changed yet.
		outside, err := b.client.Message(ctx, res.Message.ID)
		require.NoError(t, err)
		require.Equal(t, outbound.MessageStatusPending, outside.Status)
		require.Equal(t, "available", jobByID(t, b.schema, res.Message.JobID).State)

		require.NoError(t, tx.Commit(ctx))
		msg, err := b.client.Message(ctx, res.Message.ID)
		require.NoError(t, err)
		require.Equal(t, outbound.MessageStatusCancelled, msg.Status)
		require.Equal(t, "cancelled", jobByID(t, b.schema, msg.JobID).State)
		again := mustTrigger(ctx, t, b.client, 42, &outbound.TriggerOpts{TemplateID: "recovery"})
		require.False(t, again.Duplicate, "the cancel freed the dedup key")
	})

	t.Run("UndoneByRollbackWithTheHostsRows", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		b := setup(t)
		_, err := testPool.Exec(ctx, "CREATE TABLE "+table(b.schema, "host_notes")+" (note text)")
		require.NoError(t, err)
		res := mustTrigger(ctx, t, b.client, 42, &outbound.TriggerOpts{TemplateID: "recovery"})

		tx, err := testPool.Begin(ctx)
		require.NoError(t, err)
		_, err = tx.Exec(ctx, "INSERT INTO "+table(b.schema, "host_notes")+" VALUES ('follow-up withdrawn')")
		require.NoError(t, err)
		require.NoError(t, b.client.CancelMessageTx(ctx, tx, res.Message.ID, nil))
		require.NoError(t, tx.Rollback(ctx))

		msg, err := b.client.Message(ctx, res.Message.ID)
		require.NoError(t, err)
		require.Equal(t, outbound.MessageStatusPending, msg.Status)
		require.Equal(t, "available", jobByID(t, b.schema, msg.JobID).State)
		require.Zero(t, countRows(t, b.schema, "host_notes"))
		dup := mustTrigger(ctx, t, b.client, 42, &outbound.TriggerOpts{TemplateID: "recovery"})
		require.True(t, dup.Duplicate, "the message still holds its key")
	})

	t.Run("ErrorsLeaveTheTransactionUsable", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		b := setup(t)
		sent := mustTrigger(ctx, t, b.client, 1, &outbound.TriggerOpts{TemplateID: "t"})
		b.factory.setStatus(t, sent.Message.ID, outbound.MessageStatusSent)
		pending := mustTrigger(ctx, t, b.client, 2, &outbound.TriggerOpts{TemplateID: "t"})

		tx, err := testPool.Begin(ctx)
		require.NoError(t, err)
		defer func() { _ = tx.Rollback(ctx) }()
		require.ErrorIs(t, b.client.CancelMessageTx(ctx, tx, sent.Message.ID, nil), outbound.ErrNotCancellable)
		require.ErrorIs(t, b.client.CancelMessageTx(ctx, tx, uuid.New(), nil), outbound.ErrNotFound)
		require.ErrorIs(t, b.client.CancelMessageTx(ctx, nil, pending.Message.ID, nil), outbound.ErrInvalidArgument)
		require.NoError(t, b.client.CancelMessageTx(ctx, tx, pending.Message.ID, nil))
		require.NoError(t, tx.Commit(ctx))

		msg, err := b.client.Message(ctx, pending.Message.ID)
		require.NoError(t, err)
		require.Equal(t, outbound.MessageStatusCancelled, msg.Status)
	})
}

func TestCancelEnvelopeTx(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	b := setup(t)
	bulk := mustBulkTrigger(ctx, t, b.client, []int64{1, 2, 3}, &outbound.BulkTriggerOpts{TemplateID: "outage", RenderedBody: "b"})

	// Rolled back: nothing happened.
	tx, err := testPool.Begin(ctx)
	require.NoError(t, err)
	n, err := b.client.CancelEnvelopeTx(ctx, tx, bulk.Envelope.ID, nil)
	require.NoError(t, err)
	require.Equal(t, 3, n)
	require.NoError(t, tx.Rollback(ctx))
	progress, err := b.client.EnvelopeProgress(ctx, bulk.Envelope.ID)
	require.NoError(t, err)
	require.Equal(t, outbound.Progress{Pending: 3}, *progress)

	// Committed, after an error that leaves the transaction usable.
	tx, err = testPool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	_, err = b.client.CancelEnvelopeTx(ctx, tx, uuid.New(), nil)
	require.ErrorIs(t, err, outbound.ErrNotFound)
	n, err = b.client.CancelEnvelopeTx(ctx, tx, bulk.Envelope.ID, nil)
	require.NoError(t, err)
	require.Equal(t, 3, n)
	env, err := b.client.Envelope(ctx, bulk.Envelope.ID)
	require.NoError(t, err)
	require.Equal(t, outbound.EnvelopeStatusSubmitted, env.Status, "not visible before the commit")
	require.NoError(t, tx.Commit(ctx))

	env, err = b.client.Envelope(ctx, bulk.Envelope.ID)
	require.NoError(t, err)
	require.Equal(t, outbound.EnvelopeStatusCancelled, env.Status)
	progress, err = b.client.EnvelopeProgress(ctx, bulk.Envelope.ID)
	require.NoError(t, err)
	require.Equal(t, outbound.Progress{Cancelled: 3}, *progress)
	for _, m := range bulk.Messages {
		require.Equal(t, "cancelled", jobByID(t, b.schema, m.JobID).State)
	}
	_, err = b.client.CancelEnvelopeTx(ctx, nil, bulk.Envelope.ID, nil)
	require.ErrorIs(t, err, outbound.ErrInvalidArgument)
}
