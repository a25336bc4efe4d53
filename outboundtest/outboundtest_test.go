package outboundtest_test

import (
	"context"
	"testing"
	"time"

	"github.com/cairnloop/outbound"
	"github.com/cairnloop/outbound/outboundtest"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

func TestRequireTriggered(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	res, err := b.client.Trigger(ctx, 42, &outbound.TriggerOpts{TemplateID: "recovery", Content: "We fixed it.", ScheduleIn: time.Hour})
	require.NoError(t, err)

	t.Run("Passes", func(t *testing.T) {
		msg := outboundtest.RequireTriggered(ctx, t, b.client, outboundtest.Expected{ConversationID: 42, TemplateID: "recovery"})
		require.Equal(t, res.Message, msg, "returns the message found")
		requirePass(t, func(tb testing.TB) {
			outboundtest.RequireTriggered(ctx, tb, b.client, outboundtest.Expected{
				ConversationID: 42, TemplateID: "recovery",
				Status: outbound.MessageStatusPending, Content: "We fixed it.", ScheduledAt: time.Now().Add(time.Hour),
			})
		})
	})

	t.Run("FailsWhenNoneMatches", func(t *testing.T) {
		requireFailure(t, func(tb testing.TB) {
			require.Nil(t, outboundtest.RequireTriggered(ctx, tb, b.client, outboundtest.Expected{ConversationID: 42, TemplateID: "welcome"}))
		},
			`expected one message for conversation 42, template "welcome", any envelope; found none`,
			`messages of conversation 42: [conversation 42, template "recovery", no envelope, pending]`)
		requireFailure(t, func(tb testing.TB) {
			outboundtest.RequireTriggered(ctx, tb, b.client, outboundtest.Expected{ConversationID: 42, BulkEnvelopeID: uuid.Must(uuid.NewV7())})
		}, "found none")
	})

	t.Run("FailsOnAProperty", func(t *testing.T) {
		requireFailure(t, func(tb testing.TB) {
			outboundtest.RequireTriggered(ctx, tb, b.client, outboundtest.Expected{ConversationID: 42, Status: outbound.MessageStatusSent})
		}, "message "+res.Message.ID.String()+` for conversation 42, any template, any envelope: expected status sent, found pending`)
		requireFailure(t, func(tb testing.TB) {
			outboundtest.RequireTriggered(ctx, tb, b.client, outboundtest.Expected{ConversationID: 42, Content: "Other."})
		}, `expected content "Other.", found "We fixed it."`)
		requireFailure(t, func(tb testing.TB) {
			outboundtest.RequireTriggered(ctx, tb, b.client, outboundtest.Expected{ConversationID: 42, ScheduledAt: time.Now().Add(2 * time.Hour)})
		}, "expected scheduled at ")
	})

	t.Run("FailsWhenSeveralMatch", func(t *testing.T) {
		bulk, err := b.client.BulkTrigger(ctx, []int64{42, 43}, &outbound.BulkTriggerOpts{TemplateID: "recovery", RenderedBody: "b"})
		require.NoError(t, err)
		requireFailure(t, func(tb testing.TB) {
			outboundtest.RequireTriggered(ctx, tb, b.client, outboundtest.Expected{ConversationID: 42, TemplateID: "recovery"})
		}, "found 2: ", "envelope "+bulk.Envelope.ID.String(), "use RequireManyTriggered")
		// The envelope tells them apart.
		msg := outboundtest.RequireTriggered(ctx, t, b.client, outboundtest.Expected{ConversationID: 42, BulkEnvelopeID: bulk.Envelope.ID})
		require.Equal(t, bulk.Messages[0].ID, msg.ID)
	})
}

func TestRequireTriggeredTx(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	tx, err := testPool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	res, err := b.client.TriggerTx(ctx, tx, 7, &outbound.TriggerOpts{TemplateID: "recovery"})
	require.NoError(t, err)

	// Inside the transaction the message is there; outside, not yet.
	msg := outboundtest.RequireTriggeredTx(ctx, t, b.client, tx, outboundtest.Expected{ConversationID: 7, TemplateID: "recovery"})
	require.Equal(t, res.Message.ID, msg.ID)
	outboundtest.RequireNotTriggered(ctx, t, b.client, outboundtest.Expected{ConversationID: 7})
	requireFailure(t, func(tb testing.TB) {
		outboundtest.RequireNotTriggeredTx(ctx, tb, b.client, tx, outboundtest.Expected{ConversationID: 7})
	}, "expected no message for conversation 7")
	msgs := outboundtest.RequireManyTriggeredTx(ctx, t, b.client, tx, []outboundtest.Expected{{ConversationID: 7, TemplateID: "recovery"}})
	require.Equal(t, []uuid.UUID{res.Message.ID}, []uuid.UUID{msgs[0].ID})

	require.NoError(t, tx.Rollback(ctx))
	requireFailure(t, func(tb testing.TB) {
		outboundtest.RequireTriggered(ctx, tb, b.client, outboundtest.Expected{ConversationID: 7})
	}, "found none")
}

func TestRequireNotTriggered(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	_, err := b.client.Trigger(ctx, 42, &outbound.TriggerOpts{TemplateID: "recovery"})
	require.NoError(t, err)

	outboundtest.RequireNotTriggered(ctx, t, b.client, outboundtest.Expected{ConversationID: 43})
	outboundtest.RequireNotTriggered(ctx, t, b.client, outboundtest.Expected{ConversationID: 42, TemplateID: "welcome"})
	// A property that differs is not a match.
	outboundtest.RequireNotTriggered(ctx, t, b.client, outboundtest.Expected{ConversationID: 42, Status: outbound.MessageStatusSent})

	requireFailure(t, func(tb testing.TB) {
		outboundtest.RequireNotTriggered(ctx, tb, b.client, outboundtest.Expected{ConversationID: 42, Status: outbound.MessageStatusPending})
	}, `expected no message for conversation 42, any template, any envelope with status pending; found 1: [conversation 42, template "recovery", no envelope, pending]`)
	requireFailure(t, func(tb testing.TB) {
		outboundtest.RequireNotTriggered(ctx, tb, b.client, outboundtest.Expected{})
	}, "expected no message for any conversation, any template, any envelope; found 1")
}

func TestRequireManyTriggered(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	bulk, err := b.client.BulkTrigger(ctx, []int64{3, 1, 2}, &outbound.BulkTriggerOpts{TemplateID: "outage", RenderedBody: "Back up."})
	require.NoError(t, err)
	_, err = b.client.Trigger(ctx, 9, &outbound.TriggerOpts{TemplateID: "recovery"})
	require.NoError(t, err)

	t.Run("Passes", func(t *testing.T) {
		msgs := outboundtest.RequireManyTriggered(ctx, t, b.client, []outboundtest.Expected{
			{ConversationID: 3, TemplateID: "outage", BulkEnvelopeID: bulk.Envelope.ID, Content: "Back up."},
			{ConversationID: 1, TemplateID: "outage"},
			{ConversationID: 2, TemplateID: "outage", Status: outbound.MessageStatusPending},
		})
		require.Len(t, msgs, 3)
		for i, m := range bulk.Messages {
			require.Equal(t, m.ID, msgs[i].ID, "in the bulk's order")
		}
		// Naming no template, every message counts.
		all := outboundtest.RequireManyTriggered(ctx, t, b.client, []outboundtest.Expected{
			{ConversationID: 3}, {ConversationID: 1}, {ConversationID: 2}, {ConversationID: 9},
		})
		require.Len(t, all, 4)
	})

	t.Run("FailsOnCount", func(t *testing.T) {
		requireFailure(t, func(tb testing.TB) {
			require.Nil(t, outboundtest.RequireManyTriggered(ctx, tb, b.client, []outboundtest.Expected{
				{ConversationID: 3, TemplateID: "outage"}, {ConversationID: 1, TemplateID: "outage"},
			}))
		}, `expected 2 messages of templates ["outage"]; found 3: [conversation 3, template "outage"`)
	})

	t.Run("FailsOnOrderOrProperty", func(t *testing.T) {
		requireFailure(t, func(tb testing.TB) {
			outboundtest.RequireManyTriggered(ctx, tb, b.client, []outboundtest.Expected{
				{ConversationID: 1, TemplateID: "outage"},
				{ConversationID: 3, TemplateID: "outage"},
				{ConversationID: 2, TemplateID: "outage", Status: outbound.MessageStatusSent},
			})
		},
			"message 1 of 3: expected conversation 1, found 3",
			"message 2 of 3: expected conversation 3, found 1",
			"message 3 of 3: expected status sent, found pending")
	})
}
