package outbound_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
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
	b := setup(t, audited())

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
		{"BulkOverCapNegative", bulk(append(conversations(30), -1), body), "conversationIDs"},
		{"BulkOverCapBodyTooLong", bulk(conversations(30), withBulk(func(o *outbound.BulkTriggerOpts) { o.RenderedBody = long(outbound.DefaultMaxContentBytes + 1) })), "BulkTriggerOpts.RenderedBody"},

		// Text that is only whitespace: a template id no one can render by,
		// a body that would reach a customer blank.
		{"TriggerBlankTemplateID", trigger(1, &outbound.TriggerOpts{TemplateID: " \t\n"}), "TriggerOpts.TemplateID must not be only whitespace"},
		{"TriggerBlankContent", trigger(1, &outbound.TriggerOpts{TemplateID: "t", Content: "  \u00a0\r\n"}), "TriggerOpts.Content must not be only whitespace"},
		{"TriggerTxBlankContent", triggerTx(1, &outbound.TriggerOpts{TemplateID: "t", Content: "\u2003"}), "TriggerOpts.Content must not be only whitespace"},
		{"BulkBlankTemplateID", bulk([]int64{1}, withBulk(func(o *outbound.BulkTriggerOpts) { o.TemplateID = "   " })), "BulkTriggerOpts.TemplateID must not be only whitespace"},
		{"BulkBlankRenderedBody", bulk([]int64{1}, withBulk(func(o *outbound.BulkTriggerOpts) { o.RenderedBody = "\n\n" })), "BulkTriggerOpts.RenderedBody must not be only whitespace"},
		{"BulkOverCapBlankRenderedBody", bulk(conversations(30), withBulk(func(o *outbound.BulkTriggerOpts) { o.RenderedBody = " " })), "BulkTriggerOpts.RenderedBody must not be only whitespace"},

		// Byte limits, checked before anything reaches the database.
		{"TriggerTemplateTooLong", trigger(1, &outbound.TriggerOpts{TemplateID: long(outbound.MaxTemplateIDBytes + 1)}), "TriggerOpts.TemplateID must be at most 256 bytes, got 257"},
		{"TriggerTemplateTooLongToIndex", trigger(1, &outbound.TriggerOpts{TemplateID: incompressible(4000)}), "TriggerOpts.TemplateID must be at most 256 bytes"},
		{"TriggerContentTooLong", trigger(1, &outbound.TriggerOpts{TemplateID: "t", Content: long(outbound.DefaultMaxContentBytes + 1)}), "TriggerOpts.Content must be at most 131072 bytes, got 131073"},
		{"TriggerContent32MiB", trigger(1, &outbound.TriggerOpts{TemplateID: "t", Content: long(32 << 20)}), "TriggerOpts.Content must be at most 131072 bytes"},
		{"TriggerActorTooLong", trigger(1, &outbound.TriggerOpts{TemplateID: "t", Actor: long(outbound.MaxActorBytes + 1)}), "TriggerOpts.Actor must be at most 256 bytes"},
		{"TriggerTxContentTooLong", triggerTx(1, &outbound.TriggerOpts{TemplateID: "t", Content: long(outbound.DefaultMaxContentBytes + 1)}), "TriggerOpts.Content"},
		{"BulkTemplateTooLong", bulk([]int64{1}, withBulk(func(o *outbound.BulkTriggerOpts) { o.TemplateID = long(outbound.MaxTemplateIDBytes + 1) })), "BulkTriggerOpts.TemplateID must be at most 256 bytes"},
		{"BulkBodyTooLong", bulk([]int64{1}, withBulk(func(o *outbound.BulkTriggerOpts) { o.RenderedBody = long(outbound.DefaultMaxContentBytes + 1) })), "BulkTriggerOpts.RenderedBody must be at most 131072 bytes"},
		{"BulkActorTooLong", bulk([]int64{1}, withBulk(func(o *outbound.BulkTriggerOpts) { o.Actor = long(outbound.MaxActorBytes + 1) })), "BulkTriggerOpts.Actor must be at most 256 bytes"},
		{"NewMaxContentBytesNegative", func() error {
			_, err := outbound.New(testPool, &outbound.Config{Schema: b.schema, MaxContentBytes: -1})
			return err
		}, "Config.MaxContentBytes"},
		{"NewMaxContentBytesAbove64MiB", func() error {
			_, err := outbound.New(testPool, &outbound.Config{Schema: b.schema, MaxContentBytes: 64<<20 + 1, MaxWorkers: 1})
			return err
		}, "Config.MaxContentBytes"},
		{"NewMaxContentBytesTimesWorkersAbove1GiB", func() error {
			// 64 MiB bodies and the default 100 workers: 6.25 GiB in flight.
			_, err := outbound.New(testPool, &outbound.Config{Schema: b.schema, MaxContentBytes: 64 << 20})
			return err
		}, "Config.MaxContentBytes"},
		{"NewRetentionNegative", func() error {
			_, err := outbound.New(testPool, &outbound.Config{Schema: b.schema, Retention: -time.Hour})
			return err
		}, "Config.Retention"},
		{"NewAuditRetentionNegative", func() error {
			_, err := outbound.New(testPool, &outbound.Config{Schema: b.schema, AuditRetention: -time.Hour})
			return err
		}, "Config.AuditRetention"},
		{"PruneNothingAsked", func() error { _, err := b.client.Prune(ctx, &outbound.PruneParams{}); return err }, "PruneParams"},
		{"PruneNegative", func() error {
			_, err := b.client.Prune(ctx, &outbound.PruneParams{OlderThan: -time.Hour})
			return err
		}, "PruneParams.OlderThan"},

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
		// The field is also there to match on, for a host that maps it to
		// its own request's field.
		var argErr *outbound.InvalidArgumentError
		require.ErrorAs(t, err, &argErr, tt.name)
		require.NotEmpty(t, argErr.Field, tt.name)
		require.True(t, strings.HasPrefix(tt.field, argErr.Field), "%s: field %q", tt.name, argErr.Field)
		require.NotEmpty(t, argErr.Reason, tt.name)
		require.False(t, strings.Contains(err.Error(), "\x00"), "%s: the error does not echo the text", tt.name)
		require.Equal(t, rowCounts{}, countAll(t, b.schema), "%s wrote nothing", tt.name)
	}

	// An over-cap list is refused whatever it repeats: checking a long list
	// for repeats would cost work that grows with it.
	_, err := b.client.BulkTrigger(ctx, append(conversations(30), conversations(1)...), body)
	require.ErrorIs(t, err, outbound.ErrBatchTooLarge)

	// Nothing reached any other schema either.
	var schemas int
	require.NoError(t, testPool.QueryRow(context.Background(), "SELECT count(*) FROM pg_namespace WHERE nspname IN ('a b', 'bad-schema')").Scan(&schemas))
	require.Zero(t, schemas)
}

// long returns n bytes of text.
func long(n int) string { return strings.Repeat("x", n) }

// incompressible returns n bytes of text that PostgreSQL cannot compress, so
// that it reaches an index at its full size.
func incompressible(n int) string {
	buf := make([]byte, (n*3+3)/4)
	_, _ = rand.Read(buf)
	return base64.RawStdEncoding.EncodeToString(buf)[:n]
}

// TestInputAtItsLimit stores values exactly at each byte limit, the longest
// template id incompressible, so that it reaches the dedup index whole.
func TestInputAtItsLimit(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	b := setup(t, withConfig(&outbound.Config{MaxContentBytes: 1000}))

	templateID := incompressible(outbound.MaxTemplateIDBytes)
	res, err := b.client.Trigger(ctx, 1, &outbound.TriggerOpts{
		TemplateID: templateID,
		Content:    long(1000),
		Actor:      long(outbound.MaxActorBytes),
	})
	require.NoError(t, err)
	require.Len(t, res.Message.TemplateID, outbound.MaxTemplateIDBytes)
	require.Len(t, res.Message.Content, 1000)
	again := mustTrigger(ctx, t, b.client, 1, &outbound.TriggerOpts{TemplateID: templateID})
	require.True(t, again.Duplicate, "the dedup index holds the longest template id")

	bulk := mustBulkTrigger(ctx, t, b.client, []int64{1, 2}, &outbound.BulkTriggerOpts{TemplateID: templateID, RenderedBody: long(1000)})
	require.Len(t, bulk.Messages, 2)

	// The Config field sets the limit.
	_, err = b.client.Trigger(ctx, 3, &outbound.TriggerOpts{TemplateID: "t", Content: long(1001)})
	require.ErrorIs(t, err, outbound.ErrInvalidArgument)
	require.ErrorContains(t, err, "TriggerOpts.Content must be at most 1000 bytes, got 1001")
	_, err = b.client.BulkTrigger(ctx, []int64{3}, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: long(1001)})
	require.ErrorContains(t, err, "BulkTriggerOpts.RenderedBody must be at most 1000 bytes, got 1001")
}
