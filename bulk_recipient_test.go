package outbound_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairnloop/outbound"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// A bulk gives each recipient its own body, data and time, in one envelope,
// one cap check and one transaction; each message keeps exactly what was
// passed for it.
func TestPersonalisedBulk(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	b := setup(t)
	in := func(d time.Duration) time.Time { return time.Now().Add(d).Truncate(time.Microsecond) }
	ana, bo := in(2*time.Hour), in(3*time.Hour)
	opts := &outbound.BulkTriggerOpts{
		TemplateID: "resolved",
		Data:       map[string]any{"channel": "sms", "tenant": "acme"},
		ScheduleIn: time.Hour,
		Recipients: map[int64]outbound.BulkRecipient{
			1: {RenderedBody: "Hi Ana, your ticket #123 is resolved", Data: map[string]any{"phone": "+15550101"}, ScheduledAt: ana},
			2: {RenderedBody: "Hi Bo, your ticket #124 is resolved", Data: map[string]any{"phone": "+15550102", "channel": "whatsapp"}, ScheduledAt: bo},
			3: {RenderedBody: "Hi Cy, your ticket #125 is resolved"},
		},
	}
	res := mustBulkTrigger(ctx, t, b.client, []int64{1, 2, 3}, opts)

	require.Empty(t, res.Envelope.RenderedBody, "no shared body to keep")
	require.Equal(t, map[string]any{"channel": "sms", "tenant": "acme"}, res.Envelope.Data)
	require.Equal(t, rowCounts{Envelopes: 1, Messages: 3, Jobs: 3}, countAll(t, b.schema))
	jobs := hostRiver(t, b.schema)
	for i, want := range []struct {
		body string
		data map[string]any
		at   time.Time
	}{
		{"Hi Ana, your ticket #123 is resolved", map[string]any{"channel": "sms", "tenant": "acme", "phone": "+15550101"}, ana},
		{"Hi Bo, your ticket #124 is resolved", map[string]any{"channel": "whatsapp", "tenant": "acme", "phone": "+15550102"}, bo},
		{"Hi Cy, your ticket #125 is resolved", map[string]any{"channel": "sms", "tenant": "acme"}, time.Time{}},
	} {
		msg, err := b.client.Message(ctx, res.Messages[i].ID)
		require.NoError(t, err)
		require.Equal(t, msg, res.Messages[i], "the result is the row")
		require.Equal(t, want.body, msg.Content, "exactly what was passed for it")
		require.True(t, msg.Rendered)
		require.Equal(t, want.data, msg.Data)
		job, err := jobs.JobGet(ctx, msg.JobID)
		require.NoError(t, err)
		require.Equal(t, outbound.DefaultBulkTriggerPriority, job.Priority, "the bulk's priority, whatever the time")
		if want.at.IsZero() {
			// The bulk's own schedule: an hour from now.
			require.WithinDuration(t, time.Now().Add(time.Hour), msg.ScheduledAt, time.Minute)
		} else {
			require.True(t, msg.ScheduledAt.Equal(want.at), "message %d at its own time", i)
		}
		require.True(t, job.ScheduledAt.Equal(msg.ScheduledAt), "message %d: its job is scheduled for the message's time", i)
	}

	// A recipient's time already past means now, not the bulk's schedule,
	// and never a time before the message was triggered.
	t.Run("PastTime", func(t *testing.T) {
		res := mustBulkTrigger(ctx, t, b.client, []int64{4}, &outbound.BulkTriggerOpts{TemplateID: "past", RenderedBody: "b", ScheduleIn: time.Hour,
			Recipients: map[int64]outbound.BulkRecipient{4: {ScheduledAt: time.Now().Add(-24 * time.Hour)}}})
		msg := res.Messages[0]
		require.False(t, msg.ScheduledAt.Before(msg.CreatedAt.Add(-time.Second)), "scheduled %s, created %s", msg.ScheduledAt, msg.CreatedAt)
		require.WithinDuration(t, time.Now(), msg.ScheduledAt, time.Minute)
		job, err := jobs.JobGet(ctx, msg.JobID)
		require.NoError(t, err)
		require.Equal(t, "available", string(job.State))
	})

	t.Run("Replay", func(t *testing.T) {
		opts := *opts
		opts.EnvelopeID = uuid.Must(uuid.NewV7())
		first := mustBulkTrigger(ctx, t, b.client, []int64{1, 2, 3}, &opts)
		before := countAll(t, b.schema)
		again := mustBulkTrigger(ctx, t, b.client, []int64{3, 1, 2}, &opts)
		require.True(t, again.Replayed)
		require.Equal(t, []*outbound.Message{first.Messages[2], first.Messages[0], first.Messages[1]}, again.Messages)
		require.Equal(t, before, countAll(t, b.schema))

		differ := func(change func(o *outbound.BulkTriggerOpts), want string) {
			t.Helper()
			changed := opts
			changed.Recipients = map[int64]outbound.BulkRecipient{}
			for id, r := range opts.Recipients {
				changed.Recipients[id] = r
			}
			change(&changed)
			_, err := b.client.BulkTrigger(ctx, []int64{1, 2, 3}, &changed)
			require.ErrorIs(t, err, outbound.ErrIdempotencyConflict)
			require.ErrorContains(t, err, want)
			require.Equal(t, before, countAll(t, b.schema), "a conflict writes nothing")
		}
		differ(func(o *outbound.BulkTriggerOpts) {
			r := o.Recipients[2]
			r.RenderedBody = "Hi Bo, your ticket #999 is resolved"
			o.Recipients[2] = r
		}, "for conversation 2")
		differ(func(o *outbound.BulkTriggerOpts) {
			r := o.Recipients[3]
			r.Data = map[string]any{"phone": "+15550103"}
			o.Recipients[3] = r
		}, "for conversation 3")
		differ(func(o *outbound.BulkTriggerOpts) {
			r := o.Recipients[1]
			r.ScheduledAt = r.ScheduledAt.Add(time.Minute)
			o.Recipients[1] = r
		}, "for conversation 1")
		differ(func(o *outbound.BulkTriggerOpts) { o.Data = map[string]any{"channel": "sms"} }, "different data")
		differ(func(o *outbound.BulkTriggerOpts) { o.RenderedBody = "shared" }, "different body")

		// A bulk made with one body is not the same request as one with
		// recipients' own.
		plain := &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b", EnvelopeID: uuid.Must(uuid.NewV7())}
		mustBulkTrigger(ctx, t, b.client, []int64{1, 2}, plain)
		personal := *plain
		personal.Recipients = map[int64]outbound.BulkRecipient{2: {RenderedBody: "Hi Bo"}}
		_, err := b.client.BulkTrigger(ctx, []int64{1, 2}, &personal)
		require.ErrorIs(t, err, outbound.ErrIdempotencyConflict)
		require.ErrorContains(t, err, "for conversation 2")
		// An entry with nothing of its own asks for nothing different.
		empty := *plain
		empty.Recipients = map[int64]outbound.BulkRecipient{1: {}}
		require.True(t, mustBulkTrigger(ctx, t, b.client, []int64{1, 2}, &empty).Replayed)
	})
}

// Bad per-recipient input names what is wrong, and nothing is written.
func TestPersonalisedBulkInput(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	b := setup(t, withConfig(&outbound.Config{MaxDataBytes: 64}))
	for name, tc := range map[string]struct {
		opts  *outbound.BulkTriggerOpts
		field string
		want  string
	}{
		"UnknownRecipient": {&outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b",
			Recipients: map[int64]outbound.BulkRecipient{9: {RenderedBody: "x"}}}, "BulkTriggerOpts.Recipients", "conversation 9"},
		"NoBodyForOne": {&outbound.BulkTriggerOpts{TemplateID: "t",
			Recipients: map[int64]outbound.BulkRecipient{1: {RenderedBody: "x"}}}, "BulkTriggerOpts.RenderedBody", "conversation 2 has none"},
		"NoBodyAtAll": {&outbound.BulkTriggerOpts{TemplateID: "t"}, "BulkTriggerOpts.RenderedBody", "is required"},
		"BlankBody": {&outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b",
			Recipients: map[int64]outbound.BulkRecipient{1: {RenderedBody: "  "}}}, "BulkTriggerOpts.Recipients[1].RenderedBody", "whitespace"},
		"NULInBody": {&outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b",
			Recipients: map[int64]outbound.BulkRecipient{2: {RenderedBody: "a\x00b"}}}, "BulkTriggerOpts.Recipients[2].RenderedBody", "NUL"},
		"DataTooLarge": {&outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b",
			Recipients: map[int64]outbound.BulkRecipient{1: {Data: map[string]any{"note": strings.Repeat("x", 64)}}}}, "BulkTriggerOpts.Recipients[1].Data", "at most 64 bytes"},
		"MergedDataTooLarge": {&outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b", Data: map[string]any{"a": strings.Repeat("x", 30)},
			Recipients: map[int64]outbound.BulkRecipient{1: {Data: map[string]any{"b": strings.Repeat("y", 30)}}}}, "BulkTriggerOpts.Recipients[1].Data", "at most 64 bytes"},
		"SharedDataTooLarge": {&outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b", Data: map[string]any{"a": strings.Repeat("x", 64)}},
			"BulkTriggerOpts.Data", "at most 64 bytes"},
		"DataNotJSON": {&outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b", Data: map[string]any{"c": make(chan int)}},
			"BulkTriggerOpts.Data", "JSON"},
		"DataNUL": {&outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b", Data: map[string]any{"c": "a\x00"}},
			"BulkTriggerOpts.Data", "NUL"},
	} {
		_, err := b.client.BulkTrigger(ctx, []int64{1, 2}, tc.opts)
		requireInvalidArgument(t, err, tc.field)
		require.ErrorContains(t, err, tc.want, name)
	}
	_, err := b.client.Trigger(ctx, 1, &outbound.TriggerOpts{TemplateID: "t", Data: map[string]any{"note": strings.Repeat("x", 64)}})
	requireInvalidArgument(t, err, "TriggerOpts.Data")
	require.Equal(t, rowCounts{}, countAll(t, b.schema), "nothing was written")

	_, err = outbound.New(testPool, &outbound.Config{MaxDataBytes: 1<<20 + 1})
	requireInvalidArgument(t, err, "Config.MaxDataBytes")
}

// The Notifier receives each message's data and whether its body was
// rendered, and RateLimitKey can key on the data.
func TestHostData(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	var (
		mu   sync.Mutex
		got  = map[int64]*outbound.Message{}
		keys = map[int64]string{}
	)
	notifier := outbound.NotifierFunc(func(_ context.Context, msg *outbound.Message) error {
		mu.Lock()
		defer mu.Unlock()
		got[msg.ConversationID] = msg
		return nil
	})
	b := setup(t, working(), withConfig(&outbound.Config{
		Notifier: notifier,
		// One SMS an hour; email unlimited.
		RateLimits: map[string]outbound.RateLimit{"sms": {Limit: 1, Per: time.Hour}},
		RateLimitKey: func(m *outbound.Message) string {
			channel, _ := m.Data["channel"].(string)
			mu.Lock()
			keys[m.ConversationID] = channel
			mu.Unlock()
			return channel
		},
	}))

	bulk := mustBulkTrigger(ctx, t, b.client, []int64{1, 2, 3}, &outbound.BulkTriggerOpts{TemplateID: "resolved", RenderedBody: "Resolved.",
		Data: map[string]any{"channel": "sms"},
		Recipients: map[int64]outbound.BulkRecipient{
			1: {Data: map[string]any{"phone": "+15550101"}},
			2: {Data: map[string]any{"phone": "+15550102"}},
			3: {Data: map[string]any{"channel": "email", "address": "cy@example.com"}},
		}})
	reference := mustTrigger(ctx, t, b.client, 4, &outbound.TriggerOpts{TemplateID: "recovery", Data: map[string]any{"channel": "email", "address": "di@example.com"}})

	// One SMS and both emails are sent; the other SMS waits for its limit,
	// once its claim has asked RateLimitKey for its key.
	waitForStatusCount(t, b.client, messageIDs(append(bulk.Messages, reference.Message)), outbound.MessageStatusSent, 3)
	for _, m := range bulk.Messages[:2] {
		if msg, err := b.client.Message(ctx, m.ID); err == nil && msg.Status != outbound.MessageStatusSent {
			waitForRateLimited(t, b.client, m.ID)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	require.Contains(t, got, int64(3))
	require.Equal(t, map[string]any{"channel": "email", "address": "cy@example.com"}, got[3].Data)
	require.True(t, got[3].Rendered)
	require.Equal(t, "Resolved.", got[3].Content)
	require.Contains(t, got, int64(4))
	require.Equal(t, map[string]any{"channel": "email", "address": "di@example.com"}, got[4].Data)
	require.False(t, got[4].Rendered, "a Trigger without a body is a template reference")
	require.Equal(t, "Outbound message using template: recovery", got[4].Content, "kept for consumers of the original library")
	smsSent := 0
	for _, id := range []int64{1, 2} {
		if m, ok := got[id]; ok {
			smsSent++
			require.Equal(t, "sms", m.Data["channel"])
			require.Equal(t, map[string]any{"channel": "sms", "phone": m.Data["phone"]}, m.Data)
		}
	}
	require.Equal(t, 1, smsSent, "the SMS limit held")
	require.Equal(t, map[int64]string{1: "sms", 2: "sms", 3: "email", 4: "email"}, keys, "RateLimitKey saw each message's data")
}

// A message written before migration 011 has no rendered flag: reads derive
// it from its content.
func TestRenderedOfOlderRows(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	b := setup(t)
	reference := mustTrigger(ctx, t, b.client, 1, &outbound.TriggerOpts{TemplateID: "recovery"})
	rendered := mustTrigger(ctx, t, b.client, 2, &outbound.TriggerOpts{TemplateID: "recovery", Content: "We fixed it."})
	_, err := testPool.Exec(ctx, "UPDATE "+table(b.schema, "messages")+" SET rendered = NULL")
	require.NoError(t, err)
	for id, want := range map[uuid.UUID]bool{reference.Message.ID: false, rendered.Message.ID: true} {
		msg, err := b.client.Message(ctx, id)
		require.NoError(t, err)
		require.Equal(t, want, msg.Rendered)
		page, err := b.client.ListMessages(ctx, &outbound.ListMessagesParams{ConversationID: msg.ConversationID})
		require.NoError(t, err)
		require.Equal(t, want, page.Messages[0].Rendered, "a list, which reads no content, derives it too")
	}
}
