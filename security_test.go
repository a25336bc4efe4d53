package outbound_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cairnloop/outbound"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// recordingHandler keeps every log record, at every level, as text.
type recordingHandler struct {
	mu      *sync.Mutex
	records *[]loggedRecord
	attrs   []slog.Attr
}

type loggedRecord struct {
	level slog.Level
	text  string
}

func newRecordingHandler() *recordingHandler {
	return &recordingHandler{mu: &sync.Mutex{}, records: &[]loggedRecord{}}
}

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	write := func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value.Resolve())
		return true
	}
	for _, a := range h.attrs {
		write(a)
	}
	r.Attrs(write)
	h.mu.Lock()
	defer h.mu.Unlock()
	*h.records = append(*h.records, loggedRecord{level: r.Level, text: b.String()})
	return nil
}

func (h *recordingHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &recordingHandler{mu: h.mu, records: h.records, attrs: append(append([]slog.Attr{}, h.attrs...), attrs...)}
}

func (h *recordingHandler) WithGroup(string) slog.Handler { return h }

func (h *recordingHandler) all() []loggedRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]loggedRecord{}, *h.records...)
}

// TestLogsCarryNoActorOrBody runs every path that logs, the library's and
// River's (triggers, bulks, both refusals, a refusal that cannot be recorded,
// deliveries that fail, panic and succeed, cancels, a reconcile), with an
// actor and a body that must never appear in a log line at info level or
// above.
func TestLogsCarryNoActorOrBody(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	const (
		actor = "agent:secret-actor-7"
		body  = "secret-body-text"
	)
	logs := newRecordingHandler()
	var calls atomic.Int64
	notifier := outbound.NotifierFunc(func(ctx context.Context, msg *outbound.Message) error {
		switch calls.Add(1) {
		case 1:
			return errors.New("provider said no")
		case 2:
			panic("provider blew up")
		}
		return nil
	})
	b := setup(t, working(), withConfig(&outbound.Config{
		MaxBatchSize: 3, Notifier: notifier, MaxAttempts: 5, Logger: slog.New(logs),
	}))

	sent := mustTrigger(ctx, t, b.client, 1, &outbound.TriggerOpts{TemplateID: "t", Content: body, Actor: actor})
	mustTrigger(ctx, t, b.client, 1, &outbound.TriggerOpts{TemplateID: "t", Content: body, Actor: actor})
	_, err := b.client.Trigger(ctx, 2, &outbound.TriggerOpts{TemplateID: "t", Content: body + "\x00", Actor: actor})
	require.ErrorIs(t, err, outbound.ErrInvalidArgument)
	envelopeID := uuid.Must(uuid.NewV7())
	bulkOpts := &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: body, Actor: actor, EnvelopeID: envelopeID}
	bulk := mustBulkTrigger(ctx, t, b.client, []int64{3, 4, 5}, bulkOpts)
	mustBulkTrigger(ctx, t, b.client, []int64{3, 4, 5}, bulkOpts)
	_, err = b.client.BulkTrigger(ctx, []int64{6, 7, 8, 9}, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: body, Actor: actor})
	require.ErrorIs(t, err, outbound.ErrBatchTooLarge)
	_, err = b.client.BulkTrigger(ctx, []int64{6, 7, 8, 9}, &outbound.BulkTriggerOpts{
		TemplateID: "t", RenderedBody: body, Actor: actor, Auditor: failingAuditor,
	})
	require.ErrorIs(t, err, outbound.ErrBatchTooLarge)
	// Cancelled, or already sent and refused: either way it logs its course.
	if err := b.client.CancelMessage(ctx, bulk.Messages[2].ID, nil); err != nil {
		require.ErrorIs(t, err, outbound.ErrNotCancellable)
	}

	ids := append(messageIDs(bulk.Messages[:2]), sent.Message.ID)
	waitForStatus(t, b.client, ids, outbound.MessageStatusSent)
	_, err = b.client.Reconcile(ctx)
	require.NoError(t, err)

	records := logs.all()
	var errorsLogged int
	for _, r := range records {
		if r.level < slog.LevelInfo {
			continue
		}
		if r.level >= slog.LevelError {
			errorsLogged++
		}
		require.NotContains(t, r.text, "secret-actor", "a %s log line carries the actor: %s", r.level, r.text)
		require.NotContains(t, r.text, "secret-body", "a %s log line carries the body: %s", r.level, r.text)
	}
	require.Positive(t, errorsLogged, "the failing paths logged nothing, so the test saw nothing")
}
