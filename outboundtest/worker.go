package outboundtest

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/cairnloop/outbound"
	"github.com/cairnloop/outbound/internal/sqltext"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
)

// workerName is the attempted_by entry of the jobs a Worker works.
const workerName = "outboundtest"

// Worker runs a message's delivery inline, as River's rivertest.Worker runs a
// job: the same claim, Notifier call and record as the delivery worker makes,
// with the Notifier given to NewWorker, and no River client started. The
// message's River job goes through the states River would give it: running
// for the attempt, then completed, retryable, discarded, cancelled or
// snoozed.
type Worker struct {
	client *outbound.Client
	worker river.Worker[outbound.DeliveryArgs]
	pool   *pgxpool.Pool
	// river reads jobs back; it is never started.
	river *river.Client[pgx.Tx]
	jobs  sqltext.InlineJobs
}

// NewWorker returns a Worker that delivers with notifier, on the tables that
// config names (its Schema and RiverSchema, as for outbound.New). notifier
// replaces config.Notifier; a nil notifier keeps it. It fails the test if
// config is invalid.
func NewWorker(tb testing.TB, pool *pgxpool.Pool, config *outbound.Config, notifier outbound.Notifier) *Worker {
	tb.Helper()
	var cfg outbound.Config
	if config != nil {
		cfg = *config
	}
	if notifier != nil {
		cfg.Notifier = notifier
	}
	client, err := outbound.New(pool, &cfg)
	if err != nil {
		failuref(tb, "NewWorker: %s", err)
		return nil
	}
	riverSchema := cmp.Or(cfg.RiverSchema, cfg.Schema, outbound.DefaultSchema)
	riverClient, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Schema: riverSchema})
	if err != nil {
		failuref(tb, "NewWorker: river client: %s", err)
		return nil
	}
	return &Worker{
		client: client,
		worker: client.DeliveryWorker(),
		pool:   pool,
		river:  riverClient,
		jobs:   sqltext.NewInlineJobs(riverSchema),
	}
}

// DeliveryResult is what one inline delivery attempt left.
type DeliveryResult struct {
	// Message is the message as the attempt left it: sent, failed,
	// discarded, and so on.
	Message *outbound.Message
	// Job is the message's River job as the attempt left it.
	Job *rivertype.JobRow
}

// Deliver makes one delivery attempt of the message, now, whatever its job's
// schedule, and returns what it left and the error the delivery worker
// returned to River (nil when the message was sent or there was nothing to
// deliver; the Notifier's failure, or a river.JobCancel or river.JobSnooze
// error, otherwise). It fails the test if the message does not exist, has no
// job, or its job is running under a River client.
func (w *Worker) Deliver(ctx context.Context, tb testing.TB, messageID uuid.UUID) (*DeliveryResult, error) {
	tb.Helper()
	msg, err := w.client.Message(ctx, messageID)
	if err != nil {
		failuref(tb, "Deliver: %s", err)
		return nil, nil
	}
	if msg.JobID == 0 {
		failuref(tb, "Deliver: message %s has no delivery job", messageID)
		return nil, nil
	}
	job, err := w.fetch(ctx, msg.JobID)
	if errors.Is(err, pgx.ErrNoRows) {
		failuref(tb, "Deliver: job %d of message %s is running under a River client, or is gone", msg.JobID, messageID)
		return nil, nil
	}
	if err != nil {
		failuref(tb, "Deliver: fetch job %d: %s", msg.JobID, err)
		return nil, nil
	}

	workCtx, cancel := context.WithTimeout(ctx, w.worker.Timeout(job))
	workErr := w.worker.Work(workCtx, job)
	cancel()
	if err := w.finalize(ctx, job, workErr); err != nil {
		failuref(tb, "Deliver: record job %d: %s", job.ID, err)
		return nil, nil
	}

	res := &DeliveryResult{}
	if res.Message, err = w.client.Message(ctx, messageID); err != nil {
		failuref(tb, "Deliver: read message back: %s", err)
		return nil, nil
	}
	if res.Job, err = w.river.JobGet(ctx, job.ID); err != nil {
		failuref(tb, "Deliver: read job back: %s", err)
		return nil, nil
	}
	return res, workErr
}

// fetch makes the job running for one more attempt, as River's fetch does.
func (w *Worker) fetch(ctx context.Context, jobID int64) (*river.Job[outbound.DeliveryArgs], error) {
	row := &rivertype.JobRow{}
	var state string
	err := w.pool.QueryRow(ctx, w.jobs.FetchJob, jobID, workerName).Scan(&row.ID, &row.EncodedArgs, &row.Attempt, &row.AttemptedAt,
		&row.CreatedAt, &row.Kind, &row.MaxAttempts, &row.Metadata, &row.Priority, &row.Queue, &row.ScheduledAt, &state, &row.Tags)
	if err != nil {
		return nil, err
	}
	row.State = rivertype.JobState(state)
	row.AttemptedBy = []string{workerName}
	job := &river.Job[outbound.DeliveryArgs]{JobRow: row}
	if err := json.Unmarshal(row.EncodedArgs, &job.Args); err != nil {
		return nil, fmt.Errorf("job args: %w", err)
	}
	return job, nil
}

// finalize gives the job the state River's completer would give it after an
// attempt that returned workErr.
func (w *Worker) finalize(ctx context.Context, job *river.Job[outbound.DeliveryArgs], workErr error) error {
	var (
		cancelErr *river.JobCancelError
		snoozeErr *river.JobSnoozeError
	)
	if workErr == nil {
		_, err := w.pool.Exec(ctx, w.jobs.CompleteJob, job.ID)
		return err
	}
	if errors.As(workErr, &snoozeErr) {
		_, err := w.pool.Exec(ctx, w.jobs.SnoozeJob, job.ID, time.Now().Add(snoozeErr.Duration))
		return err
	}
	attemptErr, err := json.Marshal(rivertype.AttemptError{At: time.Now().UTC(), Attempt: job.Attempt, Error: workErr.Error()})
	if err != nil {
		return err
	}
	if errors.As(workErr, &cancelErr) {
		_, err := w.pool.Exec(ctx, w.jobs.CancelJob, job.ID, string(attemptErr))
		return err
	}
	retryAt := w.worker.NextRetry(job)
	if retryAt.IsZero() {
		retryAt = (&river.DefaultClientRetryPolicy{}).NextRetry(job.JobRow)
	}
	_, err = w.pool.Exec(ctx, w.jobs.FailJob, job.ID, string(attemptErr), retryAt)
	return err
}
