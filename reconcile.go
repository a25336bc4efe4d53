package outbound

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/cairnloop/outbound/internal/dbutil"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/riverqueue/river"
)

// pruneInterval is how often the periodic prune job runs when
// Config.Retention or Config.AuditRetention is set.
const pruneInterval = time.Hour

// PruneInterval is how often the periodic prune job runs.
//
// Deprecated: it pins an internal schedule that a caller cannot act on
// (Config.Retention and Config.AuditRetention decide what is pruned); it is
// no longer part of the API and will be removed.
const PruneInterval = pruneInterval

// reconcileInterval is how often the periodic reconcile job runs.
const reconcileInterval = time.Minute

// ReconcileInterval is how often the periodic reconcile job runs.
//
// Deprecated: it pins an internal schedule that a caller cannot act on; it
// is no longer part of the API and will be removed.
const ReconcileInterval = reconcileInterval

// reconcileBatchSize bounds the rows one reconcile statement locks.
const reconcileBatchSize = 1000

// Reconcile settles messages whose River job has ended or is gone without
// recording a result, and returns how many it settled.
//
// A message and its job part ways when an attempt's result could not be
// recorded: the worker died or lost the database on the last attempt, and
// River (or its rescuer) discarded the job. An operator can also cancel or
// discard a job from River's UI. The message is then left holding its dedup
// key with nothing left to deliver it. Reconcile makes it say what happened:
//
//   - A pending or failed message, whose last attempt (if any) recorded a
//     failure, becomes cancelled when its job was cancelled, and discarded
//     when its job was discarded or deleted; either frees the dedup key.
//   - A delivering message whose claim has run out becomes unconfirmed: its
//     last attempt called, or was about to call, the Notifier and never
//     recorded the result, so it may have been delivered. It keeps its dedup
//     key, so that triggering it again does not send it a second time.
//   - A delivering message whose claim holds is left alone, whatever its
//     job's state: its attempt is alive (it renews the claim while its
//     Notifier call runs past NotifyTimeout), and records what the call
//     returns, sent included, even after River's rescuer has discarded the
//     job of a last attempt older than RescueStuckJobsAfter.
//
// A job is a message's only if it is what the message's job id names in
// Config.RiverSchema, of kind DeliveryJobKind, with the message's id in its
// args. A message written while Config.RiverSchema named another schema
// recorded a job id that here may name one of the host's jobs: its job is
// missing, and it is settled as a message whose job is gone.
//
// LastError says which case it was. Start runs Reconcile every minute; a
// host with its own River client adds PeriodicJobs to
// that client's config, or calls Reconcile itself.
//
// It works in batches of a bounded size along an index of the messages
// awaiting a result, so each statement takes milliseconds however large the
// table or the backlog, and it fits a short statement_timeout.
//
// It refuses, with ErrSchemaMismatch, when Migrate recorded another River
// schema than Config.RiverSchema: the jobs it would look for are elsewhere,
// and it would take every waiting message for one whose job is gone.
func (c *Client) Reconcile(ctx context.Context) (int, error) {
	if err := c.checkSchema(ctx, c.pool); err != nil {
		return 0, err
	}
	if err := c.checkRiverSchema(ctx); err != nil {
		return 0, err
	}
	total := 0
	var cursor pgtype.UUID // the zero UUID sorts first
	cursor.Valid = true
	for {
		looked, last, settled, err := c.reconcileBatch(ctx, cursor)
		total += len(settled)
		if err != nil {
			return total, fmt.Errorf("outbound: reconcile: %w", err)
		}
		for _, ev := range settled {
			c.subscriptions.publish(ctx, ev)
		}
		if looked < reconcileBatchSize {
			return total, nil
		}
		cursor = last
	}
}

// reconcileBatch settles one batch of the messages after cursor. It returns
// how many it looked at, the last id it looked at, and the event of each
// message it settled.
func (c *Client) reconcileBatch(ctx context.Context, cursor pgtype.UUID) (int, pgtype.UUID, []*Event, error) {
	var (
		looked   int
		last     pgtype.UUID
		settled  []*Event
		msg      Message
		id       pgtype.UUID
		envelope *uuid.UUID
		status   *string
		jobState *string
		// The settled columns are NULL in the one row of a batch that
		// settled nothing.
		conversationID *int64
		templateID     *string
		attempts       *int
		lastError      *string
	)
	rows, err := c.pool.Query(ctx, c.queries.ReconcileMessages, reconcileBatchSize, cursor)
	if err != nil {
		return 0, last, nil, err
	}
	_, err = pgx.ForEachRow(rows, []any{&looked, &last, &id, &conversationID, &templateID, &envelope, &attempts, &lastError, &status, &jobState}, func() error {
		if !id.Valid {
			return nil
		}
		msg = Message{ID: id.Bytes, ConversationID: *conversationID, TemplateID: *templateID, Attempts: *attempts}
		if envelope != nil {
			msg.BulkEnvelopeID = *envelope
		}
		final := MessageStatus(*status)
		settled = append(settled, messageEvent(&msg, final, reconciledReason(final, jobState), dbutil.Deref(lastError)))
		return nil
	})
	return looked, last, settled, err
}

// reconciledReason is the event reason of a message that Reconcile settled
// to status, given its job's state, nil for a job gone.
func reconciledReason(status MessageStatus, jobState *string) EventReason {
	switch {
	case status == MessageStatusUnconfirmed:
		return EventReasonResultUnrecorded
	case status == MessageStatusCancelled:
		return EventReasonJobCancelled
	case jobState == nil:
		return EventReasonJobDeleted
	}
	return EventReasonJobDiscarded
}

// PeriodicJobs returns the library's periodic River jobs: the reconcile job,
// and the prune job when Config.Retention or Config.AuditRetention is set.
// ConfigureRiver adds them to a host's own River config, and Start to its
// embedded client; a host that registers the workers with AddWorkers lists
// them in its River config itself.
func (c *Client) PeriodicJobs() []*river.PeriodicJob {
	jobs := []*river.PeriodicJob{
		river.NewPeriodicJob(
			river.PeriodicInterval(reconcileInterval),
			func() (river.JobArgs, *river.InsertOpts) {
				return ReconcileArgs{}, &river.InsertOpts{Queue: c.config.Queue}
			},
			&river.PeriodicJobOpts{ID: ReconcileJobKind, RunOnStart: true},
		),
	}
	if c.config.Retention > 0 || c.config.AuditRetention > 0 {
		jobs = append(jobs, river.NewPeriodicJob(
			river.PeriodicInterval(pruneInterval),
			func() (river.JobArgs, *river.InsertOpts) {
				return PruneArgs{}, &river.InsertOpts{Queue: c.config.Queue}
			},
			&river.PeriodicJobOpts{ID: PruneJobKind, RunOnStart: true},
		))
	}
	return jobs
}

// reconcileWorker is the River worker of the periodic reconcile job.
type reconcileWorker struct {
	river.WorkerDefaults[ReconcileArgs]
	client *Client
}

// Work runs one Reconcile.
func (w *reconcileWorker) Work(ctx context.Context, _ *river.Job[ReconcileArgs]) error {
	// A key whose parked messages were left by processes that stopped is
	// dispatched again from here.
	w.client.delivery.KickAll()
	n, err := w.client.Reconcile(ctx)
	if n > 0 {
		w.client.config.Logger.WarnContext(ctx, "outbound: settled messages whose delivery job ended without recording a result",
			slog.Int("count", n))
	}
	return err
}
