package outbound_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/cairnloop/outbound"
	"github.com/google/uuid"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"
)

// errMailbox is a provider's error with a type of its own, for errors.As.
type errMailbox struct{ code int }

func (e *errMailbox) Error() string { return fmt.Sprintf("smtp %d", e.code) }

// TestNotifierErrors covers what a Notifier's error decides: Permanent and
// RetryAfter, and last_error's bound.
func TestNotifierErrors(t *testing.T) {
	t.Parallel()

	t.Run("Wrap", func(t *testing.T) {
		t.Parallel()
		cause := &errMailbox{code: 550}

		permanent := outbound.Permanent(cause)
		require.ErrorIs(t, permanent, cause)
		var mailbox *errMailbox
		require.ErrorAs(t, permanent, &mailbox)
		require.Equal(t, 550, mailbox.code)
		var p *outbound.PermanentError
		require.ErrorAs(t, permanent, &p)
		require.Equal(t, "permanent failure: smtp 550", permanent.Error())
		require.Equal(t, "permanent failure", outbound.Permanent(nil).Error())

		later := outbound.RetryAfter(30*time.Second, fmt.Errorf("provider: %w", cause))
		require.ErrorIs(t, later, cause)
		var r *outbound.RetryAfterError
		require.ErrorAs(t, later, &r)
		require.Equal(t, 30*time.Second, r.Delay)
		require.Equal(t, "provider: smtp 550 (retry after 30s)", later.Error())
		require.Zero(t, outbound.RetryAfter(-time.Second, cause).(*outbound.RetryAfterError).Delay)
	})

	// Permanent: a Permanent error discards the message after one
	// call, records the error, frees the dedup key, and ends the River job.
	t.Run("Permanent", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		notifier := &recordingNotifier{fn: func(context.Context, *outbound.Message) error {
			return outbound.Permanent(&errMailbox{code: 550})
		}}
		b := setup(t, working(), withConfig(&outbound.Config{Notifier: notifier})) // 20 attempts by default

		res := mustTrigger(ctx, t, b.client, 50, &outbound.TriggerOpts{TemplateID: "recovery"})
		msg := waitForStatus(t, b.client, []uuid.UUID{res.Message.ID}, outbound.MessageStatusDiscarded)[0]
		require.Equal(t, 1, msg.Attempts)
		require.Equal(t, "permanent failure: smtp 550", msg.LastError)
		require.Equal(t, "discarded", msg.Metadata["status"])

		jobs := hostRiver(t, b.schema)
		require.Eventually(t, func() bool {
			job, err := jobs.JobGet(ctx, msg.JobID)
			require.NoError(t, err)
			return job.FinalizedAt != nil
		}, waitCeiling, 10*time.Millisecond)
		job, err := jobs.JobGet(ctx, msg.JobID)
		require.NoError(t, err)
		require.Equal(t, rivertype.JobStateCancelled, job.State, "River has no way for a worker to discard a job at once")
		require.Len(t, job.Errors, 1)
		require.Contains(t, job.Errors[0].Error, "permanent failure: smtp 550")

		again := mustTrigger(ctx, t, b.client, 50, &outbound.TriggerOpts{TemplateID: "recovery"})
		require.False(t, again.Duplicate, "a discarded message frees its dedup key")
		require.Len(t, notifier.callsFor(msg.ID), 1)
	})

	// RetryAfter: a RetryAfter error makes the next attempt wait as
	// long as asked, here far longer than the retry policy's 50ms.
	t.Run("RetryAfter", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		const wait = 1500 * time.Millisecond
		var calls atomic.Int32
		notifier := &recordingNotifier{fn: func(context.Context, *outbound.Message) error {
			if calls.Add(1) == 1 {
				return outbound.RetryAfter(wait, errors.New("429 too many requests"))
			}
			return nil
		}}
		b := setup(t, working(), withConfig(&outbound.Config{Notifier: notifier}))

		res := mustTrigger(ctx, t, b.client, 51, &outbound.TriggerOpts{TemplateID: "recovery"})
		msg := waitForStatus(t, b.client, []uuid.UUID{res.Message.ID}, outbound.MessageStatusSent)[0]
		require.Equal(t, 2, msg.Attempts)
		got := notifier.callsFor(msg.ID)
		require.Len(t, got, 2)
		require.GreaterOrEqual(t, got[1].At.Sub(got[0].At), wait, "the retry came before the time asked for")

		job, err := hostRiver(t, b.schema).JobGet(ctx, msg.JobID)
		require.NoError(t, err)
		require.Len(t, job.Errors, 1)
		require.Contains(t, job.Errors[0].Error, "429 too many requests (retry after 1.5s)")
	})

	// LastErrorBounded gives the notifier errors that PostgreSQL
	// cannot store as they are (a NUL byte, invalid UTF-8) and one far longer
	// than MaxLastErrorBytes. last_error, River's job errors and every log line
	// hold at most the bounded text.
	t.Run("LastErrorBounded", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		const tail = "TAIL-BEYOND-THE-BOUND"
		long := strings.Repeat("é", 3000) + tail // 6,000 bytes and more
		var calls atomic.Int32
		notifier := &recordingNotifier{fn: func(context.Context, *outbound.Message) error {
			if calls.Add(1) == 1 {
				return errors.New("bad\x00byte\xff")
			}
			return errors.New(long)
		}}
		var logs syncBuffer
		b := setup(t, working(), withConfig(&outbound.Config{Notifier: notifier, MaxAttempts: 2,
			Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}))

		res := mustTrigger(ctx, t, b.client, 52, &outbound.TriggerOpts{TemplateID: "recovery"})
		msg := waitForStatus(t, b.client, []uuid.UUID{res.Message.ID}, outbound.MessageStatusDiscarded)[0]
		require.Equal(t, 2, msg.Attempts, "the first error was recorded and retried")
		require.LessOrEqual(t, len(msg.LastError), outbound.MaxLastErrorBytes)
		require.True(t, utf8.ValidString(msg.LastError))
		require.True(t, strings.HasPrefix(msg.LastError, "éé"))
		require.True(t, strings.HasSuffix(msg.LastError, "[truncated]"))
		require.NotContains(t, msg.LastError, tail)

		jobs := hostRiver(t, b.schema)
		require.Eventually(t, func() bool {
			job, err := jobs.JobGet(ctx, msg.JobID)
			require.NoError(t, err)
			return job.State == rivertype.JobStateDiscarded
		}, waitCeiling, 10*time.Millisecond)
		job, err := jobs.JobGet(ctx, msg.JobID)
		require.NoError(t, err)
		require.Len(t, job.Errors, 2)
		prefix := "outbound: deliver message " + msg.ID.String() + ": "
		require.Equal(t, prefix+"bad\uFFFDbyte\uFFFD", job.Errors[0].Error)
		require.Equal(t, prefix+msg.LastError, job.Errors[1].Error, "River keeps what last_error keeps")

		require.Contains(t, logs.String(), "Job errored", "River logged the attempts")
		require.NotContains(t, logs.String(), tail)
	})

	// PanicValueBounded: a notifier that panics with 10 MiB logs no more of
	// it than last_error keeps. It used to log the value whole: 21 MB of log
	// for one panic, with whatever body or personal data it held.
	t.Run("PanicValueBounded", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		const tail = "TAIL-BEYOND-THE-BOUND"
		huge := strings.Repeat("x", 10<<20) + tail
		notifier := &recordingNotifier{fn: func(context.Context, *outbound.Message) error { panic(huge) }}
		var logs syncBuffer
		b := setup(t, working(), withConfig(&outbound.Config{Notifier: notifier, MaxAttempts: 1,
			Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}))

		res := mustTrigger(ctx, t, b.client, 53, &outbound.TriggerOpts{TemplateID: "recovery"})
		msg := waitForStatus(t, b.client, []uuid.UUID{res.Message.ID}, outbound.MessageStatusDiscarded)[0]
		require.True(t, strings.HasPrefix(msg.LastError, "notifier panicked: xxx"))
		require.LessOrEqual(t, len(msg.LastError), outbound.MaxLastErrorBytes)

		var panicLine string
		for line := range strings.Lines(logs.String()) {
			if strings.Contains(line, "outbound: notifier panicked") {
				panicLine = line
			}
		}
		require.NotEmpty(t, panicLine, "the panic is logged")
		require.Contains(t, panicLine, "panic=\"xxxx")
		require.Contains(t, panicLine, "[truncated]")
		require.Contains(t, panicLine, "stack=", "with its stack")
		require.Less(t, len(logs.String()), 64<<10, "the whole log, River's lines included")
		require.NotContains(t, logs.String(), tail)
	})
}
