package outbound

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/riverqueue/river"
)

// A message and its River job can part ways when a delivery's result could
// not be recorded: the worker died or lost the database on the last attempt,
// and River (or its rescuer) discarded the job. An operator can also cancel
// or discard a job from River's UI. The message is then left pending or
// failed, holding its dedup key, with nothing left to deliver it. Reconcile
// finds such messages and makes them say what happened.

// ReconcileJobKind is the River job kind of the periodic reconcile job.
const ReconcileJobKind = "outbound_reconcile"

// ReconcileInterval is how often the periodic reconcile job runs.
const ReconcileInterval = time.Minute

// reconcileBatchSize bounds the rows one reconcile statement locks.
const reconcileBatchSize = 1000

// ReconcileArgs are the (empty) args of the periodic reconcile job.
type ReconcileArgs struct{}

// Kind implements river.JobArgs.
func (ReconcileArgs) Kind() string { return ReconcileJobKind }

// Reconcile settles undelivered (pending or failed) messages whose River job
// has ended or is gone: a cancelled job makes its message cancelled, a
// discarded or missing one makes it discarded, and either frees the dedup
// key. It returns how many messages it settled. Start runs it every
// ReconcileInterval; a host with its own River client adds PeriodicJobs to
// that client's config, or calls Reconcile itself.
func (c *Client) Reconcile(ctx context.Context) (int, error) {
	total := 0
	for {
		tag, err := c.pool.Exec(ctx, c.queries.ReconcileMessages, reconcileBatchSize)
		if err != nil {
			return total, fmt.Errorf("outbound: reconcile: %w", err)
		}
		n := int(tag.RowsAffected())
		total += n
		if n < reconcileBatchSize {
			return total, nil
		}
	}
}

// PeriodicJobs returns the library's periodic River jobs (the reconcile job),
// for a host that runs its own River client and registered the workers with
// AddWorkers. Start adds them to its embedded client itself.
func (c *Client) PeriodicJobs() []*river.PeriodicJob {
	return []*river.PeriodicJob{
		river.NewPeriodicJob(
			river.PeriodicInterval(ReconcileInterval),
			func() (river.JobArgs, *river.InsertOpts) {
				return ReconcileArgs{}, &river.InsertOpts{Queue: c.config.Queue}
			},
			&river.PeriodicJobOpts{ID: ReconcileJobKind, RunOnStart: true},
		),
	}
}

// reconcileWorker is the River worker of the periodic reconcile job.
type reconcileWorker struct {
	river.WorkerDefaults[ReconcileArgs]
	client *Client
}

// Work runs one Reconcile.
func (w *reconcileWorker) Work(ctx context.Context, _ *river.Job[ReconcileArgs]) error {
	n, err := w.client.Reconcile(ctx)
	if n > 0 {
		w.client.config.Logger.WarnContext(ctx, "outbound: settled messages whose delivery job ended without recording a result",
			slog.Int("count", n))
	}
	return err
}
