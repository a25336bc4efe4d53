package main

import (
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// goNames are what an HTTP client must never read in an error: Go types,
// Go field and option names, the library's package.
var goNames = regexp.MustCompile(`Go struct|\[\]int64|uuid\.UUID|TriggerOpts|BulkTriggerOpts|Params\.|TemplateID|RenderedBody|ScheduleIn\b|ConversationID|conversationIDs|MaxBatchSize|json:`)

// TestAPIErrors sends every kind of bad request and checks its answer: the
// status, the JSON error shape, a code, a message naming the JSON field or
// header, and no Go name.
func TestAPIErrors(t *testing.T) {
	svc := startService(t, &options{addr: "127.0.0.1:0"})
	c := &apiClient{t: t, base: svc.base}

	// The envelope that the idempotency cases reuse the key of.
	key := uuid.NewString()
	bulk := `{"conversation_ids": [1, 2], "template_id": "outage", "rendered_body": "Back up.", "schedule_in_seconds": 60, "actor": "agent:7"}`
	c.do("POST", "/outbound/bulk", bulk, map[string]string{"Idempotency-Key": key}, http.StatusCreated, &bulkResponse{})
	c.do("POST", "/outbound/bulk", bulk, map[string]string{"Idempotency-Key": key}, http.StatusOK, &bulkResponse{})
	withKey := map[string]string{"Idempotency-Key": key}
	json := map[string]string{"Content-Type": "application/json"}

	for _, tc := range []struct {
		name         string
		method, path string
		body         string
		headers      map[string]string
		status       int
		code, want   string
	}{
		// Routes.
		{"UnknownRoute", "GET", "/nowhere", "", nil, 404, "not_found", "no route for GET /nowhere"},
		{"UnknownAPIRoute", "GET", "/outbound/nothing/here", "", nil, 404, "not_found", "no route for GET /outbound/nothing/here"},
		{"WrongMethod", "GET", "/outbound/bulk", "", nil, 405, "method_not_allowed", "GET is not allowed on /outbound/bulk; allowed: POST"},
		{"WrongMethodOnItem", "DELETE", "/outbound/messages/" + uuid.NewString(), "", nil, 405, "method_not_allowed", "allowed: GET, HEAD"},
		{"WrongMethodOnCancel", "GET", "/conversations/1/outbound", "", nil, 405, "method_not_allowed", "allowed: POST"},

		// Bodies.
		{"BodyTooLarge", "POST", "/outbound/bulk", `{"rendered_body": "` + strings.Repeat("x", 2<<20) + `"}`, nil, 413, "request_too_large", "request body must be at most 1048576 bytes"},
		{"TextPlain", "POST", "/conversations/1/outbound", `{"template_id": "t"}`, map[string]string{"Content-Type": "text/plain"}, 415, "unsupported_media_type", `Content-Type must be application/json, got "text/plain"`},
		{"FormEncoded", "POST", "/outbound/bulk", `template_id=t`, map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 415, "unsupported_media_type", "Content-Type must be application/json"},
		{"NoContentType", "POST", "/conversations/1/outbound", `{"template_id": "t"}`, map[string]string{"Content-Type": ""}, 415, "unsupported_media_type", `got ""`},
		{"JSONWithCharset", "POST", "/conversations/1/outbound", `{}`, map[string]string{"Content-Type": "application/json; charset=utf-8"}, 400, "invalid_argument", "template_id is required"},
		{"EmptyBody", "POST", "/conversations/1/outbound", "", json, 400, "invalid_argument", "request body is empty"},
		{"NotJSON", "POST", "/conversations/1/outbound", `not json`, nil, 400, "invalid_argument", "request body is not valid JSON: invalid character 'o' in literal null"},
		{"Truncated", "POST", "/conversations/1/outbound", `{"template_id": "t"`, nil, 400, "invalid_argument", "request body is not valid JSON: it ends too soon"},
		{"NotAnObject", "POST", "/conversations/1/outbound", `[1, 2]`, nil, 400, "invalid_argument", "request body must be a JSON object, got array"},
		{"TwoObjects", "POST", "/conversations/1/outbound", `{"template_id": "t"} {}`, nil, 400, "invalid_argument", "one JSON object"},
		{"UnknownField", "POST", "/conversations/1/outbound", `{"template_id": "t", "colour": "red"}`, nil, 400, "invalid_argument", `unknown field "colour"`},
		{"IDsOfWrongType", "POST", "/outbound/bulk", `{"conversation_ids": "1,2", "template_id": "t", "rendered_body": "b"}`, nil, 400, "invalid_argument", "conversation_ids must be an array of integers, got string"},
		{"IDOfWrongType", "POST", "/outbound/bulk", `{"conversation_ids": [1, "2"], "template_id": "t", "rendered_body": "b"}`, nil, 400, "invalid_argument", "conversation_ids"},
		{"TemplateOfWrongType", "POST", "/conversations/1/outbound", `{"template_id": 7}`, nil, 400, "invalid_argument", "template_id must be a string, got number"},
		{"ScheduleOfWrongType", "POST", "/conversations/1/outbound", `{"template_id": "t", "schedule_in_seconds": "soon"}`, nil, 400, "invalid_argument", "schedule_in_seconds must be an integer, got string"},
		{"BadEnvelopeField", "POST", "/conversations/1/outbound", `{"template_id": "t", "bulk_envelope_id": "nope"}`, nil, 400, "invalid_argument", `bulk_envelope_id must be a UUID, got "nope"`},

		// Fields the library refuses, by their JSON names.
		{"NoTemplate", "POST", "/conversations/1/outbound", `{"content": "x"}`, nil, 400, "invalid_argument", "template_id is required"},
		{"LongTemplate", "POST", "/conversations/1/outbound", `{"template_id": "` + strings.Repeat("x", 300) + `"}`, nil, 400, "invalid_argument", "template_id must be at most 256 bytes"},
		{"LongActor", "POST", "/conversations/1/outbound", `{"template_id": "t", "actor": "` + strings.Repeat("x", 300) + `"}`, nil, 400, "invalid_argument", "actor must be at most 256 bytes"},
		{"LongContent", "POST", "/conversations/1/outbound", `{"template_id": "t", "content": "` + strings.Repeat("x", 200<<10) + `"}`, nil, 400, "invalid_argument", "content must be at most 131072 bytes"},
		{"NULInContent", "POST", "/conversations/1/outbound", `{"template_id": "t", "content": "a\u0000b"}`, nil, 400, "invalid_argument", "content must not contain NUL bytes"},
		{"BlankContent", "POST", "/conversations/1/outbound", `{"template_id": "t", "content": "  \n "}`, nil, 400, "invalid_argument", "content must not be only whitespace"},
		{"BlankTemplate", "POST", "/outbound/bulk", `{"conversation_ids": [1], "template_id": " ", "rendered_body": "b"}`, nil, 400, "invalid_argument", "template_id must not be only whitespace"},
		{"BlankBody", "POST", "/outbound/bulk", `{"conversation_ids": [1], "template_id": "t", "rendered_body": "\t"}`, nil, 400, "invalid_argument", "rendered_body must not be only whitespace"},
		{"NegativeSchedule", "POST", "/conversations/1/outbound", `{"template_id": "t", "schedule_in_seconds": -5}`, nil, 400, "invalid_argument", "schedule_in_seconds must not be negative, got -5"},
		{"ScheduleTwice", "POST", "/conversations/1/outbound", `{"template_id": "t", "schedule_in_seconds": 5, "scheduled_at": "2030-01-02T09:00:00Z"}`, nil, 400, "invalid_argument", "scheduled_at and schedule_in_seconds must not both be set"},
		{"BadScheduledAt", "POST", "/outbound/bulk", `{"conversation_ids": [1], "template_id": "t", "rendered_body": "b", "scheduled_at": "tomorrow"}`, nil, 400, "invalid_argument", `scheduled_at must be an RFC 3339 time such as 2027-01-02T09:00:00Z, got "tomorrow"`},
		{"PriorityOutOfRange", "POST", "/conversations/1/outbound", `{"template_id": "t", "priority": 5}`, nil, 400, "invalid_argument", "priority must be between 1 (highest) and 4, River's priorities, or 0 for the default; got 5"},
		{"BulkPriorityOutOfRange", "POST", "/outbound/bulk", `{"conversation_ids": [1], "template_id": "t", "rendered_body": "b", "priority": -1}`, nil, 400, "invalid_argument", "priority must be between 1 (highest) and 4"},
		{"NegativeMaxAttempts", "POST", "/conversations/1/outbound", `{"template_id": "t", "max_attempts": -1}`, nil, 400, "invalid_argument", "max_attempts must be between 1 and 32767, or 0 for the client's default; got -1"},
		{"HugeSchedule", "POST", "/outbound/bulk", `{"conversation_ids": [1], "template_id": "t", "rendered_body": "b", "schedule_in_seconds": 9223372036854775807}`, nil, 400, "invalid_argument", "schedule_in_seconds is out of range"},
		{"ZeroConversation", "POST", "/conversations/0/outbound", `{"template_id": "t"}`, nil, 400, "invalid_argument", "conversation id in the path must be a positive conversation id, got 0"},
		{"ConversationNotANumber", "POST", "/conversations/abc/outbound", `{"template_id": "t"}`, nil, 400, "invalid_argument", `conversation id in the path must be an integer, got "abc"`},
		{"NoBody", "POST", "/outbound/bulk", `{"conversation_ids": [1], "template_id": "t"}`, nil, 400, "invalid_argument", "rendered_body is required"},
		{"NoRecipients", "POST", "/outbound/bulk", `{"conversation_ids": [], "template_id": "t", "rendered_body": "b"}`, nil, 400, "invalid_argument", "conversation_ids must name at least one conversation"},
		{"RepeatedRecipient", "POST", "/outbound/bulk", `{"conversation_ids": [1, 1], "template_id": "t", "rendered_body": "b"}`, nil, 400, "invalid_argument", "conversation_ids must not repeat a conversation"},
		{"OverTheCap", "POST", "/outbound/bulk", `{"conversation_ids": [` + strings.TrimSuffix(strings.Repeat("9,", 30), ",") + `], "template_id": "t", "rendered_body": "b"}`, nil, 422, "batch_too_large", "conversation_ids holds 30 conversations, over the cap of 25"},
		{"BadLimit", "GET", "/outbound/messages?limit=0x", "", nil, 400, "invalid_argument", `limit must be an integer, got "0x"`},
		{"LimitOutOfRange", "GET", "/outbound/messages?limit=501", "", nil, 400, "invalid_argument", "limit must be between 1 and 500"},
		{"BadStatus", "GET", "/outbound/envelopes?status=done", "", nil, 400, "invalid_argument", "status must be"},
		{"BadCursor", "GET", "/outbound/messages?after=xyz", "", nil, 400, "invalid_argument", "after "},
		{"NegativeConversationFilter", "GET", "/outbound/messages?conversation_id=-3", "", nil, 400, "invalid_argument", "conversation_id must be"},
		{"BadEnvelopeFilter", "GET", "/outbound/messages?envelope_id=x", "", nil, 400, "invalid_argument", `envelope_id must be a UUID, got "x"`},
		{"BadPathID", "GET", "/outbound/envelopes/x", "", nil, 400, "invalid_argument", `id must be a UUID, got "x"`},
		{"UnknownEnvelope", "GET", "/outbound/envelopes/" + uuid.Nil.String(), "", nil, 404, "not_found", uuid.Nil.String()},

		// Idempotency keys.
		{"KeyNotAUUID", "POST", "/outbound/bulk", bulk, map[string]string{"Idempotency-Key": "abc"}, 400, "invalid_argument", `Idempotency-Key must be a UUID, got "abc"`},
		{"ZeroKey", "POST", "/outbound/bulk", bulk, map[string]string{"Idempotency-Key": uuid.Nil.String()}, 400, "invalid_argument", "Idempotency-Key must not be the all-zero UUID"},
		{"KeyOtherRecipients", "POST", "/outbound/bulk", strings.Replace(bulk, "[1, 2]", "[1, 3]", 1), withKey, 409, "idempotency_conflict", "different recipients"},
		{"KeyOtherTemplate", "POST", "/outbound/bulk", strings.Replace(bulk, `"outage"`, `"other"`, 1), withKey, 409, "idempotency_conflict", "different template"},
		{"KeyOtherBody", "POST", "/outbound/bulk", strings.Replace(bulk, "Back up.", "Down again.", 1), withKey, 409, "idempotency_conflict", "different body"},
		{"KeyOtherSchedule", "POST", "/outbound/bulk", strings.Replace(bulk, `"schedule_in_seconds": 60`, `"schedule_in_seconds": 61`, 1), withKey, 409, "idempotency_conflict", "different schedule"},
		{"KeyNoSchedule", "POST", "/outbound/bulk", strings.Replace(bulk, `"schedule_in_seconds": 60, `, "", 1), withKey, 409, "idempotency_conflict", "different schedule"},
		{"KeyOtherPriority", "POST", "/outbound/bulk", strings.Replace(bulk, `"actor"`, `"priority": 3, "actor"`, 1), withKey, 409, "idempotency_conflict", "different priority"},
		{"KeyOtherMaxAttempts", "POST", "/outbound/bulk", strings.Replace(bulk, `"actor"`, `"max_attempts": 3, "actor"`, 1), withKey, 409, "idempotency_conflict", "different max attempts"},
		{"KeyOtherActor", "POST", "/outbound/bulk", strings.Replace(bulk, "agent:7", "agent:8", 1), withKey, 409, "idempotency_conflict", "different actor"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.t = t
			var res struct{ Error errorBody }
			resp := c.do(tc.method, tc.path, tc.body, tc.headers, tc.status, &res)
			require.Equal(t, tc.code, res.Error.Code, res.Error.Message)
			require.Contains(t, res.Error.Message, tc.want)
			require.False(t, goNames.MatchString(res.Error.Message), "no Go name in %q", res.Error.Message)
			if tc.status == http.StatusMethodNotAllowed {
				require.NotEmpty(t, resp.Header.Get("Allow"))
				require.Contains(t, res.Error.Message, resp.Header.Get("Allow"))
			}
		})
	}
	require.NotContains(t, svc.logs.String(), "no JSON name for a library field")
}
