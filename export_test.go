package outbound

import "time"

// HoldsDedupKey exposes MessageStatus.holdsDedupKey to the tests, which check
// it against the database's own rule, the messages.holds_dedup_key column.
func HoldsDedupKey(s MessageStatus) bool { return s.holdsDedupKey() }

// SetStatusGaugeMinInterval changes how often the outbound.message.backlog gauges may
// query, so that a test need not wait StatusGaugeMinInterval between two.
func SetStatusGaugeMinInterval(c *Client, d time.Duration) {
	c.statusGauge.mu.Lock()
	defer c.statusGauge.mu.Unlock()
	c.statusGauge.minInterval = d
}

// AwaitingResult exposes MessageStatus.awaitingResult to the tests, which
// check it against the messages.awaiting_result column.
func AwaitingResult(s MessageStatus) bool { return s.awaitingResult() }

// StoredRequest is the part of an envelope that only replays read.
type StoredRequest struct {
	RecipientsDigest []byte
	ScheduleIn       *time.Duration
	ScheduledAt      *time.Time
	Priority         *int
	MaxAttempts      *int
}

// EnvelopeStoredRequest exposes the parts of an envelope that only replays
// read, for the test that checks scanEnvelope against the row.
func EnvelopeStoredRequest(e *Envelope) StoredRequest {
	return StoredRequest{e.recipientsDigest, e.scheduleIn, e.scheduledAt, e.priority, e.maxAttempts}
}
