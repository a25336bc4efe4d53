package outbound

import (
	"cmp"
	"time"
)

// longPast stands for a ScheduledAt before the year 1. Like any time past,
// it means now; but PostgreSQL's timestamptz starts at 4713 BC, so such a
// time is kept as the Unix epoch, itself past and storable, so that the
// request an envelope records, and a replay of it, hold the same time.
var longPast = time.Unix(0, 0).UTC()

// clampLongPast returns t, or longPast for a time before the year 1.
func clampLongPast(t time.Time) time.Time {
	if !t.IsZero() && t.Year() < 1 {
		return longPast
	}
	return t
}

// validateScheduledAt refuses a time beyond what every store of it holds.
func validateScheduledAt(field string, t time.Time) error {
	if t.Year() >= scheduledAtYearLimit {
		return invalidArgument(field, "must be before the year %d, got the year %d", scheduledAtYearLimit, t.Year())
	}
	return nil
}

// deliveryOpts are the options that Trigger and BulkTrigger share about when
// and how their messages are delivered, as the caller gave them.
type deliveryOpts struct {
	scheduleIn  time.Duration
	scheduledAt time.Time
	priority    int
	maxAttempts int
}

// validate checks the options; owner names their struct in errors.
func (o deliveryOpts) validate(owner string) error {
	if o.scheduleIn < 0 {
		return invalidArgument(owner+".ScheduleIn", "must not be negative, got %s", o.scheduleIn)
	}
	if o.scheduleIn != 0 && !o.scheduledAt.IsZero() {
		return invalidArgument(owner+".ScheduledAt", "must not be set together with %s.ScheduleIn (%s): set one or the other", owner, o.scheduleIn)
	}
	if err := validateScheduledAt(owner+".ScheduledAt", o.scheduledAt); err != nil {
		return err
	}
	if o.priority != 0 && (o.priority < minPriority || o.priority > maxPriority) {
		return invalidArgument(owner+".Priority", "must be between %d (highest) and %d, River's priorities, or 0 for the default; got %d", minPriority, maxPriority, o.priority)
	}
	if o.maxAttempts < 0 || o.maxAttempts > maxMaxAttempts {
		return invalidArgument(owner+".MaxAttempts", "must be between 1 and %d, or 0 for the client's default; got %d", maxMaxAttempts, o.maxAttempts)
	}
	return nil
}

// startAt is when delivery may start: now+ScheduleIn, or ScheduledAt. The
// zero time means now, and so does a time already past: River runs a job
// scheduled in the past at once, and the message says it was due now.
func (o deliveryOpts) startAt(now time.Time) time.Time {
	at := o.scheduledAt
	if o.scheduleIn > 0 {
		at = now.Add(o.scheduleIn)
	}
	if !at.After(now) {
		return time.Time{}
	}
	return at
}

// jobOptions are the River insert options of a call's delivery jobs, with the
// defaults applied.
type jobOptions struct {
	// startAt is when delivery may start; the zero time means now.
	startAt     time.Time
	priority    int
	maxAttempts int
}

// jobOptions applies the defaults: defaultPriority, and defaultMaxAttempts
// (the client's Config.MaxAttempts).
func (o deliveryOpts) jobOptions(defaultPriority, defaultMaxAttempts int) jobOptions {
	return jobOptions{
		startAt:     o.startAt(time.Now()),
		priority:    cmp.Or(o.priority, defaultPriority),
		maxAttempts: cmp.Or(o.maxAttempts, defaultMaxAttempts),
	}
}
