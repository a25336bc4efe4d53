package outbound

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/riverqueue/river/rivertype"
)

// HoldsDedupKey exposes holdsDedupKey to the tests, which check
// it against the database's own rule, the messages.holds_dedup_key column.
func HoldsDedupKey(s MessageStatus) bool { return holdsDedupKey(s) }

// RefusalRecordTimeoutForTest is refusalRecordTimeout, which the refusal
// tests bound their waits by.
const RefusalRecordTimeoutForTest = refusalRecordTimeout

// SetStatusGaugeMinInterval changes how often the outbound.message.backlog gauges may
// query, so that a test need not wait 5s between two.
func SetStatusGaugeMinInterval(c *Client, d time.Duration) { c.statusGauge.SetMinInterval(d) }

// AwaitingResult exposes MessageStatus.awaitingResult to the tests, which
// check it against the messages.awaiting_result column.
func AwaitingResult(s MessageStatus) bool { return awaitingResult(s) }

// StoredRequest is the part of an envelope that only replays read.
type StoredRequest struct {
	RecipientsDigest []byte
	ScheduleIn       *time.Duration
	ScheduledAt      *time.Time
	Priority         *int
	MaxAttempts      *int
}

// EnvelopeStoredRequest reads the parts of an envelope that only replays
// read, for the test that checks scanEnvelopeRecord against the row.
func (c *Client) EnvelopeStoredRequest(ctx context.Context, id uuid.UUID) (StoredRequest, error) {
	e, err := scanEnvelopeRecordWithOutcome(c.pool.QueryRow(ctx, c.queries.SelectEnvelope, id))
	if err != nil {
		return StoredRequest{}, err
	}
	return StoredRequest{e.recipientsDigest, e.scheduleIn, e.scheduledAt, e.priority, e.maxAttempts}, nil
}

// SetRiverTime makes the River client that New builds from config use
// clock, as River's Test.Time hook does: a test sets River's clock off the
// database's.
func SetRiverTime(config *Config, clock rivertype.TimeGenerator) { config.riverTime = clock }
