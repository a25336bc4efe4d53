package outbound

import (
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"
)

// fixedPolicy retries after a fixed delay.
type fixedPolicy time.Duration

func (d fixedPolicy) NextRetry(*rivertype.JobRow) time.Time { return time.Now().Add(time.Duration(d)) }

func TestDeliveryWorkerNextRetry(t *testing.T) {
	t.Parallel()
	cfg := (&Config{NotifyTimeout: time.Second}).withDefaults()
	w := &deliveryWorker{client: &Client{config: cfg}}
	// job is attempt 3 of job 7, fetched ago before now.
	job := func(ago time.Duration) *river.Job[DeliveryArgs] {
		at := time.Now().Add(-ago)
		return &river.Job[DeliveryArgs]{JobRow: &rivertype.JobRow{ID: 7, Attempt: 3, AttemptedAt: &at}}
	}

	// A live attempt's failure: the River client's policy decides.
	require.True(t, w.NextRetry(job(time.Second)).IsZero())

	// A RetryAfter error's time, once.
	at := time.Now().Add(time.Minute)
	w.retryAt.Store(int64(7), at)
	require.Equal(t, at, w.NextRetry(job(time.Second)))
	require.True(t, w.NextRetry(job(time.Second)).IsZero())

	// River's rescuer asks about an attempt begun longer ago than a claim
	// lasts: its worker died, and its claim has run out, so at once, not
	// after attempt⁴ seconds.
	requireBetween(t, 0, func() time.Time { return w.NextRetry(job(claimLength(cfg) + time.Second)) })

	// Config.RetryPolicy for a live attempt's failure.
	cfg.RetryPolicy = fixedPolicy(time.Hour)
	requireBetween(t, time.Hour, func() time.Time { return w.NextRetry(job(time.Second)) })
}

// requireBetween checks that next returns a time d after the moment it ran:
// between d after the call began and d after it returned, however long the
// call took.
func requireBetween(t *testing.T, d time.Duration, next func() time.Time) {
	t.Helper()
	before := time.Now()
	got := next()
	after := time.Now()
	require.False(t, got.Before(before.Add(d)), "%s is before %s", got, before.Add(d))
	require.False(t, got.After(after.Add(d)), "%s is after %s", got, after.Add(d))
}
