package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cairnloop/outbound/internal/telemetry"
	"github.com/cairnloop/outbound/outboundtype"
)

// MaxLastErrorBytes bounds Message.LastError, and so what of a Notifier's
// error reaches the database, River's job errors and River's logs.
const MaxLastErrorBytes = 2048

// truncatedMark ends a last_error that was cut short.
const truncatedMark = " …[truncated]"

// boundedErrorText turns an error's text into what PostgreSQL can store (valid
// UTF-8, no NUL) in at most MaxLastErrorBytes.
func boundedErrorText(text string) string {
	text = strings.ToValidUTF8(text, "\uFFFD")
	text = strings.ReplaceAll(text, "\x00", "\uFFFD")
	if len(text) <= MaxLastErrorBytes {
		return text
	}
	cut := MaxLastErrorBytes - len(truncatedMark)
	for cut > 0 && !utf8.RuneStart(text[cut]) {
		cut--
	}
	return text[:cut] + truncatedMark
}

// notifyResult is what one Notifier call came to.
type notifyResult struct {
	err      error
	panicked bool
	// timedOut: the call ran past Config.NotifyTimeout.
	timedOut bool
	// stopped: the worker was stopping when the call ended in an error.
	stopped bool
}

// permanent reports whether the Notifier said no retry can help.
func (n notifyResult) permanent() bool {
	var p *outboundtype.PermanentError
	return n.err != nil && errors.As(n.err, &p)
}

// retryAfter returns the delay a RetryAfter error asked for, or 0.
func (n notifyResult) retryAfter() time.Duration {
	var r *outboundtype.RetryAfterError
	if n.err != nil && !n.permanent() && errors.As(n.err, &r) {
		return r.Delay
	}
	return 0
}

// rateLimited returns the pause a RateLimited error asked for, or 0.
func (n notifyResult) rateLimited() time.Duration {
	if n.err == nil {
		return 0 // before r, which escapes: a success allocates nothing here
	}
	var r *outboundtype.RateLimitedError
	if !n.permanent() && !n.stopped && errors.As(n.err, &r) {
		return r.Delay
	}
	return 0
}

// reason classifies the call for telemetry.
func (n notifyResult) reason() telemetry.Reason {
	switch {
	case n.err == nil:
		return telemetry.ReasonNotifierOK
	case n.panicked:
		return telemetry.ReasonNotifierPanicked
	case n.permanent():
		return telemetry.ReasonNotifierPermanentError
	case n.stopped:
		return telemetry.ReasonWorkerStopped
	case n.timedOut:
		return telemetry.ReasonNotifierTimeout
	case n.rateLimited() > 0:
		return telemetry.ReasonNotifierRateLimited
	case n.retryAfter() > 0:
		return telemetry.ReasonNotifierRetryAfter
	}
	return telemetry.ReasonNotifierReturnedError
}

// notify calls the notifier under NotifyTimeout and waits for it to return.
// Its context is cancelled at the deadline, and when the worker is stopping;
// a notifier that ignores it is still waited for, keeping its claim on the
// message (renewed while it runs) and its worker, so that no other attempt
// calls the notifier for the message beside it, and no more than MaxWorkers
// calls run at once. What it returns late is what the attempt records.
func (e *Executor) notify(ctx context.Context, msg *outboundtype.Message, renew func(context.Context) bool) notifyResult {
	timeout := e.NotifyTimeout
	notifyCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	done := make(chan notifyResult, 1)
	notifier := e.Notifier
	msgCopy := *msg
	go func() {
		defer func() {
			if v := recover(); v != nil {
				// The value may hold a body or personal data, and be of any
				// size: it is logged as last_error keeps it, bounded.
				text := boundedErrorText(fmt.Sprint(v))
				e.Logger.Error("outbound: notifier panicked",
					slog.String("message_id", msg.ID.String()),
					slog.String("panic", text),
					slog.String("stack", string(debug.Stack())))
				done <- notifyResult{err: errors.New("notifier panicked: " + text), panicked: true}
			}
		}()
		done <- notifyResult{err: notifier.OnOutboundTriggered(notifyCtx, &msgCopy)}
	}()

	var res notifyResult
	select {
	case res = <-done:
	case <-notifyCtx.Done():
		res = awaitOverrun(ctx, done, renew)
	}
	if res.err != nil && !res.panicked {
		switch {
		case stopping(ctx):
			res.stopped = true
		case errors.Is(notifyCtx.Err(), context.DeadlineExceeded):
			res.timedOut = true
			res.err = fmt.Errorf("notifier timed out after %s: %w", timeout, res.err)
		}
	}
	return res
}

// awaitOverrun waits for a notifier call that is past its deadline, or
// whose worker is stopping, to return, calling renew (which renews the
// attempt's claim on the message) at once and every recordTimeout meanwhile,
// until renew says the claim is lost: the claim holds while the call runs,
// and runs out a claim's length after its process dies.
func awaitOverrun(ctx context.Context, done <-chan notifyResult, renew func(context.Context) bool) notifyResult {
	ticker := time.NewTicker(RecordTimeout)
	defer ticker.Stop()
	holding := renew(ctx)
	for {
		select {
		case res := <-done:
			return res
		case <-ticker.C:
			if holding {
				holding = renew(ctx)
			}
		}
	}
}

// stopping reports whether the worker is being stopped: River cancels an
// attempt's context then. Its deadline, River's job timeout of a claim's
// length, is not a stop: an attempt whose Notifier call outlived it waits
// for the call, renewing its claim, and records what it returns.
func stopping(ctx context.Context) bool {
	return errors.Is(ctx.Err(), context.Canceled)
}
