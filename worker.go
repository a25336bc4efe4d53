package outbound

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/riverqueue/river"
)

// deliveryWorker is the River worker of DeliveryArgs jobs.
type deliveryWorker struct {
	river.WorkerDefaults[DeliveryArgs]
	client *Client
	// retryAt holds, by job id, the time a RetryAfter error asked for, from
	// Work until River asks NextRetry for the same job.
	retryAt sync.Map
}

// Work makes one delivery attempt.
func (w *deliveryWorker) Work(ctx context.Context, job *river.Job[DeliveryArgs]) error {
	w.retryAt.Delete(job.ID) // left by an attempt River did not retry
	res := w.client.delivery.Deliver(ctx, job)
	if !res.RetryAt.IsZero() {
		w.retryAt.Store(job.ID, res.RetryAt)
	}
	return res.Err
}

// Timeout is the claim's length: the longest an attempt may take from its
// claim to its recorded result. River's rescuer leaves a running job alone
// for at least this long.
func (w *deliveryWorker) Timeout(*river.Job[DeliveryArgs]) time.Duration {
	return claimLength(w.client.config)
}

// NextRetry says when River runs a failed or rescued attempt's job again:
// when a RetryAfter error asked; at once when River's rescuer is asking for
// an attempt whose worker died, since its claim has run out by then; else by
// Config.RetryPolicy, where the zero time defers to the River client's
// policy.
func (w *deliveryWorker) NextRetry(job *river.Job[DeliveryArgs]) time.Time {
	if at, ok := w.retryAt.LoadAndDelete(job.ID); ok {
		return at.(time.Time)
	}
	// A live attempt returns within the claim's length of being fetched;
	// only the rescuer asks about one begun longer ago than that.
	if job.AttemptedAt != nil && time.Since(*job.AttemptedAt) >= claimLength(w.client.config) {
		return time.Now()
	}
	if policy := w.client.config.RetryPolicy; policy != nil {
		return policy.NextRetry(job.JobRow)
	}
	return time.Time{}
}

// DeliveryWorker returns the River worker of delivery jobs (DeliveryArgs),
// which AddWorkers registers along with the others. It is for a host that
// registers its workers one at a time, and for package outboundtest, which
// runs it inline; a job it works must be running, as River's fetch leaves
// it, for its sent record to complete the job.
func (c *Client) DeliveryWorker() river.Worker[DeliveryArgs] {
	return &deliveryWorker{client: c}
}

// AddWorkers registers the library's workers (delivery, reconcile and prune)
// with a host's own River workers. It is the low-level form of
// ConfigureRiver, which most hosts that run their own River client should
// call instead: it also adds the queue and the periodic jobs, and refuses a
// River config whose schema would never see the library's jobs.
//
// With AddWorkers, the rest is the host's to get right. Its River client
// must use the riverpgxv5 driver, work Config.Queue, have its Schema set to
// Config.RiverSchema (not "", unless the connection's search_path leads
// there), and should list PeriodicJobs in its config (and set PollOnly
// behind PgBouncer). Its RescueStuckJobsAfter decides how soon a dead
// worker's delivery is attempted again: River's default is an hour, Start's
// NotifyTimeout + 30s, and River refuses one shorter than its JobTimeout (a
// minute by default). A shorter one than the claim is safe too: a rescued
// attempt that finds the first still holding its claim waits for the claim
// to run out, and never calls the Notifier beside it. Like river.AddWorker,
// it panics if the workers are already registered.
func (c *Client) AddWorkers(workers *river.Workers) {
	if err := c.addWorkers(workers); err != nil {
		panic(err)
	}
	// The host's River client works the queue: rate-limited messages that
	// park need this process's dispatchers.
	c.delivery.EnableDispatch()
}

// addWorkers registers the library's workers, the delivery worker first, and
// returns River's error for the first that is already registered.
func (c *Client) addWorkers(workers *river.Workers) error {
	if err := river.AddWorkerSafely(workers, c.DeliveryWorker()); err != nil {
		return err
	}
	if err := river.AddWorkerSafely(workers, &reconcileWorker{client: c}); err != nil {
		return err
	}
	return river.AddWorkerSafely(workers, &pruneWorker{client: c})
}

// Start starts the embedded River client, which works Config.Queue with up to
// Config.MaxWorkers deliveries at once. Several processes may run it against
// one database; River hands each job to one of them at a time. Cancelling ctx
// stops the client abruptly, as Stop does when its own context ends.
func (c *Client) Start(ctx context.Context) error {
	if err := c.checkSchema(ctx, c.pool); err != nil {
		return err
	}
	if err := c.river.Start(ctx); err != nil {
		return fmt.Errorf("outbound: start delivery worker: %w", err)
	}
	// Messages left parked by processes that stopped are released from now.
	c.delivery.StartDispatchers()
	return nil
}

// Stop stops the embedded River client: it fetches no more deliveries and
// waits for running ones to finish. If ctx ends first, it cancels the running
// deliveries' contexts, waits for them to record a failed attempt (which River
// retries later), and returns ctx's error. A Notifier that ignores its
// context is not waited for past that: its delivery runs on, renewing its
// claim, and records what the call returns if the process lives that long;
// if it does not, the claim runs out and the message is attempted again.
func (c *Client) Stop(ctx context.Context) error {
	c.delivery.StopDispatchers()
	err := c.river.Stop(ctx)
	if err == nil {
		return nil
	}
	if ctx.Err() == nil {
		return fmt.Errorf("outbound: stop delivery worker: %w", err)
	}
	cancelCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*recordTimeout)
	defer cancel()
	if stopErr := c.river.StopAndCancel(cancelCtx); stopErr != nil {
		return fmt.Errorf("outbound: stop delivery worker: %w", errors.Join(err, stopErr))
	}
	return fmt.Errorf("outbound: stop delivery worker: %w", err)
}
