package outbound_test

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnloop/outbound"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

func TestListMessages(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	b := setup(t)

	// Conversation 1 gets a single and a bulk recipient; 2 and 3 only bulk.
	single := mustTrigger(ctx, t, b.client, 1, &outbound.TriggerOpts{TemplateID: "recovery"})
	bulk := mustBulkTrigger(ctx, t, b.client, []int64{1, 2, 3}, &outbound.BulkTriggerOpts{TemplateID: "outage", RenderedBody: "b"})
	other := mustBulkTrigger(ctx, t, b.client, []int64{4}, &outbound.BulkTriggerOpts{TemplateID: "outage", RenderedBody: "b"})
	b.factory.setStatus(t, bulk.Messages[1].ID, outbound.MessageStatusSent)
	require.NoError(t, b.client.CancelMessage(ctx, bulk.Messages[2].ID, nil))

	list := func(params *outbound.ListMessagesParams) []uuid.UUID {
		t.Helper()
		page, err := b.client.ListMessages(ctx, params)
		require.NoError(t, err)
		require.Nil(t, page.NextCursor, "one page")
		return messageIDs(page.Messages)
	}
	s, b1, b2, b3, o := single.Message.ID, bulk.Messages[0].ID, bulk.Messages[1].ID, bulk.Messages[2].ID, other.Messages[0].ID

	t.Run("NewestFirst", func(t *testing.T) {
		require.Equal(t, []uuid.UUID{o, b3, b2, b1, s}, list(nil))
	})
	t.Run("ByConversation", func(t *testing.T) {
		require.Equal(t, []uuid.UUID{b1, s}, list(&outbound.ListMessagesParams{ConversationID: 1}))
		require.Empty(t, list(&outbound.ListMessagesParams{ConversationID: 99}))
	})
	t.Run("ByEnvelope", func(t *testing.T) {
		require.Equal(t, []uuid.UUID{b3, b2, b1}, list(&outbound.ListMessagesParams{BulkEnvelopeID: bulk.Envelope.ID}))
		require.Equal(t, []uuid.UUID{b1}, list(&outbound.ListMessagesParams{BulkEnvelopeID: bulk.Envelope.ID, ConversationID: 1}))
	})
	t.Run("ByStatus", func(t *testing.T) {
		require.Equal(t, []uuid.UUID{o, b1, s}, list(&outbound.ListMessagesParams{Status: outbound.MessageStatusPending}))
		require.Equal(t, []uuid.UUID{b2}, list(&outbound.ListMessagesParams{Status: outbound.MessageStatusSent}))
		require.Equal(t, []uuid.UUID{b3}, list(&outbound.ListMessagesParams{Status: outbound.MessageStatusCancelled}))
		require.Empty(t, list(&outbound.ListMessagesParams{Status: outbound.MessageStatusFailed}))
		require.Equal(t, []uuid.UUID{b3}, list(&outbound.ListMessagesParams{BulkEnvelopeID: bulk.Envelope.ID, Status: outbound.MessageStatusCancelled, ConversationID: 3}))
		require.Equal(t, []uuid.UUID{b1}, list(&outbound.ListMessagesParams{BulkEnvelopeID: bulk.Envelope.ID, Status: outbound.MessageStatusPending, ConversationID: 1}))
	})
	t.Run("ReturnsWholeMessages", func(t *testing.T) {
		page, err := b.client.ListMessages(ctx, &outbound.ListMessagesParams{ConversationID: 4, IncludeContent: true})
		require.NoError(t, err)
		stored, err := b.client.Message(ctx, o)
		require.NoError(t, err)
		require.Equal(t, []*outbound.Message{stored}, page.Messages)
	})
	t.Run("ReadsContentOnlyWhenAsked", func(t *testing.T) {
		page, err := b.client.ListMessages(ctx, &outbound.ListMessagesParams{ConversationID: 4})
		require.NoError(t, err)
		stored, err := b.client.Message(ctx, o)
		require.NoError(t, err)
		require.NotEmpty(t, stored.Content)
		require.Len(t, page.Messages, 1)
		require.Empty(t, page.Messages[0].Content)
		require.Equal(t, len(stored.Content), page.Messages[0].ContentBytes)
		withoutContent := *stored
		withoutContent.Content = ""
		require.Equal(t, &withoutContent, page.Messages[0], "every other field is read")
	})
	t.Run("Pages", func(t *testing.T) {
		var seen []uuid.UUID
		params := &outbound.ListMessagesParams{Limit: 2}
		pages := 0
		for {
			page, err := b.client.ListMessages(ctx, params)
			require.NoError(t, err)
			pages++
			seen = append(seen, messageIDs(page.Messages)...)
			if page.NextCursor == nil {
				break
			}
			params.After = page.NextCursor
		}
		require.Equal(t, 3, pages)
		require.Equal(t, []uuid.UUID{o, b3, b2, b1, s}, seen)

		// A cursor made from a message, and one through its text.
		after, err := b.client.ListMessages(ctx, &outbound.ListMessagesParams{After: outbound.MessageListCursorFromMessage(bulk.Messages[1])})
		require.NoError(t, err)
		require.Equal(t, []uuid.UUID{b1, s}, messageIDs(after.Messages))
		text, err := outbound.MessageListCursorFromMessage(bulk.Messages[1]).MarshalText()
		require.NoError(t, err)
		var decoded outbound.MessageListCursor
		require.NoError(t, decoded.UnmarshalText(text))
		require.Equal(t, []uuid.UUID{b1, s}, list(&outbound.ListMessagesParams{After: &decoded}))
	})
	t.Run("InvalidParams", func(t *testing.T) {
		for name, params := range map[string]*outbound.ListMessagesParams{
			"ListMessagesParams.Limit":          {Limit: outbound.MaxListLimit + 1},
			"ListMessagesParams.Status":         {Status: "x'; DROP TABLE messages; --"},
			"ListMessagesParams.ConversationID": {ConversationID: -1},
			"ListMessagesParams.After":          {After: &outbound.MessageListCursor{}},
		} {
			_, err := b.client.ListMessages(ctx, params)
			require.ErrorIs(t, err, outbound.ErrInvalidArgument, name)
			require.ErrorContains(t, err, name)
		}
		var cursor outbound.MessageListCursor
		require.ErrorIs(t, cursor.UnmarshalText([]byte("not a cursor")), outbound.ErrInvalidArgument)
		envelopeCursor, err := outbound.EnvelopeListCursorFromEnvelope(bulk.Envelope).MarshalText()
		require.NoError(t, err)
		err = cursor.UnmarshalText(envelopeCursor)
		require.ErrorIs(t, err, outbound.ErrInvalidArgument, "an envelope cursor is not a message cursor")
		require.ErrorContains(t, err, "message list cursor")
	})
}

// TestListPagesUnderInserts pages through messages and envelopes while new
// ones are written: each that existed when paging began is listed once.
func TestListPagesUnderInserts(t *testing.T) {
	t.Parallel()

	// Messages pages through 1,000 messages, 37 at a
	// time, while new messages are being triggered: every message that existed
	// when paging began is listed exactly once, and none is listed twice.
	t.Run("Messages", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		b := setup(t, withConfig(&outbound.Config{MaxBatchSize: 1000}))
		ids := make([]int64, 1000)
		for i := range ids {
			ids[i] = int64(i + 1)
		}
		bulk := mustBulkTrigger(ctx, t, b.client, ids, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b"})

		var inserted atomic.Int64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := range 2 {
			wg.Go(func() {
				for n := int64(0); ; n++ {
					select {
					case <-stop:
						return
					default:
					}
					_, err := b.client.Trigger(context.Background(), 1_000_000*int64(w+1)+n, &outbound.TriggerOpts{TemplateID: "t"})
					if err != nil {
						t.Error(err)
						return
					}
					inserted.Add(1)
				}
			})
		}

		seen := map[uuid.UUID]int{}
		var order []uuid.UUID
		params := &outbound.ListMessagesParams{Limit: 37}
		for pages := 0; ; pages++ {
			if pages < 3 {
				waitForMore(t, &inserted)
			}
			page, err := b.client.ListMessages(ctx, params)
			require.NoError(t, err)
			for _, m := range page.Messages {
				seen[m.ID]++
				order = append(order, m.ID)
			}
			if page.NextCursor == nil {
				break
			}
			params.After = page.NextCursor
		}
		close(stop)
		wg.Wait()

		require.Positive(t, inserted.Load(), "messages were triggered while paging")
		for _, m := range bulk.Messages {
			require.Equal(t, 1, seen[m.ID], "message %s listed once", m.ID)
		}
		for id, n := range seen {
			require.Equal(t, 1, n, "message %s listed %d times", id, n)
		}
		require.True(t, slices.IsSortedFunc(order, func(a, b uuid.UUID) int { return -slices.Compare(a[:], b[:]) }), "newest first")
	})

	// Envelopes pages through 1,000 envelopes, many of
	// them requested at the same instant, 37 at a time, while bulks are being
	// submitted: every envelope that existed when paging began is listed exactly
	// once, and none is listed twice.
	t.Run("Envelopes", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		b := setup(t)
		// Ten instants, a hundred envelopes each: the cursor must break ties.
		now := time.Now().Truncate(time.Second)
		seeds := make([]envelopeRow, 1000)
		for i := range seeds {
			seeds[i] = envelopeRow{
				Recipients:  []int64{int64(i + 1)},
				Status:      []outbound.EnvelopeStatus{outbound.EnvelopeStatusSubmitted, outbound.EnvelopeStatusCancelled}[i%2],
				RequestedAt: now.Add(-time.Duration(i%10) * time.Minute),
			}
		}
		existing := map[uuid.UUID]string{}
		for i, id := range b.factory.insertEnvelopes(t, seeds) {
			existing[id] = string(seeds[i].Status)
		}
		require.Len(t, existing, 1000)

		var submitted atomic.Int64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			for n := int64(1); ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := b.client.BulkTrigger(context.Background(), []int64{n}, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b"}); err != nil {
					t.Error(err)
					return
				}
				submitted.Add(1)
			}
		})

		pageThrough := func(status outbound.EnvelopeStatus) map[uuid.UUID]int {
			seen := map[uuid.UUID]int{}
			params := &outbound.ListEnvelopesParams{Limit: 37, Status: status}
			var last *outbound.Envelope
			for pages := 0; ; pages++ {
				if pages < 3 {
					waitForMore(t, &submitted)
				}
				page, err := b.client.ListEnvelopes(ctx, params)
				require.NoError(t, err)
				for _, e := range page.Envelopes {
					seen[e.ID]++
					if last != nil {
						require.False(t, e.RequestedAt.After(last.RequestedAt), "newest first")
					}
					last = e
				}
				if page.NextCursor == nil {
					return seen
				}
				// Through the cursor's text, as a page link would carry it.
				text, err := page.NextCursor.MarshalText()
				require.NoError(t, err)
				params.After = &outbound.EnvelopeListCursor{}
				require.NoError(t, params.After.UnmarshalText(text))
			}
		}
		all := pageThrough("")
		cancelled := pageThrough(outbound.EnvelopeStatusCancelled)
		close(stop)
		wg.Wait()

		require.Positive(t, submitted.Load(), "bulks were submitted while paging")
		for id, status := range existing {
			require.Equal(t, 1, all[id], "envelope %s listed once", id)
			if status == "cancelled" {
				require.Equal(t, 1, cancelled[id], "cancelled envelope %s listed once by status", id)
			}
		}
		require.Len(t, cancelled, 500)
		for id, n := range all {
			require.Equal(t, 1, n, "envelope %s listed %d times", id, n)
		}
	})
}

// waitForMore waits until n grows, or the test has failed (a writer that
// stops reports why): each of a paging test's first pages is read after one
// more write committed, so that writing and paging interleave however the
// machine schedules the two.
func waitForMore(t *testing.T, n *atomic.Int64) {
	t.Helper()
	for before := n.Load(); n.Load() == before && !t.Failed(); {
		time.Sleep(time.Millisecond)
	}
}
