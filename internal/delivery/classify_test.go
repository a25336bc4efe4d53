package delivery

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cairnloop/outbound/internal/telemetry"
	"github.com/cairnloop/outbound/internal/telemetry/telemetrytest"
	"github.com/cairnloop/outbound/outboundtype"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// TestClassify checks, for each way an attempt can end, its span (status,
// outcome, reason, error.type), its metric attributes and the final outcome
// it reports: each attempt is classified once, from what it did, and named
// in one vocabulary.
func TestClassify(t *testing.T) {
	t.Parallel()
	msg := &outboundtype.Message{ID: uuid.New()}
	pgErr := &pgconn.PgError{Code: "40001"}
	job := &river.Job[outboundtype.DeliveryArgs]{JobRow: &rivertype.JobRow{ID: 1, Attempt: 1, MaxAttempts: 3}, Args: outboundtype.DeliveryArgs{MessageID: msg.ID}}
	lastJob := &river.Job[outboundtype.DeliveryArgs]{JobRow: &rivertype.JobRow{ID: 1, Attempt: 3, MaxAttempts: 3}, Args: outboundtype.DeliveryArgs{MessageID: msg.ID}}
	claimed := &claim{msg: msg, claimed: true}
	failedCall := notifyResult{err: errors.New("provider said no")}
	permanentCall := notifyResult{err: outboundtype.Permanent(errors.New("550 no such mailbox"))}
	timedOut := notifyResult{err: errors.New("notifier timed out"), timedOut: true}
	panicked := notifyResult{err: errors.New("notifier panicked: boom"), panicked: true}
	retryAfter := notifyResult{err: outboundtype.RetryAfter(time.Minute, errors.New("429"))}
	rateLimited := notifyResult{err: outboundtype.RateLimited(time.Minute, errors.New("429"))}
	with := func(status outboundtype.MessageStatus) *claim {
		return &claim{msg: &outboundtype.Message{ID: msg.ID, Status: status}}
	}
	// Each case also says which final-outcome event the attempt
	// publishes, if any.
	cases := []struct {
		name        string
		job         *river.Job[outboundtype.DeliveryArgs]
		facts       attemptFacts
		status      codes.Code
		want        attribute.Set
		finalStatus outboundtype.MessageStatus
		eventReason outboundtype.EventReason
	}{
		{"Sent", job, attemptFacts{claim: claimed, notified: true, recorded: outboundtype.MessageStatusSent},
			codes.Unset, telemetrytest.Set(telemetry.OutcomeSent, telemetry.ReasonNotifierOK), outboundtype.MessageStatusSent, outboundtype.EventReasonNotifierOK},
		{"NoNotifier", job, attemptFacts{claim: claimed, recorded: outboundtype.MessageStatusSent},
			codes.Unset, telemetrytest.Set(telemetry.OutcomeNoOp, telemetry.ReasonNoNotifierConfigured), outboundtype.MessageStatusSent, outboundtype.EventReasonNoNotifier},
		{"Failed", job, attemptFacts{claim: claimed, notified: true, notify: failedCall, recorded: outboundtype.MessageStatusFailed},
			codes.Error, telemetrytest.Set(telemetry.OutcomeFailed, telemetry.ReasonNotifierReturnedError), "", ""},
		{"Discarded", lastJob, attemptFacts{claim: claimed, notified: true, notify: failedCall, recorded: outboundtype.MessageStatusDiscarded},
			codes.Error, telemetrytest.Set(telemetry.OutcomeDiscarded, telemetry.ReasonNotifierReturnedError), outboundtype.MessageStatusDiscarded, outboundtype.EventReasonAttemptsExhausted},
		{"DiscardedAsPermanent", job, attemptFacts{claim: claimed, notified: true, notify: permanentCall, recorded: outboundtype.MessageStatusDiscarded},
			codes.Error, telemetrytest.Set(telemetry.OutcomeDiscarded, telemetry.ReasonNotifierPermanentError), outboundtype.MessageStatusDiscarded, outboundtype.EventReasonPermanentError},
		{"CancelledInFlight", job, attemptFacts{claim: claimed, notified: true, notify: failedCall, recorded: outboundtype.MessageStatusCancelled},
			codes.Error, telemetrytest.Set(telemetry.OutcomeCancelled, telemetry.ReasonNotifierReturnedError), outboundtype.MessageStatusCancelled, outboundtype.EventReasonCancelEnvelope},
		{"ClaimLost", job, attemptFacts{claim: claimed, notified: true, claimLost: true},
			codes.Error, telemetrytest.Set(telemetry.OutcomeFailed, telemetry.ReasonClaimLost), "", ""},
		{"DatabaseError", job, attemptFacts{claim: claimed, notified: true, dbErr: pgErr},
			codes.Error, telemetrytest.Set(telemetry.OutcomeFailed, telemetry.ReasonDatabaseError), "", ""},
		{"StoppedBeforeNotifier", job, attemptFacts{dbErr: context.Canceled, stopped: true},
			codes.Error, telemetrytest.Set(telemetry.OutcomeFailed, telemetry.ReasonWorkerStopped), "", ""},
		{"Unconfirmed", job, attemptFacts{claim: &claim{msg: msg, endedUnconfirmed: true}},
			codes.Unset, telemetrytest.Set(telemetry.OutcomeUnconfirmed, telemetry.ReasonCancelled), outboundtype.MessageStatusUnconfirmed, outboundtype.EventReasonResultUnrecorded},
		{"ClaimedElsewhere", job, attemptFacts{claim: &claim{msg: msg, heldFor: time.Second}},
			codes.Unset, telemetrytest.Set(telemetry.OutcomeNoOp, telemetry.ReasonClaimedElsewhere), "", ""},
		{"MessageNotFound", job, attemptFacts{claim: &claim{}},
			codes.Error, telemetrytest.Set(telemetry.OutcomeDiscarded, telemetry.ReasonMessageNotFound), "", ""},
		{"NotifierTimeout", job, attemptFacts{claim: claimed, notified: true, notify: timedOut, recorded: outboundtype.MessageStatusFailed},
			codes.Error, telemetrytest.Set(telemetry.OutcomeFailed, telemetry.ReasonNotifierTimeout), "", ""},
		{"NotifierPanicked", lastJob, attemptFacts{claim: claimed, notified: true, notify: panicked, recorded: outboundtype.MessageStatusDiscarded},
			codes.Error, telemetrytest.Set(telemetry.OutcomeDiscarded, telemetry.ReasonNotifierPanicked), outboundtype.MessageStatusDiscarded, outboundtype.EventReasonAttemptsExhausted},
		{"RetryAfter", job, attemptFacts{claim: claimed, notified: true, notify: retryAfter, recorded: outboundtype.MessageStatusFailed},
			codes.Error, telemetrytest.Set(telemetry.OutcomeFailed, telemetry.ReasonNotifierRetryAfter), "", ""},
		{"NotifierRateLimited", job, attemptFacts{claim: claimed, notified: true, notify: rateLimited, recorded: outboundtype.MessageStatusPending, rateWait: time.Second},
			codes.Unset, telemetrytest.Set(telemetry.OutcomeDeferred, telemetry.ReasonNotifierRateLimited), "", ""},
		{"RateLimitWait", job, attemptFacts{claim: &claim{msg: msg, parked: &parking{turn: time.Second}}},
			codes.Unset, telemetrytest.Set(telemetry.OutcomeDeferred, telemetry.ReasonRateLimitWait), "", ""},
		{"Cancelled", job, attemptFacts{claim: with(outboundtype.MessageStatusCancelled)},
			codes.Unset, telemetrytest.Set(telemetry.OutcomeNoOp, telemetry.ReasonCancelled), "", ""},
		{"AlreadySent", job, attemptFacts{claim: with(outboundtype.MessageStatusSent)},
			codes.Unset, telemetrytest.Set(telemetry.OutcomeNoOp, telemetry.ReasonAlreadyFinal), "", ""},
		{"AlreadyDiscarded", job, attemptFacts{claim: with(outboundtype.MessageStatusDiscarded)},
			codes.Unset, telemetrytest.Set(telemetry.OutcomeNoOp, telemetry.ReasonAlreadyFinal), "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res := classify(tc.job, tc.facts)
			got := telemetrytest.RecordOnce(t, telemetry.SpanDeliver, telemetry.MetricDeliveryAttempts, func(tel *telemetry.Telemetry, span trace.Span) {
				tel.RecordDelivery(context.Background(), span, res.outcome, res.reason, res.failure(), time.Now())
			})
			require.Equal(t, tc.status, got.SpanStatus)
			telemetrytest.RequireOneVocabulary(t, got, tc.want)
			require.Equal(t, map[attribute.Set]int64{tc.want: 1}, got.Counts)

			if tc.finalStatus == "" {
				require.Nil(t, res.final.msg, "a final outcome for an attempt that left none")
				return
			}
			require.Same(t, tc.facts.claim.msg, res.final.msg)
			require.Equal(t, tc.finalStatus, res.final.status)
			require.Equal(t, tc.eventReason, res.final.reason)
		})
	}
}
