package telemetry

import (
	"testing"

	"github.com/cairnloop/outbound/outboundtype"
	"github.com/stretchr/testify/require"
)

// TestFinalEventReason checks the one table from an attempt's metric reason
// to its event reason, the final status deciding first: a cancel in flight
// is cancel_envelope whatever the Notifier's failure was.
func TestFinalEventReason(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		status outboundtype.MessageStatus
		reason Reason
		want   outboundtype.EventReason
	}{
		{outboundtype.MessageStatusSent, ReasonNotifierOK, outboundtype.EventReasonNotifierOK},
		{outboundtype.MessageStatusSent, ReasonNoNotifierConfigured, outboundtype.EventReasonNoNotifier},
		{outboundtype.MessageStatusDiscarded, ReasonNotifierPermanentError, outboundtype.EventReasonPermanentError},
		{outboundtype.MessageStatusDiscarded, ReasonNotifierReturnedError, outboundtype.EventReasonAttemptsExhausted},
		{outboundtype.MessageStatusDiscarded, ReasonNotifierTimeout, outboundtype.EventReasonAttemptsExhausted},
		{outboundtype.MessageStatusCancelled, ReasonNotifierReturnedError, outboundtype.EventReasonCancelEnvelope},
		{outboundtype.MessageStatusCancelled, ReasonNotifierPermanentError, outboundtype.EventReasonCancelEnvelope},
		{outboundtype.MessageStatusUnconfirmed, ReasonCancelled, outboundtype.EventReasonResultUnrecorded},
	} {
		require.Equal(t, tc.want, FinalEventReason(tc.status, tc.reason), "%s / %s", tc.status, tc.reason)
	}
	// The Notifier's own answers are one string in metrics and events.
	require.Equal(t, string(ReasonNotifierPermanentError), "notifier_permanent_error")
	require.Equal(t, string(ReasonNotifierOK), string(outboundtype.EventReasonNotifierOK))
}
