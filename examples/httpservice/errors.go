package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"regexp"
	"strings"

	"github.com/cairnloop/outbound"
	"github.com/google/uuid"
)

// apiError is an error of the HTTP layer itself, with its status and code;
// its message is written for an HTTP client. Every error the API answers,
// this or the library's, has one JSON shape:
//
//	{"error": {"code": "invalid_argument", "message": "template_id is required"}}
//
// Messages name the request's JSON fields, headers and path parameters,
// never a Go type or a Go field.
type apiError struct {
	status int
	code   string
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &apiError{http.StatusBadRequest, "invalid_argument", fmt.Sprintf(format, args...)}
}

// jsonFields names, by its JSON field or parameter, each library field that a
// request carries. A library field that is not here is a bug of this
// service's, logged and answered without the Go name.
var jsonFields = map[string]string{
	"conversationID":                    "conversation id in the path",
	"conversationIDs":                   "conversation_ids",
	"TriggerOpts.TemplateID":            "template_id",
	"TriggerOpts.Content":               "content",
	"TriggerOpts.Actor":                 "actor",
	"TriggerOpts.ScheduleIn":            "schedule_in_seconds",
	"TriggerOpts.ScheduledAt":           "scheduled_at",
	"TriggerOpts.Priority":              "priority",
	"TriggerOpts.MaxAttempts":           "max_attempts",
	"BulkTriggerOpts.TemplateID":        "template_id",
	"BulkTriggerOpts.RenderedBody":      "rendered_body",
	"BulkTriggerOpts.Actor":             "actor",
	"BulkTriggerOpts.ScheduleIn":        "schedule_in_seconds",
	"BulkTriggerOpts.ScheduledAt":       "scheduled_at",
	"BulkTriggerOpts.Priority":          "priority",
	"BulkTriggerOpts.MaxAttempts":       "max_attempts",
	"BulkTriggerOpts.Data":              "data",
	"BulkTriggerOpts.Recipients":        "recipients",
	"TriggerOpts.Data":                  "data",
	"ListEnvelopesParams.Limit":         "limit",
	"ListEnvelopesParams.Status":        "status",
	"ListEnvelopesParams.Outcome":       "outcome",
	"ListMessagesParams.Limit":          "limit",
	"ListMessagesParams.Status":         "status",
	"ListMessagesParams.ConversationID": "conversation_id",
	"envelope list cursor":              "after",
	"message list cursor":               "after",
}

// recipientField matches a library field of one bulk recipient, and
// recipientFields name its JSON fields.
var (
	recipientField  = regexp.MustCompile(`^BulkTriggerOpts\.Recipients\[(\d+)\]\.(\w+)$`)
	recipientFields = map[string]string{"RenderedBody": "rendered_body", "Data": "data", "ScheduledAt": "scheduled_at"}
)

// requireJSON refuses a request body that is not declared as JSON.
func requireJSON(r *http.Request) error {
	contentType := r.Header.Get("Content-Type")
	mediaType, _, err := mime.ParseMediaType(contentType)
	if err != nil || mediaType != "application/json" {
		return &apiError{http.StatusUnsupportedMediaType, "unsupported_media_type",
			fmt.Sprintf("Content-Type must be application/json, got %q", contentType)}
	}
	return nil
}

// decode reads a JSON body strictly: declared as JSON, at most maxBodyBytes,
// one object, known fields only.
func decode(w http.ResponseWriter, r *http.Request, into any) error {
	if err := requireJSON(r); err != nil {
		return err
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(into); err != nil {
		return decodeError(err)
	}
	if dec.More() {
		return badRequest("request body must hold one JSON object, not more")
	}
	return nil
}

// decodeError says what was wrong with a body that did not decode, by its
// JSON field.
func decodeError(err error) error {
	var (
		tooLarge  *http.MaxBytesError
		syntax    *json.SyntaxError
		wrongType *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &tooLarge):
		return &apiError{http.StatusRequestEntityTooLarge, "request_too_large",
			fmt.Sprintf("request body must be at most %d bytes", tooLarge.Limit)}
	case errors.Is(err, io.EOF):
		return badRequest("request body is empty; send a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("request body is not valid JSON: it ends too soon")
	case errors.As(err, &syntax):
		return badRequest("request body is not valid JSON: %s (at byte %d)", syntax.Error(), syntax.Offset)
	case errors.As(err, &wrongType) && wrongType.Field == "":
		return badRequest("request body must be a JSON object, got %s", wrongType.Value)
	case errors.As(err, &wrongType):
		return badRequest("%s must be %s, got %s", wrongType.Field, jsonKind(wrongType.Type.String()), wrongType.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// encoding/json has no type for this one; its text is stable.
		return badRequest("request body has an unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return badRequest("request body is not valid JSON")
}

// jsonKind says in JSON's terms what a request field's Go type takes.
func jsonKind(goType string) string {
	switch goType {
	case "string":
		return "a string"
	case "int64":
		return "an integer"
	case "[]int64":
		return "an array of integers"
	}
	return "another JSON type"
}

type errorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// EnvelopeID, Count and Cap are set for batch_too_large.
	EnvelopeID *uuid.UUID `json:"envelope_id,omitempty"`
	Count      int        `json:"count,omitempty"`
	Cap        int        `json:"cap,omitempty"`
}

// fail maps an error to a status code and a JSON error body. Errors the
// caller can act on carry their message; anything else is logged and
// answered with a generic 500.
func (a *api) fail(w http.ResponseWriter, r *http.Request, err error) {
	var (
		httpErr  *apiError
		argErr   *outbound.InvalidArgumentError
		tooLarge *outbound.BatchTooLargeError
		status   int
		body     = errorBody{Message: err.Error()}
	)
	switch {
	case errors.As(err, &httpErr):
		status, body.Code = httpErr.status, httpErr.code
	case errors.As(err, &argErr):
		status, body.Code = http.StatusBadRequest, "invalid_argument"
		field, ok := jsonFields[argErr.Field]
		if m := recipientField.FindStringSubmatch(argErr.Field); m != nil {
			// BulkTriggerOpts.Recipients[42].RenderedBody
			field, ok = fmt.Sprintf("recipients (conversation_id %s) %s", m[1], recipientFields[m[2]]), recipientFields[m[2]] != ""
		}
		if !ok {
			a.logger.ErrorContext(r.Context(), "no JSON name for a library field", slog.String("field", argErr.Field))
			field = "a request field"
		}
		body.Message = field + " " + argErr.Reason
	case errors.As(err, &tooLarge):
		status, body.Code = http.StatusUnprocessableEntity, "batch_too_large"
		body.Count, body.Cap = tooLarge.Count, tooLarge.Cap
		body.Message = fmt.Sprintf("conversation_ids holds %d conversations, over the cap of %d; split the bulk", tooLarge.Count, tooLarge.Cap)
		if tooLarge.EnvelopeID != uuid.Nil {
			body.EnvelopeID = &tooLarge.EnvelopeID
		}
	case errors.Is(err, outbound.ErrNotFound):
		status, body.Code = http.StatusNotFound, "not_found"
	case errors.Is(err, outbound.ErrIdempotencyConflict):
		status, body.Code = http.StatusConflict, "idempotency_conflict"
	case errors.Is(err, outbound.ErrNotCancellable):
		status, body.Code = http.StatusConflict, "not_cancellable"
	case errors.Is(err, outbound.ErrSchemaMismatch):
		// The operator's to fix (run Migrate, or upgrade); the message says
		// which and names no customer data.
		a.logger.ErrorContext(r.Context(), "request failed", slog.String("error", err.Error()))
		status, body.Code = http.StatusServiceUnavailable, "schema_mismatch"
	default:
		a.logger.ErrorContext(r.Context(), "request failed",
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.String("error", err.Error()))
		status, body = http.StatusInternalServerError, errorBody{Code: "internal", Message: "internal error"}
	}
	writeJSON(w, status, map[string]any{"error": body})
}

// jsonRoutes answers, in the API's JSON shape, the requests mux has no route
// for: 405 with Allow when the path has routes for other methods, else 404.
func (a *api) jsonRoutes(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handler, pattern := mux.Handler(r)
		if pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		// Ask the mux what it would answer, keeping only status and Allow.
		probe := &headerRecorder{header: http.Header{}}
		handler.ServeHTTP(probe, r)
		if probe.status == http.StatusMethodNotAllowed {
			allow := probe.header.Get("Allow")
			w.Header().Set("Allow", allow)
			a.fail(w, r, &apiError{http.StatusMethodNotAllowed, "method_not_allowed",
				fmt.Sprintf("%s is not allowed on %s; allowed: %s", r.Method, r.URL.Path, allow)})
			return
		}
		a.fail(w, r, &apiError{http.StatusNotFound, "not_found", fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path)})
	})
}

// headerRecorder keeps the status and headers a handler writes and drops its
// body.
type headerRecorder struct {
	header http.Header
	status int
}

func (r *headerRecorder) Header() http.Header         { return r.header }
func (r *headerRecorder) Write(p []byte) (int, error) { return len(p), nil }
func (r *headerRecorder) WriteHeader(status int)      { r.status = status }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
