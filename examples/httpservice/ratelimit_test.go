package main

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cairnloop/outbound"
)

func TestParseRateLimit(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]map[string]outbound.RateLimit{
		"":          nil,
		"100/1s":    {"": {Limit: 100, Per: time.Second}},
		"10/1s/5":   {"": {Limit: 10, Per: time.Second, Burst: 5}},
		"50000/24h": {"": {Limit: 50000, Per: 24 * time.Hour}},
		"1/500ms/1": {"": {Limit: 1, Per: 500 * time.Millisecond, Burst: 1}},
	} {
		got, err := parseRateLimit(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for in, complaint := range map[string]string{
		"100":      "want LIMIT/PER",
		"1/2/3/4":  "want LIMIT/PER",
		"x/1s":     "LIMIT must be",
		"0/1s":     "LIMIT must be",
		"100/s":    "PER must be a duration",
		"100/-1s":  "PER must be a duration",
		"100/1s/0": "BURST must be",
	} {
		_, err := parseRateLimit(in)
		require.ErrorContains(t, err, "OUTBOUND_RATE_LIMIT", in)
		require.ErrorContains(t, err, complaint, in)
	}
}

// TestServiceRateLimit runs the service with OUTBOUND_RATE_LIMIT's limit of
// one delivery an hour: of a bulk of three, one is sent and two wait,
// pending, with their expected turns an hour and more away.
func TestServiceRateLimit(t *testing.T) {
	limits, err := parseRateLimit("1/1h")
	require.NoError(t, err)
	svc := startService(t, &options{addr: "127.0.0.1:0", creds: testCreds, rateLimits: limits})
	c := &apiClient{t: t, base: svc.base, creds: testCreds}

	var res bulkResponse
	c.do("POST", "/outbound/bulk", `{"conversation_ids": [1, 2, 3], "template_id": "sms", "rendered_body": "Hi."}`, nil, http.StatusCreated, &res)
	var sent, waiting int
	require.Eventually(t, func() bool {
		sent, waiting = 0, 0
		for _, m := range res.Messages {
			var one struct{ Message *messageJSON }
			c.do("GET", "/outbound/messages/"+m.ID.String(), "", nil, http.StatusOK, &one)
			switch {
			case one.Message.Status == "sent":
				sent++
			case one.Message.Status == "pending" && one.Message.RateLimitedUntil != nil:
				require.Greater(t, time.Until(*one.Message.RateLimitedUntil), 50*time.Minute)
				waiting++
			}
		}
		return sent == 1 && waiting == 2
	}, waitCeiling, 20*time.Millisecond, "sent %d, waiting %d", sent, waiting)
}
