package outbound_test

import (
	"context"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cairnloop/outbound"
	"github.com/cairnloop/outbound/outboundui"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// nested is a value nesting objects depth deep, counting the outermost.
func nested(depth int) map[string]any {
	v := map[string]any{"leaf": true}
	for range depth - 1 {
		v = map[string]any{"n": v}
	}
	return v
}

// TestDataRefusedUnlessItReadsBack: host data whose JSON a read would not
// give back as written is refused, naming the field, the recipient and
// where in the data, and saying what to send instead; nothing is written.
// Before, it was accepted, and every read of the row failed after.
func TestDataRefusedUnlessItReadsBack(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	b := setup(t, withConfig(&outbound.Config{MaxDataBytes: 1 << 20}))
	tenToThe400, _ := new(big.Int).SetString("1"+strings.Repeat("0", 400), 10)
	for name, tc := range map[string]struct {
		value any
		want  string
	}{
		"NumberBeyondFloat64":    {json.Number("1e400"), `holds at Data["v"] a number beyond float64's range (reads decode numbers as float64): send it as a string`},
		"BigInt":                 {tenToThe400, `holds at Data["v"] a number beyond float64's range`},
		"NumberTooSmall":         {json.Number("1e-400"), `holds at Data["v"] a number too small for float64, which would read back as 0`},
		"IntegerAbove2To53":      {int64(1<<53 + 1), `holds at Data["v"] an integer beyond 2^53 that float64 would change`},
		"Uint64":                 {uint64(1<<64 - 1), `an integer beyond 2^53 that float64 would change`},
		"NumberInAnArray":        {[]any{1, map[string]any{"id": json.Number("-9007199254740993")}}, `holds at Data["v"][1]["id"] an integer beyond 2^53`},
		"TooDeep":                {nested(outbound.MaxDataDepth), "must nest objects and arrays at most 100 deep (MaxDataDepth)"},
		"InvalidUTF8":            {"caf\xe9", `holds invalid UTF-8 at Data["v"] (encoding/json would send U+FFFD in its place, written \ufffd): send valid UTF-8 text`},
		"InvalidUTF8InKey":       {map[string]any{"k\xff": 1}, `holds invalid UTF-8 at Data["v"]["k\ufffd"]`},
		"InvalidUTF8InRawJSON":   {json.RawMessage("\"caf\xe9\""), "must be valid UTF-8"},
		"ReplacementEscapeInRaw": {json.RawMessage(`"\ufffd"`), `holds invalid UTF-8 at Data["v"]`},
	} {
		data := map[string]any{"v": tc.value}
		_, err := b.client.Trigger(ctx, 1, &outbound.TriggerOpts{TemplateID: "t", Data: data})
		requireInvalidArgument(t, err, "TriggerOpts.Data")
		require.ErrorContains(t, err, tc.want, name)

		_, err = b.client.BulkTrigger(ctx, []int64{1, 2}, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b", Data: data})
		requireInvalidArgument(t, err, "BulkTriggerOpts.Data")
		require.ErrorContains(t, err, tc.want, name)

		_, err = b.client.BulkTrigger(ctx, []int64{1, 2}, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b",
			Recipients: map[int64]outbound.BulkRecipient{2: {Data: data}}})
		requireInvalidArgument(t, err, "BulkTriggerOpts.Recipients[2].Data")
		require.ErrorContains(t, err, tc.want, name)
	}
	require.Equal(t, rowCounts{}, countAll(t, b.schema), "nothing was written")
}

// acceptedData holds every kind of value the check accepts, at its edges.
func acceptedData() map[string]any {
	return map[string]any{
		"text":        "Zoë 🌍 \ufffd <b>&",
		"empty":       "",
		"yes":         true,
		"none":        nil,
		"fraction":    0.1,
		"negative":    -2.5,
		"huge":        1e300,
		"tiny":        5e-324,
		"top_integer": int64(1 << 53),
		"low_integer": int64(-(1 << 53)),
		"power_of_2":  int64(1 << 60), // above 2^53, and float64 holds it exactly
		"number":      json.Number("12.50"),
		"list":        []any{1, "two", []any{3.5, nil}, map[string]any{"four": 4}},
		"deep":        nested(outbound.MaxDataDepth - 1),
	}
}

// TestDataReadsBack writes every kind of value the check accepts and reads
// it back through every read: Message, ListMessages, CancelMessage (which
// reads the row it ends), the dashboard, and a delivery.
func TestDataReadsBack(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	notifier := &recordingNotifier{}
	b := setup(t, working(), withConfig(&outbound.Config{Notifier: notifier, MaxDataBytes: 1 << 20}))
	data := acceptedData()
	encoded, err := json.Marshal(data)
	require.NoError(t, err)
	var want map[string]any
	require.NoError(t, json.Unmarshal(encoded, &want))

	delivered := mustTrigger(ctx, t, b.client, 1, &outbound.TriggerOpts{TemplateID: "t", Data: data})
	require.Equal(t, want, delivered.Message.Data, "the trigger's result")
	bulk := mustBulkTrigger(ctx, t, b.client, []int64{2, 3}, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b",
		Data: data, ScheduleIn: 3600e9})
	require.Equal(t, want, bulk.Envelope.Data, "the envelope's shared data")

	waitForStatus(t, b.client, []uuid.UUID{delivered.Message.ID}, outbound.MessageStatusSent)
	calls := notifier.callsFor(delivered.Message.ID)
	require.Len(t, calls, 1)
	require.Equal(t, want, calls[0].Message.Data, "the Notifier's message")

	requireDataReads(t, b, bulk.Messages[0].ID, want)
	env, err := b.client.Envelope(ctx, bulk.Envelope.ID)
	require.NoError(t, err)
	require.Equal(t, want, env.Data, "Envelope")
}

// requireDataReads reads a pending message's data through every read, and
// last cancels it, which reads it too.
func requireDataReads(t *testing.T, b *testBundle, id uuid.UUID, want map[string]any) {
	t.Helper()
	ctx := ctxT(t)
	msg, err := b.client.Message(ctx, id)
	require.NoError(t, err)
	require.Equal(t, want, msg.Data, "Message")
	page, err := b.client.ListMessages(ctx, nil)
	require.NoError(t, err, "ListMessages' unfiltered first page")
	found := false
	for _, m := range page.Messages {
		if m.ID == id {
			found = true
			require.Equal(t, want, m.Data, "ListMessages")
		}
	}
	require.True(t, found, "ListMessages lists the message")

	dashboard, err := outboundui.NewHandler(&outboundui.HandlerOpts{Client: b.client})
	require.NoError(t, err)
	for _, path := range []string{"/messages", "/messages/" + id.String()} {
		rec := httptest.NewRecorder()
		dashboard.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		require.Equal(t, http.StatusOK, rec.Code, "dashboard %s: %s", path, rec.Body.String())
	}

	require.NoError(t, b.client.CancelMessage(ctx, id, nil), "CancelMessage")
	msg, err = b.client.Message(ctx, id)
	require.NoError(t, err)
	require.Equal(t, outbound.MessageStatusCancelled, msg.Status)
	require.Equal(t, want, msg.Data)
}

// TestDataStoredBeforeTheCheck: rows written before triggers refused data
// that would not read back stay readable, cancellable and deliverable. Such
// a number reads as a json.Number of the text jsonb keeps, and data nested
// past encoding/json's own limit reads in full.
func TestDataStoredBeforeTheCheck(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	notifier := &recordingNotifier{}
	b := setup(t, working(), withConfig(&outbound.Config{Notifier: notifier}))
	// jsonb keeps numbers as numeric, which prints 1e400 in full.
	const depth = 10_001
	stored := `{"big": 1e400, "id": 9007199254740993, "small": 1e-400, "fine": 1.5, "deep": ` +
		strings.Repeat("[", depth) + strings.Repeat("]", depth) + `}`
	check := func(t *testing.T, data map[string]any) {
		t.Helper()
		require.Equal(t, json.Number("1"+strings.Repeat("0", 400)), data["big"])
		require.Equal(t, json.Number("9007199254740993"), data["id"])
		require.Equal(t, json.Number("0."+strings.Repeat("0", 399)+"1"), data["small"])
		require.Equal(t, 1.5, data["fine"])
		levels := 0
		for v := data["deep"]; v != nil; levels++ {
			list := v.([]any)
			v = nil
			if len(list) > 0 {
				v = list[0]
			}
		}
		require.Equal(t, depth, levels, "the nesting reads in full")
	}
	legacy := func(id uuid.UUID) {
		_, err := testPool.Exec(ctx, "UPDATE "+table(b.schema, "messages")+" SET data = $2::text::jsonb WHERE id = $1", id, stored)
		require.NoError(t, err)
	}

	pending := mustBulkTrigger(ctx, t, b.client, []int64{1}, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b", ScheduleIn: 3600e9})
	legacy(pending.Messages[0].ID)
	msg, err := b.client.Message(ctx, pending.Messages[0].ID)
	require.NoError(t, err)
	check(t, msg.Data)
	requireDataReads(t, b, msg.ID, msg.Data)

	// Written with its delivery held back, then made due: the Notifier
	// gets it, and the message is sent.
	delivered := mustTrigger(ctx, t, b.client, 2, &outbound.TriggerOpts{TemplateID: "t", ScheduleIn: 3600e9})
	legacy(delivered.Message.ID)
	_, err = testPool.Exec(ctx, "UPDATE "+table(b.schema, "river_job")+" SET scheduled_at = now(), state = 'available' WHERE id = $1",
		delivered.Message.JobID)
	require.NoError(t, err)
	waitForStatus(t, b.client, []uuid.UUID{delivered.Message.ID}, outbound.MessageStatusSent)
	calls := notifier.callsFor(delivered.Message.ID)
	require.Len(t, calls, 1)
	check(t, calls[0].Message.Data)
}

// TestDataRefusalNamesTheRecipient: a bulk's recipient's data is checked
// merged with the bulk's, and the error names the recipient.
func TestDataRefusalNamesTheRecipient(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, err := b.client.BulkTrigger(context.Background(), []int64{7, 8}, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b",
		Data:       map[string]any{"channel": "sms"},
		Recipients: map[int64]outbound.BulkRecipient{8: {Data: map[string]any{"account": map[string]any{"id": uint64(1<<63 + 1)}}}}})
	requireInvalidArgument(t, err, "BulkTriggerOpts.Recipients[8].Data")
	require.ErrorContains(t, err, `holds at Data["account"]["id"] an integer beyond 2^53 that float64 would change (reads decode numbers as float64): send it as a string`)
}
