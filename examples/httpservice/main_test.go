package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairnloop/outbound"
	"github.com/cairnloop/outbound/internal/devpg"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// TestService starts the service against a throwaway PostgreSQL and drives
// it over HTTP: trigger, dedup, bulk with idempotency keys, the cap, reads,
// cancels, errors, River's UI, /metrics, and a graceful shutdown.
func TestService(t *testing.T) {
	svc := startService(t, &options{addr: "127.0.0.1:0", creds: testCreds})
	base, logs := svc.base, svc.logs
	c := &apiClient{t: t, base: base, creds: testCreds}

	t.Run("Trigger", func(t *testing.T) {
		c.t = t
		var res triggerResponse
		c.do("POST", "/conversations/42/outbound", `{"template_id": "recovery", "actor": "agent:7"}`, nil, http.StatusCreated, &res)
		require.Equal(t, int64(42), res.Message.ConversationID)
		require.Equal(t, "pending", res.Message.Status)
		require.Equal(t, "Outbound message using template: recovery", res.Message.Content)
		require.False(t, res.Duplicate)

		var dup triggerResponse
		c.do("POST", "/conversations/42/outbound", `{"template_id": "recovery"}`, nil, http.StatusOK, &dup)
		require.True(t, dup.Duplicate)
		require.Equal(t, res.Message.ID, dup.Message.ID)

		// Delivered by the embedded worker.
		c.waitForMessage(res.Message.ID, "sent")
		require.Contains(t, logs.String(), "delivering outbound message")
	})

	t.Run("TriggerBadInput", func(t *testing.T) {
		c.t = t
		c.expectError("POST", "/conversations/42/outbound", `{"content": "x"}`, nil, http.StatusBadRequest, "invalid_argument", "template_id is required")
		c.expectError("POST", "/conversations/0/outbound", `{"template_id": "recovery"}`, nil, http.StatusBadRequest, "invalid_argument", "conversation")
		c.expectError("POST", "/conversations/abc/outbound", `{"template_id": "recovery"}`, nil, http.StatusBadRequest, "invalid_argument", `"abc"`)
		c.expectError("POST", "/conversations/42/outbound", `{"template_id": "recovery", "colour": "red"}`, nil, http.StatusBadRequest, "invalid_argument", "colour")
		c.expectError("POST", "/conversations/42/outbound", `{"template_id": "recovery", "schedule_in_seconds": -5}`, nil, http.StatusBadRequest, "invalid_argument", "schedule_in_seconds must not be negative")
		// A template id too long for the dedup index is refused before it
		// reaches the database (it used to be a 500 from PostgreSQL).
		c.expectError("POST", "/conversations/42/outbound", `{"template_id": "`+strings.Repeat("x", 3000)+`"}`, nil, http.StatusBadRequest, "invalid_argument", "template_id must be at most 256 bytes")
		c.expectError("POST", "/conversations/42/outbound", `{"template_id": "recovery", "schedule_in_seconds": 9223372036854775807}`, nil, http.StatusBadRequest, "invalid_argument", "schedule_in_seconds")
		c.expectError("POST", "/conversations/42/outbound", `not json`, nil, http.StatusBadRequest, "invalid_argument", "request body is not valid JSON")
	})

	t.Run("Bulk", func(t *testing.T) {
		c.t = t
		key := uuid.NewString()
		body := `{"conversation_ids": [101, 102, 103], "template_id": "outage", "rendered_body": "Back up.", "actor": "agent:7"}`
		var res bulkResponse
		c.do("POST", "/outbound/bulk", body, map[string]string{"Idempotency-Key": key}, http.StatusCreated, &res)
		require.Equal(t, key, res.Envelope.ID.String())
		require.Equal(t, "submitted", res.Envelope.Status)
		require.Equal(t, []int64{101, 102, 103}, res.Envelope.RecipientConversationIDs)
		require.Len(t, res.Messages, 3)
		require.False(t, res.Replayed)

		var replay bulkResponse
		c.do("POST", "/outbound/bulk", body, map[string]string{"Idempotency-Key": key}, http.StatusOK, &replay)
		require.True(t, replay.Replayed)
		require.Equal(t, res.Messages[0].ID, replay.Messages[0].ID)

		c.expectError("POST", "/outbound/bulk", `{"conversation_ids": [101], "template_id": "outage", "rendered_body": "Other."}`,
			map[string]string{"Idempotency-Key": key}, http.StatusConflict, "idempotency_conflict", key)
		c.expectError("POST", "/outbound/bulk", body, map[string]string{"Idempotency-Key": "not-a-uuid"}, http.StatusBadRequest, "invalid_argument", "Idempotency-Key")
		c.expectError("POST", "/outbound/bulk", `{"conversation_ids": [1, 1], "template_id": "outage", "rendered_body": "x"}`, nil, http.StatusBadRequest, "invalid_argument", "must not repeat")

		// Progress until every recipient is sent.
		require.Eventually(t, func() bool {
			var env envelopeResponse
			c.do("GET", "/outbound/envelopes/"+key, "", nil, http.StatusOK, &env)
			return env.Progress.Sent == 3 && env.Progress.Total == 3
		}, waitCeiling, 50*time.Millisecond)
	})

	var refusedID uuid.UUID
	t.Run("OverTheCap", func(t *testing.T) {
		c.t = t
		ids := make([]string, 26)
		for i := range ids {
			ids[i] = strconv.Itoa(1000 + i)
		}
		body := `{"conversation_ids": [` + strings.Join(ids, ",") + `], "template_id": "outage", "rendered_body": "Back up."}`
		var res struct{ Error errorBody }
		c.do("POST", "/outbound/bulk", body, nil, http.StatusUnprocessableEntity, &res)
		require.Equal(t, "batch_too_large", res.Error.Code)
		require.Equal(t, 26, res.Error.Count)
		require.Equal(t, 25, res.Error.Cap)
		require.NotNil(t, res.Error.EnvelopeID)
		refusedID = *res.Error.EnvelopeID

		var env envelopeResponse
		c.do("GET", "/outbound/envelopes/"+refusedID.String(), "", nil, http.StatusOK, &env)
		require.Equal(t, "refused_cap_exceeded", env.Envelope.Status)
		require.Equal(t, "batch_size 26 exceeds cap 25", env.Envelope.RefusedReason)
		require.Zero(t, env.Progress.Total)
		c.expectError("POST", "/outbound/envelopes/"+refusedID.String()+"/cancel", "", nil, http.StatusConflict, "not_cancellable", "refused")
	})

	t.Run("ListEnvelopes", func(t *testing.T) {
		c.t = t
		var all struct {
			Envelopes  []*envelopeJSON
			NextCursor *string `json:"next_cursor"`
		}
		c.do("GET", "/outbound/envelopes", "", nil, http.StatusOK, &all)
		require.Len(t, all.Envelopes, 2)
		require.Equal(t, refusedID, all.Envelopes[0].ID, "newest first")

		var refused struct {
			Envelopes  []*envelopeJSON
			NextCursor *string `json:"next_cursor"`
		}
		c.do("GET", "/outbound/envelopes?status=refused_cap_exceeded", "", nil, http.StatusOK, &refused)
		require.Len(t, refused.Envelopes, 1)
		c.do("GET", "/outbound/envelopes?outcome=refused", "", nil, http.StatusOK, &refused)
		require.Len(t, refused.Envelopes, 1)
		require.Equal(t, "refused", refused.Envelopes[0].Outcome)
		c.expectError("GET", "/outbound/envelopes?limit=501", "", nil, http.StatusBadRequest, "invalid_argument", "limit must be between 1 and 500")
		c.expectError("GET", "/outbound/envelopes?status=bogus", "", nil, http.StatusBadRequest, "invalid_argument", "status must be")

		// Paged one at a time, through the cursors.
		var first, second struct {
			Envelopes  []*envelopeJSON
			NextCursor *string `json:"next_cursor"`
		}
		c.do("GET", "/outbound/envelopes?limit=1", "", nil, http.StatusOK, &first)
		require.Len(t, first.Envelopes, 1)
		require.NotNil(t, first.NextCursor)
		c.do("GET", "/outbound/envelopes?limit=1&after="+*first.NextCursor, "", nil, http.StatusOK, &second)
		require.Len(t, second.Envelopes, 1)
		require.Equal(t, all.Envelopes[1].ID, second.Envelopes[0].ID)
		require.Nil(t, second.NextCursor, "the last page")
		c.expectError("GET", "/outbound/envelopes?after=bogus", "", nil, http.StatusBadRequest, "invalid_argument", "after ")
	})

	t.Run("ListMessages", func(t *testing.T) {
		c.t = t
		var page struct {
			Messages   []*messageJSON
			NextCursor *string `json:"next_cursor"`
		}
		c.do("GET", "/outbound/messages?conversation_id=101&status=sent", "", nil, http.StatusOK, &page)
		require.Len(t, page.Messages, 1)
		require.Equal(t, int64(101), page.Messages[0].ConversationID)
		require.Nil(t, page.NextCursor)
		c.do("GET", "/outbound/messages?limit=2", "", nil, http.StatusOK, &page)
		require.Len(t, page.Messages, 2)
		require.NotNil(t, page.NextCursor)
		c.expectError("GET", "/outbound/messages?status=bogus", "", nil, http.StatusBadRequest, "invalid_argument", "status must be")
		c.expectError("GET", "/outbound/messages?conversation_id=x", "", nil, http.StatusBadRequest, "invalid_argument", "conversation_id")
	})

	t.Run("Cancel", func(t *testing.T) {
		c.t = t
		// Scheduled an hour ahead, so nothing is delivered before the cancel.
		var res bulkResponse
		c.do("POST", "/outbound/bulk", `{"conversation_ids": [201, 202, 203], "template_id": "later", "rendered_body": "Soon.", "schedule_in_seconds": 3600}`,
			nil, http.StatusCreated, &res)
		var one struct{ Message *messageJSON }
		c.do("POST", "/outbound/messages/"+res.Messages[0].ID.String()+"/cancel", "", nil, http.StatusOK, &one)
		require.Equal(t, "cancelled", one.Message.Status)
		require.Equal(t, testCreds.username, one.Message.CancelledBy, "the cancel is the authenticated user's")
		require.NotNil(t, one.Message.CancelledAt)

		var env envelopeResponse
		c.do("POST", "/outbound/envelopes/"+res.Envelope.ID.String()+"/cancel", "", nil, http.StatusOK, &env)
		require.Equal(t, 2, *env.Cancelled)
		require.Equal(t, "cancelled", env.Envelope.Status)
		require.Equal(t, "cancelled", env.Envelope.Outcome)
		require.Equal(t, testCreds.username, env.Envelope.CancelledBy)
		require.Equal(t, progressJSON{Cancelled: 3, Total: 3}, *env.Progress)

		c.do("POST", "/outbound/envelopes/"+res.Envelope.ID.String()+"/cancel", "", nil, http.StatusOK, &env)
		require.Zero(t, *env.Cancelled)

		// Each cancelled message is logged as not delivered, with why, by
		// the service's subscriber, which logs as events come.
		for i, m := range res.Messages {
			reason := "cancel_envelope"
			if i == 0 {
				reason = "cancel_message"
			}
			line := `msg="outbound message not delivered" outcome=message_cancelled reason=` + reason + " message_id=" + m.ID.String()
			require.Eventually(t, func() bool { return strings.Contains(logs.String(), line) }, waitCeiling, 10*time.Millisecond, line)
		}

		// A sent message cannot be cancelled.
		var sent triggerResponse
		c.do("POST", "/conversations/7/outbound", `{"template_id": "recovery"}`, nil, http.StatusCreated, &sent)
		c.waitForMessage(sent.Message.ID, "sent")
		c.expectError("POST", "/outbound/messages/"+sent.Message.ID.String()+"/cancel", "", nil, http.StatusConflict, "not_cancellable", "is sent")
	})

	// Scheduled at an absolute time, at the lowest priority, with one
	// attempt: the message says when, and River's job the rest.
	t.Run("TriggerDeliveryOptions", func(t *testing.T) {
		c.t = t
		var res triggerResponse
		c.do("POST", "/conversations/77/outbound", `{"template_id": "survey", "scheduled_at": "2030-01-02T09:00:00Z", "priority": 4, "max_attempts": 1}`,
			nil, http.StatusCreated, &res)
		require.Equal(t, time.Date(2030, 1, 2, 9, 0, 0, 0, time.UTC), res.Message.ScheduledAt.UTC())
		var bulk bulkResponse
		c.do("POST", "/outbound/bulk", `{"conversation_ids": [78], "template_id": "survey", "rendered_body": "How did we do?", "scheduled_at": "2030-01-02T09:00:00+01:00"}`,
			nil, http.StatusCreated, &bulk)
		require.Equal(t, time.Date(2030, 1, 2, 8, 0, 0, 0, time.UTC), bulk.Messages[0].ScheduledAt.UTC())
	})

	t.Run("NotFound", func(t *testing.T) {
		c.t = t
		unknown := uuid.NewString()
		c.expectError("GET", "/outbound/messages/"+unknown, "", nil, http.StatusNotFound, "not_found", unknown)
		c.expectError("GET", "/outbound/envelopes/"+unknown, "", nil, http.StatusNotFound, "not_found", unknown)
		c.expectError("POST", "/outbound/envelopes/"+unknown+"/cancel", "", nil, http.StatusNotFound, "not_found", unknown)
		c.expectError("POST", "/outbound/messages/"+unknown+"/cancel", "", nil, http.StatusNotFound, "not_found", unknown)
		c.expectError("GET", "/outbound/messages/nope", "", nil, http.StatusBadRequest, "invalid_argument", "UUID")
	})

	// Each recipient its own body, data and time; the logging notifier
	// shows the data it receives.
	t.Run("PersonalisedBulk", func(t *testing.T) {
		c.t = t
		later := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
		body := `{"template_id": "resolved", "data": {"channel": "sms"}, "recipients": [
			{"conversation_id": 301, "rendered_body": "Hi Ana, ticket #123 is resolved", "data": {"phone": "+15550101"}},
			{"conversation_id": 302, "rendered_body": "Hi Bo, ticket #124 is resolved", "data": {"phone": "+15550102"}, "scheduled_at": "` + later.Format(time.RFC3339) + `"}]}`
		var res bulkResponse
		c.do("POST", "/outbound/bulk", body, nil, http.StatusCreated, &res)
		require.Equal(t, []int64{301, 302}, res.Envelope.RecipientConversationIDs)
		require.Equal(t, map[string]any{"channel": "sms"}, res.Envelope.Data)
		require.Equal(t, "Hi Ana, ticket #123 is resolved", res.Messages[0].Content)
		require.True(t, res.Messages[0].Rendered)
		require.Equal(t, map[string]any{"channel": "sms", "phone": "+15550101"}, res.Messages[0].Data)
		require.Equal(t, "Hi Bo, ticket #124 is resolved", res.Messages[1].Content)
		require.True(t, res.Messages[1].ScheduledAt.Equal(later))
		c.waitForMessage(res.Messages[0].ID, "sent")
		require.Contains(t, logs.String(), "phone_ending=0101", "the notifier got the recipient's data")

		c.expectError("POST", "/outbound/bulk", `{"template_id": "t", "recipients": [{"conversation_id": 303, "rendered_body": " "}]}`,
			nil, http.StatusBadRequest, "invalid_argument", "recipients (conversation_id 303) rendered_body must not be only whitespace")
		c.expectError("POST", "/outbound/bulk", `{"template_id": "t", "rendered_body": "b", "conversation_ids": [1], "recipients": [{"conversation_id": 2}]}`,
			nil, http.StatusBadRequest, "invalid_argument", "recipients names conversation 2")
		c.expectError("POST", "/outbound/bulk", `{"template_id": "t", "recipients": [{"conversation_id": 3, "rendered_body": "x", "scheduled_at": "soon"}]}`,
			nil, http.StatusBadRequest, "invalid_argument", "recipients[0].scheduled_at")
	})

	t.Run("RiverUI", func(t *testing.T) {
		c.t = t
		anonymous := &apiClient{t: t, base: base}
		require.Contains(t, anonymous.raw("GET", "/riverui/", http.StatusUnauthorized), "UI_USERNAME")
		anonymous.creds = credentials{username: testCreds.username, password: "wrong"}
		anonymous.raw("GET", "/riverui/api/jobs?state=completed", http.StatusUnauthorized)
		page := c.raw("GET", "/riverui/", http.StatusOK)
		require.Contains(t, page, "<html")
		var jobs struct {
			Data []struct {
				Kind  string `json:"kind"`
				Queue string `json:"queue"`
			} `json:"data"`
		}
		require.NoError(t, json.Unmarshal([]byte(c.raw("GET", "/riverui/api/jobs?state=completed", http.StatusOK)), &jobs))
		var deliveries int
		for _, job := range jobs.Data {
			if job.Kind == "outbound_delivery" {
				deliveries++
				require.Equal(t, "outbound", job.Queue)
			}
		}
		require.NotZero(t, deliveries, "River's UI lists the completed delivery jobs")
	})

	t.Run("Dashboard", func(t *testing.T) {
		c.t = t
		anonymous := &apiClient{t: t, base: base}
		anonymous.raw("GET", "/outbound/ui/", http.StatusUnauthorized)
		anonymous.raw("POST", "/outbound/ui/envelopes/"+refusedID.String()+"/cancel", http.StatusUnauthorized)
		page := c.raw("GET", "/outbound/ui/", http.StatusOK)
		require.Contains(t, page, `<tr data-envelope="`+refusedID.String()+`">`)
		require.Contains(t, page, "Refused: batch_size 26 exceeds cap 25")
		message := c.raw("GET", "/outbound/ui/messages?conversation_id=101", http.StatusOK)
		require.Contains(t, message, `<tr data-status="sent">`)
	})

	t.Run("Metrics", func(t *testing.T) {
		c.t = t
		metrics := c.raw("GET", "/metrics", http.StatusOK)
		for _, want := range []string{
			`outbound_trigger_messages_total{`,
			`outcome="triggered"`,
			`outcome="duplicate"`,
			`outcome="refused"`,
			`outbound_bulk_trigger_duration_seconds_count{`,
			`outcome="refused_cap_exceeded"`,
			`outbound_delivery_attempts_total{`,
			`reason="notifier_ok"`,
			`outbound_trigger_duration_seconds_bucket{`,
			// The series the README's alert rules read.
			"\noutbound_message_oldest_pending_age_seconds{",
			"\noutbound_message_rate_limited{",
			`outbound_message_duration_seconds_count{`,
			`status="sent"`,
			`outbound_message_backlog{`,
		} {
			require.Contains(t, metrics, want)
		}
		// No id, actor or body reaches a metric label.
		for _, leak := range []string{refusedID.String(), "agent:7", "Back up.", "recovery", "conversation_id"} {
			require.NotContains(t, metrics, leak)
		}
		// Prometheus's own linter finds nothing to say of the names.
		require.Empty(t, promtoolCheckMetrics(t, metrics))
	})

	// Graceful shutdown: run returns nil and the port is closed.
	require.NoError(t, svc.stop())
	_, err := http.Get(base + "/outbound/envelopes")
	require.Error(t, err, "the listener is closed")
	require.Contains(t, logs.String(), "shutting down")
}

// testCreds are the UIs' credentials in the tests.
// waitCeiling bounds a wait for behaviour against a hang: a broken build
// hits it, a busy machine never does.
const waitCeiling = 3 * time.Minute

var testCreds = credentials{username: "operator", password: "correct horse"}

// service is the example service running on a throwaway PostgreSQL.
type service struct {
	base string
	logs *syncBuffer
	// stop shuts the service down gracefully and returns what run did.
	stop func() error
}

// startService runs the service with opts until the test ends (or stop).
func startService(t *testing.T, opts *options) *service {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	cluster, err := devpg.Start(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = cluster.Stop() })
	t.Setenv("DATABASE_URL", cluster.URL)

	logs := &syncBuffer{}
	runCtx, stopRun := context.WithCancel(ctx)
	urls := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(runCtx, opts, slog.New(slog.NewTextHandler(logs, nil)), func(u string) { urls <- u })
	}()
	svc := &service{logs: logs}
	var stopped bool
	var runErr error
	svc.stop = func() error {
		if stopped {
			return runErr
		}
		stopped = true
		stopRun()
		select {
		case runErr = <-done:
		case <-time.After(60 * time.Second):
			runErr = errors.New("service did not shut down within 60s")
		}
		return runErr
	}
	t.Cleanup(func() { _ = svc.stop() })
	select {
	case svc.base = <-urls:
	case err := <-done:
		t.Fatalf("service exited: %v", err)
	}
	return svc
}

// apiClient makes requests and checks their answers. It sends the
// service's credentials, if set, on every request.
type apiClient struct {
	t     *testing.T
	base  string
	creds credentials
}

func (c *apiClient) send(method, path, body string, headers map[string]string) (*http.Response, []byte) {
	c.t.Helper()
	var reader io.Reader
	if body != "" {
		reader = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, c.base+path, reader)
	require.NoError(c.t, err)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.creds.set() {
		req.SetBasicAuth(c.creds.username, c.creds.password)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(c.t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(c.t, err)
	return resp, data
}

// do sends a request, requires the status, and decodes a JSON answer. A body
// is sent as application/json unless headers say otherwise.
func (c *apiClient) do(method, path, body string, headers map[string]string, status int, into any) *http.Response {
	c.t.Helper()
	resp, data := c.send(method, path, body, headers)
	require.Equal(c.t, status, resp.StatusCode, "%s %s: %s", method, path, data)
	require.Equal(c.t, "application/json", resp.Header.Get("Content-Type"))
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	require.NoError(c.t, dec.Decode(into), "%s %s: %s", method, path, data)
	return resp
}

// raw sends a request, requires the status, and returns the body.
func (c *apiClient) raw(method, path string, status int) string {
	c.t.Helper()
	resp, data := c.send(method, path, "", nil)
	require.Equal(c.t, status, resp.StatusCode, "%s %s: %s", method, path, data)
	return string(data)
}

// expectError requires a JSON error with the status, code, and a message
// containing want.
func (c *apiClient) expectError(method, path, body string, headers map[string]string, status int, code, want string) {
	c.t.Helper()
	var res struct{ Error errorBody }
	c.do(method, path, body, headers, status, &res)
	require.Equal(c.t, code, res.Error.Code, res.Error.Message)
	require.Contains(c.t, res.Error.Message, want)
}

func (c *apiClient) waitForMessage(id uuid.UUID, status string) {
	c.t.Helper()
	require.Eventually(c.t, func() bool {
		var res struct{ Message *messageJSON }
		c.do("GET", "/outbound/messages/"+id.String(), "", nil, http.StatusOK, &res)
		return res.Message.Status == status
	}, waitCeiling, 50*time.Millisecond)
}

// syncBuffer is a bytes.Buffer safe for a logger's concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestSchemaMismatchAnswers503 checks the answer to a database the operator
// has not migrated: a 503 saying what to do, logged.
func TestSchemaMismatchAnswers503(t *testing.T) {
	var logs syncBuffer
	a := newAPI(nil, slog.New(slog.NewTextHandler(&logs, nil)))
	rec := httptest.NewRecorder()
	err := fmt.Errorf(`%w: schema "cairnloop" has no outbound tables: run outbound.Migrate`, outbound.ErrSchemaMismatch)
	a.fail(rec, httptest.NewRequest("POST", "/conversations/1/outbound", nil), err)
	require.Equal(t, http.StatusServiceUnavailable, rec.Code)
	var body struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
	require.Equal(t, "schema_mismatch", body.Error.Code)
	require.Contains(t, body.Error.Message, "run outbound.Migrate")
	require.Contains(t, logs.String(), "run outbound.Migrate")
}

// promtoolCheckMetrics runs Prometheus's linter, promtool check metrics
// (from Debian's prometheus package), on an exposition, and returns what
// it reports.
func promtoolCheckMetrics(t *testing.T, exposition string) string {
	t.Helper()
	promtool, err := exec.LookPath("promtool")
	require.NoError(t, err, "promtool was not found on PATH; install it (Debian/Ubuntu: apt-get install prometheus)")
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(exposition)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "promtool check metrics: %s", out)
	return strings.TrimSpace(string(out))
}
