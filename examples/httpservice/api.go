package main

import (
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/cairnloop/outbound"
	"github.com/google/uuid"
)

// maxBodyBytes bounds a request body; a bulk of the default cap is far less.
const maxBodyBytes = 1 << 20

// api is the service's JSON API over an outbound.Client.
type api struct {
	client *outbound.Client
	logger *slog.Logger
}

func newAPI(client *outbound.Client, logger *slog.Logger) *api {
	return &api{client: client, logger: logger}
}

// register mounts the API's routes on mux.
func (a *api) register(mux *http.ServeMux, guard func(http.Handler) http.Handler) {
	for pattern, handler := range map[string]http.HandlerFunc{
		"POST /conversations/{id}/outbound":    a.trigger,
		"POST /outbound/bulk":                  a.bulkTrigger,
		"GET /outbound/envelopes":              a.listEnvelopes,
		"GET /outbound/envelopes/{id}":         a.envelope,
		"POST /outbound/envelopes/{id}/cancel": a.cancelEnvelope,
		"GET /outbound/messages":               a.listMessages,
		"GET /outbound/messages/{id}":          a.message,
		"POST /outbound/messages/{id}/cancel":  a.cancelMessage,
	} {
		mux.Handle(pattern, guard(handler))
	}
}

type triggerRequest struct {
	TemplateID string `json:"template_id"`
	Content    string `json:"content"`
	// Data is host data for the notifier, such as the recipient's address.
	Data map[string]any `json:"data"`
	delivery
	Actor string `json:"actor"`
	// BulkEnvelopeID is parsed by the handler, so that a bad one is
	// reported by its JSON name.
	BulkEnvelopeID string `json:"bulk_envelope_id"`
}

// delivery are the request fields that say when and how a message is
// delivered, shared by both trigger routes.
type delivery struct {
	ScheduleInSeconds int64 `json:"schedule_in_seconds"`
	// ScheduledAt is an RFC 3339 time, parsed by schedule so that a bad one
	// is reported by its JSON name.
	ScheduledAt string `json:"scheduled_at"`
	// Priority is River's, 1 (first) to 4; 0 keeps the library's default,
	// which puts a single trigger before bulk recipients.
	Priority    int `json:"priority"`
	MaxAttempts int `json:"max_attempts"`
}

// schedule returns the delay or the time the request asked for, refusing
// both at once.
func (d *delivery) schedule() (time.Duration, time.Time, error) {
	scheduleIn, err := seconds(d.ScheduleInSeconds)
	if err != nil {
		return 0, time.Time{}, err
	}
	if d.ScheduledAt == "" {
		return scheduleIn, time.Time{}, nil
	}
	at, err := time.Parse(time.RFC3339, d.ScheduledAt)
	if err != nil {
		return 0, time.Time{}, badRequest("scheduled_at must be an RFC 3339 time such as 2027-01-02T09:00:00Z, got %q", d.ScheduledAt)
	}
	if scheduleIn != 0 {
		return 0, time.Time{}, badRequest("scheduled_at and schedule_in_seconds must not both be set: send one")
	}
	return 0, at, nil
}

type triggerResponse struct {
	Message   *messageJSON `json:"message"`
	Duplicate bool         `json:"duplicate"`
}

// trigger answers 201 with the new message, or 200 with the live message
// that already held the dedup key.
func (a *api) trigger(w http.ResponseWriter, r *http.Request) {
	conversationID, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		a.fail(w, r, badRequest("conversation id in the path must be an integer, got %q", r.PathValue("id")))
		return
	}
	var req triggerRequest
	if err := decode(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	scheduleIn, scheduledAt, err := req.schedule()
	if err != nil {
		a.fail(w, r, err)
		return
	}
	var envelopeID uuid.UUID
	if req.BulkEnvelopeID != "" {
		if envelopeID, err = uuid.Parse(req.BulkEnvelopeID); err != nil {
			a.fail(w, r, badRequest("bulk_envelope_id must be a UUID, got %q", req.BulkEnvelopeID))
			return
		}
	}
	res, err := a.client.Trigger(r.Context(), conversationID, &outbound.TriggerOpts{
		TemplateID:     req.TemplateID,
		Content:        req.Content,
		Data:           req.Data,
		ScheduleIn:     scheduleIn,
		ScheduledAt:    scheduledAt,
		Priority:       req.Priority,
		MaxAttempts:    req.MaxAttempts,
		Actor:          req.Actor,
		BulkEnvelopeID: envelopeID,
	})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	status := http.StatusCreated
	if res.Duplicate {
		status = http.StatusOK
	}
	writeJSON(w, status, triggerResponse{Message: newMessageJSON(res.Message), Duplicate: res.Duplicate})
}

type bulkRequest struct {
	// ConversationIDs may be left out when Recipients names them all.
	ConversationIDs []int64 `json:"conversation_ids"`
	TemplateID      string  `json:"template_id"`
	RenderedBody    string  `json:"rendered_body"`
	// Data is host data every recipient shares.
	Data map[string]any `json:"data"`
	// Recipients give recipients their own body, data or time.
	Recipients []recipientRequest `json:"recipients"`
	delivery
	Actor string `json:"actor"`
}

// recipientRequest is one bulk recipient's own body, data and time.
type recipientRequest struct {
	ConversationID int64          `json:"conversation_id"`
	RenderedBody   string         `json:"rendered_body"`
	Data           map[string]any `json:"data"`
	// ScheduledAt is an RFC 3339 time.
	ScheduledAt string `json:"scheduled_at"`
}

// recipients returns the call's conversations and each recipient's own
// parts: the conversation ids are conversation_ids, or, without them, the
// recipients' in their order.
func (b *bulkRequest) recipients() ([]int64, map[int64]outbound.BulkRecipient, error) {
	if len(b.Recipients) == 0 {
		return b.ConversationIDs, nil, nil
	}
	ids := b.ConversationIDs
	own := make(map[int64]outbound.BulkRecipient, len(b.Recipients))
	for i, r := range b.Recipients {
		if _, seen := own[r.ConversationID]; seen {
			return nil, nil, badRequest("recipients names conversation %d twice", r.ConversationID)
		}
		var at time.Time
		if r.ScheduledAt != "" {
			var err error
			if at, err = time.Parse(time.RFC3339, r.ScheduledAt); err != nil {
				return nil, nil, badRequest("recipients[%d].scheduled_at must be an RFC 3339 time, got %q", i, r.ScheduledAt)
			}
		}
		own[r.ConversationID] = outbound.BulkRecipient{RenderedBody: r.RenderedBody, Data: r.Data, ScheduledAt: at}
		if len(b.ConversationIDs) == 0 {
			ids = append(ids, r.ConversationID)
		}
	}
	return ids, own, nil
}

type bulkResponse struct {
	Envelope *envelopeJSON  `json:"envelope"`
	Messages []*messageJSON `json:"messages"`
	Replayed bool           `json:"replayed"`
}

// bulkTrigger answers 201 with the envelope and its messages, or 200 when an
// Idempotency-Key replays an earlier request.
func (a *api) bulkTrigger(w http.ResponseWriter, r *http.Request) {
	var envelopeID uuid.UUID
	if key := r.Header.Get("Idempotency-Key"); key != "" {
		var err error
		if envelopeID, err = uuid.Parse(key); err != nil {
			a.fail(w, r, badRequest("Idempotency-Key must be a UUID, got %q", key))
			return
		}
		// The library reads the zero UUID as "no key": refuse it rather
		// than let two retries make two envelopes.
		if envelopeID == uuid.Nil {
			a.fail(w, r, badRequest("Idempotency-Key must not be the all-zero UUID; send a fresh UUID per request"))
			return
		}
	}
	var req bulkRequest
	if err := decode(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	scheduleIn, scheduledAt, err := req.schedule()
	if err != nil {
		a.fail(w, r, err)
		return
	}
	conversationIDs, recipients, err := req.recipients()
	if err != nil {
		a.fail(w, r, err)
		return
	}
	res, err := a.client.BulkTrigger(r.Context(), conversationIDs, &outbound.BulkTriggerOpts{
		TemplateID:   req.TemplateID,
		RenderedBody: req.RenderedBody,
		Data:         req.Data,
		Recipients:   recipients,
		ScheduleIn:   scheduleIn,
		ScheduledAt:  scheduledAt,
		Priority:     req.Priority,
		MaxAttempts:  req.MaxAttempts,
		Actor:        req.Actor,
		EnvelopeID:   envelopeID,
	})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	messages := make([]*messageJSON, len(res.Messages))
	for i, m := range res.Messages {
		messages[i] = newMessageJSON(m)
	}
	status := http.StatusCreated
	if res.Replayed {
		status = http.StatusOK
	}
	writeJSON(w, status, bulkResponse{Envelope: newEnvelopeJSON(res.Envelope), Messages: messages, Replayed: res.Replayed})
}

// listEnvelopes answers a page of envelopes, newest first, and the cursor of
// the next page (its "after"), if any.
func (a *api) listEnvelopes(w http.ResponseWriter, r *http.Request) {
	query := r.URL.Query()
	params := &outbound.ListEnvelopesParams{Status: outbound.EnvelopeStatus(query.Get("status")), Outcome: outbound.EnvelopeOutcome(query.Get("outcome"))}
	var err error
	if params.Limit, err = limitParam(query.Get("limit")); err != nil {
		a.fail(w, r, err)
		return
	}
	if after := query.Get("after"); after != "" {
		params.After = &outbound.EnvelopeListCursor{}
		if err := params.After.UnmarshalText([]byte(after)); err != nil {
			a.fail(w, r, err)
			return
		}
	}
	page, err := a.client.ListEnvelopes(r.Context(), params)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]*envelopeJSON, len(page.Envelopes))
	for i, e := range page.Envelopes {
		out[i] = newEnvelopeJSON(e)
	}
	writeJSON(w, http.StatusOK, map[string]any{"envelopes": out, "next_cursor": page.NextCursor})
}

// listMessages answers a page of messages, newest first, filtered by
// conversation_id, envelope_id and status, and the cursor of the next page
// (its "after"), if any.
func (a *api) listMessages(w http.ResponseWriter, r *http.Request) {
	query := r.URL.Query()
	params := &outbound.ListMessagesParams{Status: outbound.MessageStatus(query.Get("status"))}
	var err error
	if params.Limit, err = limitParam(query.Get("limit")); err != nil {
		a.fail(w, r, err)
		return
	}
	if id := query.Get("conversation_id"); id != "" {
		if params.ConversationID, err = strconv.ParseInt(id, 10, 64); err != nil {
			a.fail(w, r, badRequest("conversation_id must be an integer, got %q", id))
			return
		}
	}
	if id := query.Get("envelope_id"); id != "" {
		if params.BulkEnvelopeID, err = uuid.Parse(id); err != nil {
			a.fail(w, r, badRequest("envelope_id must be a UUID, got %q", id))
			return
		}
	}
	if after := query.Get("after"); after != "" {
		params.After = &outbound.MessageListCursor{}
		if err := params.After.UnmarshalText([]byte(after)); err != nil {
			a.fail(w, r, err)
			return
		}
	}
	page, err := a.client.ListMessages(r.Context(), params)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]*messageJSON, len(page.Messages))
	for i, m := range page.Messages {
		out[i] = newMessageJSON(m)
	}
	writeJSON(w, http.StatusOK, map[string]any{"messages": out, "next_cursor": page.NextCursor})
}

// limitParam parses a list's limit; empty means the library's default.
func limitParam(limit string) (int, error) {
	if limit == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(limit)
	if err != nil {
		return 0, badRequest("limit must be an integer, got %q", limit)
	}
	return n, nil
}

type envelopeResponse struct {
	Envelope *envelopeJSON `json:"envelope"`
	Progress *progressJSON `json:"progress"`
	// Cancelled is set by the cancel route: how many messages it cancelled.
	Cancelled *int `json:"cancelled,omitempty"`
}

func (a *api) envelope(w http.ResponseWriter, r *http.Request) {
	id, ok := a.pathUUID(w, r)
	if !ok {
		return
	}
	a.writeEnvelope(w, r, id, nil)
}

func (a *api) cancelEnvelope(w http.ResponseWriter, r *http.Request) {
	id, ok := a.pathUUID(w, r)
	if !ok {
		return
	}
	n, err := a.client.CancelEnvelope(r.Context(), id, &outbound.CancelOpts{Actor: actor(r)})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.writeEnvelope(w, r, id, &n)
}

func (a *api) writeEnvelope(w http.ResponseWriter, r *http.Request, id uuid.UUID, cancelled *int) {
	env, err := a.client.Envelope(r.Context(), id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	progress, err := a.client.EnvelopeProgress(r.Context(), id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, envelopeResponse{Envelope: newEnvelopeJSON(env), Progress: newProgressJSON(progress), Cancelled: cancelled})
}

func (a *api) message(w http.ResponseWriter, r *http.Request) {
	id, ok := a.pathUUID(w, r)
	if !ok {
		return
	}
	msg, err := a.client.Message(r.Context(), id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"message": newMessageJSON(msg)})
}

func (a *api) cancelMessage(w http.ResponseWriter, r *http.Request) {
	id, ok := a.pathUUID(w, r)
	if !ok {
		return
	}
	if err := a.client.CancelMessage(r.Context(), id, &outbound.CancelOpts{Actor: actor(r)}); err != nil {
		a.fail(w, r, err)
		return
	}
	a.message(w, r)
}

func (a *api) pathUUID(w http.ResponseWriter, r *http.Request) (uuid.UUID, bool) {
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		a.fail(w, r, badRequest("id must be a UUID, got %q", r.PathValue("id")))
		return uuid.Nil, false
	}
	return id, true
}

// seconds converts schedule_in_seconds, refusing values a time.Duration
// cannot hold rather than letting them wrap around.
func seconds(n int64) (time.Duration, error) {
	if n < 0 {
		return 0, badRequest("schedule_in_seconds must not be negative, got %d", n)
	}
	if n > math.MaxInt64/int64(time.Second) {
		return 0, badRequest("schedule_in_seconds is out of range, got %d", n)
	}
	return time.Duration(n) * time.Second, nil
}

// messageJSON is a message as the API shows it.
type messageJSON struct {
	ID             uuid.UUID `json:"id"`
	ConversationID int64     `json:"conversation_id"`
	Role           string    `json:"role"`
	TemplateID     string    `json:"template_id"`
	// Content is empty in lists, which read no bodies; ContentBytes is its
	// length.
	Content      string `json:"content"`
	ContentBytes int    `json:"content_bytes"`
	// Rendered is false for a template reference: the notifier renders by
	// template_id.
	Rendered       bool           `json:"rendered"`
	Data           map[string]any `json:"data,omitempty"`
	Status         string         `json:"status"`
	BulkEnvelopeID *uuid.UUID     `json:"bulk_envelope_id"`
	Metadata       map[string]any `json:"metadata"`
	JobID          int64          `json:"job_id"`
	ScheduledAt    time.Time      `json:"scheduled_at"`
	Attempts       int            `json:"attempts"`
	LastError      string         `json:"last_error,omitempty"`
	SentAt         *time.Time     `json:"sent_at"`
	// RateLimitedUntil is set while the message waits for its rate limit.
	RateLimitedUntil *time.Time `json:"rate_limited_until,omitempty"`
	CancelledBy      string     `json:"cancelled_by,omitempty"`
	CancelledAt      *time.Time `json:"cancelled_at,omitempty"`
	CreatedAt        time.Time  `json:"created_at"`
	UpdatedAt        time.Time  `json:"updated_at"`
}

func newMessageJSON(m *outbound.Message) *messageJSON {
	out := &messageJSON{
		ID: m.ID, ConversationID: m.ConversationID, Role: m.Role, TemplateID: m.TemplateID,
		Content: m.Content, ContentBytes: m.ContentBytes, Rendered: m.Rendered, Data: m.Data,
		Status: string(m.Status), Metadata: m.Metadata, JobID: m.JobID,
		ScheduledAt: m.ScheduledAt, Attempts: m.Attempts, LastError: m.LastError,
		CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt,
	}
	if m.BulkEnvelopeID != uuid.Nil {
		out.BulkEnvelopeID = &m.BulkEnvelopeID
	}
	if !m.SentAt.IsZero() {
		out.SentAt = &m.SentAt
	}
	if !m.RateLimitedUntil.IsZero() {
		out.RateLimitedUntil = &m.RateLimitedUntil
	}
	if !m.CancelledAt.IsZero() {
		out.CancelledBy, out.CancelledAt = m.CancelledBy, &m.CancelledAt
	}
	return out
}

// envelopeJSON is an envelope as the API shows it.
type envelopeJSON struct {
	ID                       uuid.UUID      `json:"id"`
	TemplateID               string         `json:"template_id"`
	RenderedBody             string         `json:"rendered_body"`
	Data                     map[string]any `json:"data,omitempty"`
	RecipientConversationIDs []int64        `json:"recipient_conversation_ids"`
	Count                    int            `json:"count"`
	EffectiveCap             int            `json:"effective_cap"`
	RequestedBy              string         `json:"requested_by"`
	RequestedAt              time.Time      `json:"requested_at"`
	Status                   string         `json:"status"`
	Outcome                  string         `json:"outcome"`
	RefusedReason            string         `json:"refused_reason,omitempty"`
	CancelledBy              string         `json:"cancelled_by,omitempty"`
	CancelledAt              *time.Time     `json:"cancelled_at,omitempty"`
	CreatedAt                time.Time      `json:"created_at"`
	UpdatedAt                time.Time      `json:"updated_at"`
}

func newEnvelopeJSON(e *outbound.Envelope) *envelopeJSON {
	out := &envelopeJSON{
		ID: e.ID, TemplateID: e.TemplateID, RenderedBody: e.RenderedBody, Data: e.Data,
		RecipientConversationIDs: e.RecipientConversationIDs, Count: e.Count, EffectiveCap: e.EffectiveCap,
		RequestedBy: e.RequestedBy, RequestedAt: e.RequestedAt, Status: string(e.Status), Outcome: string(e.Outcome),
		RefusedReason: e.RefusedReason, CreatedAt: e.CreatedAt, UpdatedAt: e.UpdatedAt,
	}
	if !e.CancelledAt.IsZero() {
		out.CancelledBy, out.CancelledAt = e.CancelledBy, &e.CancelledAt
	}
	return out
}

type progressJSON struct {
	Pending     int `json:"pending"`
	Delivering  int `json:"delivering"`
	Sent        int `json:"sent"`
	Failed      int `json:"failed"`
	Unconfirmed int `json:"unconfirmed"`
	Discarded   int `json:"discarded"`
	Cancelled   int `json:"cancelled"`
	Total       int `json:"total"`
}

func newProgressJSON(p *outbound.Progress) *progressJSON {
	return &progressJSON{Pending: p.Pending, Delivering: p.Delivering, Sent: p.Sent, Failed: p.Failed,
		Unconfirmed: p.Unconfirmed, Discarded: p.Discarded, Cancelled: p.Cancelled, Total: p.Total()}
}
