// Package delivery makes one delivery attempt of a message, as a lease:
// claim, notify, record. Its Executor is built from its collaborators (the
// pool, the statements, the Notifier and its settings, the rate limits) and
// reports through telemetry and a callback, as River's job executor does; it
// never sees the client that built it.
package delivery

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cairnloop/outbound/internal/dbutil"
	"github.com/cairnloop/outbound/internal/sqltext"
	"github.com/cairnloop/outbound/internal/telemetry"
	"github.com/cairnloop/outbound/outboundtype"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"go.opentelemetry.io/otel/trace"
)

// RecordTimeout bounds each step that records an attempt's result. The steps
// run on a context detached from the job's, so that what the notifier did is
// still recorded when the worker is being stopped.
const RecordTimeout = 10 * time.Second

// Executor makes delivery attempts. Its exported fields are set once, before
// the first attempt, and never changed.
type Executor struct {
	// Pool is the pool every statement of an attempt runs on, one at a
	// time: nothing is held while the Notifier runs.
	Pool *pgxpool.Pool
	// Queries are the library's statements for its schema.
	Queries *sqltext.Queries
	// Notifier delivers; nil marks each message sent without a call.
	Notifier outboundtype.Notifier
	// NotifyTimeout bounds one Notifier call.
	NotifyTimeout time.Duration
	// ClaimLength is how long a claim holds a message: the longest an
	// attempt may take from its claim to its recorded result.
	ClaimLength time.Duration
	// RateLimits and RateLimitKey are Config's: the limits by key, and the
	// key of a message.
	RateLimits   map[string]outboundtype.RateLimit
	RateLimitKey func(*outboundtype.Message) string
	// Logger logs what an attempt cannot return: a panic, a failed renewal.
	Logger *slog.Logger
	// Telemetry records each attempt's span and metrics.
	Telemetry *telemetry.Telemetry
	// WithTx runs fn in a transaction of its own, as the client runs its
	// own: an in-flight cancel's record locks the envelope and the message
	// together.
	WithTx func(ctx context.Context, fn func(tx pgx.Tx) error) error
	// OnFinal, when set, is told of each final outcome an attempt recorded,
	// after its telemetry: the client publishes it to subscribers.
	OnFinal func(ctx context.Context, f Final)
	// MaxRateLimitedPause caps the pause a Notifier's RateLimited asks for.
	MaxRateLimitedPause time.Duration
	// Queue and RiverSchema are where the delivery jobs are: a dispatcher
	// that releases parked messages tells River's producers of that queue
	// that jobs are available, unless PollOnly.
	Queue       string
	RiverSchema string
	PollOnly    bool
	// ReleaseHorizon is how long a slot released to a parked message counts
	// as taken before its claim: about the time River takes to fetch the
	// job. A released message not claimed by then holds nothing.
	ReleaseHorizon time.Duration

	// rateLimitRows are the rate limit keys whose rows this process has
	// created, so that an attempt creates a key's row once, not each time.
	rateLimitRows sync.Map

	// dispatchers run by key, under dispatchMu; see dispatcher.
	dispatchMu      sync.Mutex
	dispatchers     map[string]*dispatcher
	dispatchCtx     context.Context
	dispatchCancel  context.CancelFunc
	dispatchEnabled bool
	dispatchStopped bool
	dispatchWG      sync.WaitGroup
}

// Result is what an attempt tells River.
type Result struct {
	// Err is what the worker returns: nil, an error carrying no more of the
	// Notifier's text than last_error, river.JobCancel or river.JobSnooze.
	Err error
	// RetryAt, when set, is when River retries the job, as a Notifier's
	// RetryAfter asked.
	RetryAt time.Time
}

// Final is a final outcome that an attempt recorded for its message.
type Final struct {
	Message   *outboundtype.Message
	Status    outboundtype.MessageStatus
	Reason    outboundtype.EventReason
	LastError string
}

// Deliver makes one delivery attempt, records it in telemetry and reports
// a final outcome to OnFinal.
//
// An attempt is a lease, as River's own fetch is:
//
//  1. Claim: one short committed update makes the message delivering, under a
//     claim id of the attempt's own, until a time after which a claim left
//     by a dead worker may be taken over.
//  2. Notify: the Notifier runs with nothing of the library's open.
//  3. Record: an update guarded by the claim id, so that only the attempt
//     holding the claim can record its result. Sent is recorded in the same
//     statement that completes the River job.
//
// A cancel never waits for a Notifier: a message in flight is not
// cancellable. The claim's expiry keeps an attempt that River rescued while
// the first was still running from calling the Notifier beside it.
func (e *Executor) Deliver(ctx context.Context, job *river.Job[outboundtype.DeliveryArgs]) Result {
	start := time.Now()
	args := job.Args
	ctx, span := e.Telemetry.Tracer().Start(ctx, telemetry.SpanDeliver, trace.WithAttributes(
		telemetry.AttrMessageID.String(args.MessageID.String()),
		telemetry.AttrConversationID.Int64(args.ConversationID),
		telemetry.AttrTemplateID.String(args.TemplateID),
		telemetry.AttrAttempt.Int(job.Attempt),
	))
	if args.BulkEnvelopeID != nil {
		span.SetAttributes(telemetry.AttrBulkEnvelopeID.String(args.BulkEnvelopeID.String()))
	}
	res := classify(job, e.attempt(ctx, job))
	e.Telemetry.RecordDelivery(ctx, span, res.outcome, res.reason, res.failure(), start)
	if f := res.final; f.msg != nil {
		e.Telemetry.RecordFinal(ctx, f.msg, f.status)
		if e.OnFinal != nil {
			e.OnFinal(ctx, Final{Message: f.msg, Status: f.status, Reason: f.reason, LastError: f.lastError})
		}
	}
	return Result{Err: res.err, RetryAt: res.retryAt}
}

// attemptError is what Deliver returns to River for a failed Notifier call:
// the message's last_error and nothing more of the Notifier's error, so that
// River's logs and job errors hold no more than the message row does.
type attemptError struct {
	text string
	// cause is context.Canceled for a stopped worker, so that River sees a
	// soft stop and makes the job available again without using an attempt.
	cause error
}

func (e *attemptError) Error() string { return e.text }

func (e *attemptError) Unwrap() error { return e.cause }

// recordSentCompleteJob records a message sent, if claimID still holds it,
// and completes its running job in the same statement, as
// river.JobCompleteTx would. It reports whether the message was recorded.
// With the client's own few writes to River's tables, it is pinned to
// sqltext.RiverVersion.
func (e *Executor) recordSentCompleteJob(ctx context.Context, messageID, claimID uuid.UUID, jobID int64) (bool, error) {
	var recorded bool
	err := e.Pool.QueryRow(ctx, e.Queries.RecordSentCompleteJob, dbutil.PgUUID(messageID), dbutil.PgUUID(claimID), jobID).Scan(&recorded)
	return recorded, err
}

// lockEnvelope locks an envelope's row, as every cancel does before it
// locks a message, so that cancels and records cannot deadlock. It reports
// whether the envelope exists.
func (e *Executor) lockEnvelope(ctx context.Context, tx pgx.Tx, id uuid.UUID) (bool, error) {
	rows, err := tx.Query(ctx, e.Queries.LockEnvelope, id)
	if err != nil {
		return false, fmt.Errorf("lock envelope: %w", err)
	}
	found := rows.Next()
	rows.Close()
	if err := rows.Err(); err != nil {
		return false, fmt.Errorf("lock envelope: %w", err)
	}
	return found, nil
}
