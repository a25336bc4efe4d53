package outboundtype

import (
	"context"
	"fmt"
	"time"
)

// Notifier delivers outbound messages by email, SMS, chat or whatever the host
// chooses. The delivery worker calls it once per attempt, with nothing of the
// library's open: no transaction, no row lock, no pool connection.
type Notifier interface {
	// OnOutboundTriggered delivers one message. msg.ID is the same on every
	// attempt for a message: pass it to the provider as an idempotency key,
	// because delivery is at least once. An attempt whose result could not
	// be recorded (a crash, a lost database) is made again, with the same
	// msg.ID. msg.Attempts counts this attempt.
	//
	// Returning nil marks the message sent. An error, a panic or running
	// past Config.NotifyTimeout marks the attempt failed; River retries it
	// with backoff, and when the last of Config.MaxAttempts fails the message
	// is discarded. Wrap an error with Permanent to discard the message at
	// once, with RetryAfter to choose when the next attempt comes, or with
	// RateLimited when the provider refused the call for its rate: that
	// pauses the message's rate limit key and does not count as an attempt.
	//
	// ctx is cancelled at the timeout and when the worker is stopped. A
	// Notifier that ignores it is still waited for: until it returns, its
	// message stays claimed (the claim is renewed while it runs), no other
	// attempt calls the Notifier for it, and the call keeps its place among
	// Config.MaxWorkers. What it returns late is recorded: nil marks the
	// message sent.
	OnOutboundTriggered(ctx context.Context, msg *Message) error
}

// NotifierFunc adapts a function to the Notifier interface.
type NotifierFunc func(ctx context.Context, msg *Message) error

// OnOutboundTriggered calls f(ctx, msg).
func (f NotifierFunc) OnOutboundTriggered(ctx context.Context, msg *Message) error {
	return f(ctx, msg)
}

// Permanent marks a Notifier's error as one that no retry can mend: a mailbox
// that does not exist, a number the provider rejects. The message is
// discarded after this one call, with the error as its last_error, and its
// dedup key is free. errors.Is and errors.As see err through the result. A
// nil err still makes a permanent failure.
func Permanent(err error) error {
	return &PermanentError{Err: err}
}

// PermanentError is the error Permanent returns.
type PermanentError struct {
	// Err is the Notifier's error.
	Err error
}

// Error implements error.
func (e *PermanentError) Error() string {
	if e.Err == nil {
		return "permanent failure"
	}
	return "permanent failure: " + e.Err.Error()
}

// Unwrap returns the Notifier's error.
func (e *PermanentError) Unwrap() error { return e.Err }

// RetryAfter asks for the next attempt to come no sooner than d from now,
// instead of at the retry policy's time. The attempt still counts towards
// Config.MaxAttempts, and only this message waits: for a provider's 429, or
// any refusal for rate, return RateLimited instead, which pauses every call
// of the key and spends no attempt. A d of zero or less leaves the time to
// the retry policy. errors.Is and errors.As see err through the result.
func RetryAfter(d time.Duration, err error) error {
	return &RetryAfterError{Delay: max(d, 0), Err: err}
}

// RetryAfterError is the error RetryAfter returns.
type RetryAfterError struct {
	// Delay is how long the next attempt waits at least.
	Delay time.Duration
	// Err is the Notifier's error.
	Err error
}

// Error implements error.
func (e *RetryAfterError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("retry after %s", e.Delay)
	}
	return fmt.Sprintf("%s (retry after %s)", e.Err.Error(), e.Delay)
}

// Unwrap returns the Notifier's error.
func (e *RetryAfterError) Unwrap() error { return e.Err }

// RateLimited tells the library that the provider refused a call for its
// rate (an HTTP 429, a throttling error), and asks that no call for the
// message's key start, in any process, for d. Unlike RetryAfter, it does
// not count as an attempt: the message is pending again, booked to be tried
// when the pause ends, and Config.MaxAttempts is not spent on waiting for
// the provider. The pause needs the key to have an entry in
// Config.RateLimits; a key without one holds back only its own message. A d
// of zero or less pauses for a second. errors.Is and errors.As see err
// through the result.
//
// A Notifier that returns RateLimited for every call keeps its messages
// pending until they are cancelled: back-pressure never discards.
func RateLimited(d time.Duration, err error) error {
	if d <= 0 {
		d = defaultRateLimitedPause
	}
	return &RateLimitedError{Delay: d, Err: err}
}

// defaultRateLimitedPause is the pause of RateLimited with a d of zero or
// less.
const defaultRateLimitedPause = time.Second

// RateLimitedError is the error RateLimited returns.
type RateLimitedError struct {
	// Delay is how long the key is paused.
	Delay time.Duration
	// Err is the Notifier's error.
	Err error
}

// Error implements error.
func (e *RateLimitedError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("rate limited, paused for %s", e.Delay)
	}
	return fmt.Sprintf("%s (rate limited, paused for %s)", e.Err.Error(), e.Delay)
}

// Unwrap returns the Notifier's error.
func (e *RateLimitedError) Unwrap() error { return e.Err }
