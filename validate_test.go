package outbound_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cairnloop/outbound"
	"github.com/stretchr/testify/require"
)

// TestBadInput runs every bad input of the design through the API: each is
// refused with ErrInvalidArgument, names the field, and writes nothing.
func TestBadInput(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	b := setupAudited(t, nil)

	trigger := func(conversationID int64, opts *outbound.TriggerOpts) func() error {
		return func() error { _, err := b.client.Trigger(ctx, conversationID, opts); return err }
	}
	triggerTx := func(conversationID int64, opts *outbound.TriggerOpts) func() error {
		return func() error {
			tx, err := testPool.Begin(ctx)
			require.NoError(t, err)
			_, err = b.client.TriggerTx(ctx, tx, conversationID, opts)
			require.NoError(t, tx.Commit(ctx), "the caller's transaction stays usable")
			return err
		}
	}
	bulk := func(ids []int64, opts *outbound.BulkTriggerOpts) func() error {
		return func() error { _, err := b.client.BulkTrigger(ctx, ids, opts); return err }
	}
	body := &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b"}
	withBulk := func(f func(o *outbound.BulkTriggerOpts)) *outbound.BulkTriggerOpts {
		o := *body
		f(&o)
		return &o
	}

	tests := []struct {
		name  string
		call  func() error
		field string
	}{
		{"TriggerEmptyTemplateID", trigger(1, &outbound.TriggerOpts{}), "TriggerOpts.TemplateID"},
		{"TriggerNilOpts", trigger(1, nil), "TriggerOpts.TemplateID"},
		{"TriggerTxEmptyTemplateID", triggerTx(1, &outbound.TriggerOpts{}), "TriggerOpts.TemplateID"},
		{"TriggerZeroConversation", trigger(0, &outbound.TriggerOpts{TemplateID: "t"}), "conversationID"},
		{"TriggerNegativeConversation", trigger(-5, &outbound.TriggerOpts{TemplateID: "t"}), "conversationID"},
		{"TriggerNegativeScheduleIn", trigger(1, &outbound.TriggerOpts{TemplateID: "t", ScheduleIn: -time.Second}), "TriggerOpts.ScheduleIn"},
		{"TriggerTemplateNUL", trigger(1, &outbound.TriggerOpts{TemplateID: "t\x00"}), "TriggerOpts.TemplateID"},
		{"TriggerContentNUL", trigger(1, &outbound.TriggerOpts{TemplateID: "t", Content: "a\x00b"}), "TriggerOpts.Content"},
		{"TriggerContentInvalidUTF8", trigger(1, &outbound.TriggerOpts{TemplateID: "t", Content: "a\xffb"}), "TriggerOpts.Content"},
		{"TriggerActorInvalidUTF8", trigger(1, &outbound.TriggerOpts{TemplateID: "t", Actor: "\xc3\x28"}), "TriggerOpts.Actor"},
		{"TriggerTemplateInvalidUTF8", trigger(1, &outbound.TriggerOpts{TemplateID: "\xed\xa0\x80"}), "TriggerOpts.TemplateID"},

		{"BulkNoRecipients", bulk(nil, body), "conversationIDs"},
		{"BulkEmptyRecipients", bulk([]int64{}, body), "conversationIDs"},
		{"BulkRepeatedConversation", bulk([]int64{1, 2, 1}, body), "conversationIDs"},
		{"BulkZeroConversation", bulk([]int64{1, 0}, body), "conversationIDs"},
		{"BulkNegativeConversation", bulk([]int64{-1}, body), "conversationIDs"},
		{"BulkEmptyTemplateID", bulk([]int64{1}, withBulk(func(o *outbound.BulkTriggerOpts) { o.TemplateID = "" })), "BulkTriggerOpts.TemplateID"},
		{"BulkNilOpts", bulk([]int64{1}, nil), "BulkTriggerOpts.TemplateID"},
		{"BulkEmptyRenderedBody", bulk([]int64{1}, withBulk(func(o *outbound.BulkTriggerOpts) { o.RenderedBody = "" })), "BulkTriggerOpts.RenderedBody"},
		{"BulkBodyNUL", bulk([]int64{1}, withBulk(func(o *outbound.BulkTriggerOpts) { o.RenderedBody = "x\x00" })), "BulkTriggerOpts.RenderedBody"},
		{"BulkBodyInvalidUTF8", bulk([]int64{1}, withBulk(func(o *outbound.BulkTriggerOpts) { o.RenderedBody = "\xff" })), "BulkTriggerOpts.RenderedBody"},
		{"BulkTemplateNUL", bulk([]int64{1}, withBulk(func(o *outbound.BulkTriggerOpts) { o.TemplateID = "\x00" })), "BulkTriggerOpts.TemplateID"},
		{"BulkActorNUL", bulk([]int64{1}, withBulk(func(o *outbound.BulkTriggerOpts) { o.Actor = "a\x00" })), "BulkTriggerOpts.Actor"},
		{"BulkNegativeScheduleIn", bulk([]int64{1}, withBulk(func(o *outbound.BulkTriggerOpts) { o.ScheduleIn = -time.Minute })), "BulkTriggerOpts.ScheduleIn"},
		// Bad input is refused before the cap: an over-cap bulk with a bad
		// field records no refused envelope.
		{"BulkOverCapWithBadInput", bulk(conversations(30), withBulk(func(o *outbound.BulkTriggerOpts) { o.RenderedBody = "" })), "BulkTriggerOpts.RenderedBody"},
		{"BulkOverCapRepeated", bulk(append(conversations(30), conversations(1)...), body), "conversationIDs"},

		{"ListLimitAbove500", func() error {
			_, err := b.client.ListEnvelopes(ctx, &outbound.ListEnvelopesParams{Limit: 501})
			return err
		}, "ListEnvelopesParams.Limit"},
		{"ListLimitNegative", func() error {
			_, err := b.client.ListEnvelopes(ctx, &outbound.ListEnvelopesParams{Limit: -1})
			return err
		}, "ListEnvelopesParams.Limit"},
		{"ListUnknownStatus", func() error {
			_, err := b.client.ListEnvelopes(ctx, &outbound.ListEnvelopesParams{Status: "x'; DROP TABLE messages; --"})
			return err
		}, "ListEnvelopesParams.Status"},

		{"NewBadSchema", func() error { _, err := outbound.New(testPool, &outbound.Config{Schema: "bad-schema"}); return err }, "Config.Schema"},
		{"NewSchemaInjection", func() error {
			_, err := outbound.New(testPool, &outbound.Config{Schema: `x"; DROP SCHEMA public; --`})
			return err
		}, "Config.Schema"},
		{"NewBadRiverSchema", func() error { _, err := outbound.New(testPool, &outbound.Config{RiverSchema: "1river"}); return err }, "Config.RiverSchema"},
		{"MigrateBadSchema", func() error {
			return outbound.Migrate(ctx, testPool, &outbound.MigrateOpts{Schema: "a b"})
		}, "MigrateOpts.Schema"},
		{"TableAuditorBadSchema", func() error { _, err := outbound.NewTableAuditor(testPool, "a.b"); return err }, "schema"},
	}

	for _, tt := range tests {
		err := tt.call()
		require.ErrorIs(t, err, outbound.ErrInvalidArgument, tt.name)
		require.Contains(t, err.Error(), tt.field, tt.name)
		require.False(t, strings.Contains(err.Error(), "\x00"), "%s: the error does not echo the text", tt.name)
		require.Equal(t, rowCounts{}, countAll(t, b.schema), "%s wrote nothing", tt.name)
	}

	// Nothing reached any other schema either.
	var schemas int
	require.NoError(t, testPool.QueryRow(context.Background(), "SELECT count(*) FROM pg_namespace WHERE nspname IN ('a b', 'bad-schema')").Scan(&schemas))
	require.Zero(t, schemas)
}
