package outboundui

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/cairnloop/outbound"
	"github.com/google/uuid"
)

const (
	// envelopesPerPage is the envelopes page's length: each row costs a
	// progress query, so it is kept shorter than a list of messages.
	envelopesPerPage = 25
	// messagesPerPage is the length of a page of messages.
	messagesPerPage = 50
	// maxFormBytes bounds a cancel form, which holds one checkbox.
	maxFormBytes = 4 << 10
	// bodyPreviewBytes is the most of a body a page shows: a body may be
	// MaxContentBytes long, and a page reads only what it shows.
	bodyPreviewBytes = 64 << 10
)

// messageStatuses and envelopeStatuses are the filters' choices, in the
// order a message or an envelope goes through them.
var (
	messageStatuses = []outbound.MessageStatus{
		outbound.MessageStatusPending, outbound.MessageStatusDelivering, outbound.MessageStatusSent,
		outbound.MessageStatusFailed, outbound.MessageStatusUnconfirmed, outbound.MessageStatusDiscarded,
		outbound.MessageStatusCancelled,
	}
	envelopeOutcomes = []outbound.EnvelopeOutcome{
		outbound.EnvelopeOutcomeInProgress, outbound.EnvelopeOutcomeCompleted, outbound.EnvelopeOutcomeCompletedWithFailures,
		outbound.EnvelopeOutcomePartlyCancelled, outbound.EnvelopeOutcomeCancelled, outbound.EnvelopeOutcomeRefused,
	}
)

// statusOption is one choice of a status filter.
type statusOption struct {
	Value    string
	Selected bool
}

// statusOptions are a status filter's choices, current selected.
func statusOptions[S ~string](statuses []S, current S) []statusOption {
	options := make([]statusOption, len(statuses))
	for i, s := range statuses {
		options[i] = statusOption{Value: string(s), Selected: s == current}
	}
	return options
}

// envelopeRow is one envelope in the envelopes page's table.
type envelopeRow struct {
	Envelope *outbound.Envelope
	Href     string
	// Bar is nil for a refused envelope, which has no messages.
	Bar *bar
}

type envelopesData struct {
	Rows []envelopeRow
	// Action is where the filter form goes.
	Action string
	// Outcome is the outcome filter, empty for all.
	Outcome  string
	Filter   []statusOption
	NextHref string
	// FirstHref is set on a page after the first.
	FirstHref string
}

// envelopesPage lists envelopes, newest first, each with its progress.
func (h *handler) envelopesPage(w http.ResponseWriter, r *http.Request) error {
	query := r.URL.Query()
	params := &outbound.ListEnvelopesParams{Outcome: outbound.EnvelopeOutcome(query.Get("outcome")), Limit: envelopesPerPage}
	if after := query.Get("after"); after != "" {
		params.After = &outbound.EnvelopeListCursor{}
		if err := params.After.UnmarshalText([]byte(after)); err != nil {
			return err
		}
	}
	page, err := h.client.ListEnvelopes(r.Context(), params)
	if err != nil {
		return err
	}
	data := &envelopesData{Outcome: string(params.Outcome), Filter: statusOptions(envelopeOutcomes, params.Outcome), Action: h.links.envelopes(nil)}
	for _, env := range page.Envelopes {
		row := envelopeRow{Envelope: env, Href: h.links.envelope(env.ID, nil)}
		if env.Status != outbound.EnvelopeStatusRefusedCapExceeded {
			progress, err := h.client.EnvelopeProgress(r.Context(), env.ID)
			if err != nil {
				return err
			}
			row.Bar = newBar(progress)
		}
		data.Rows = append(data.Rows, row)
	}
	if page.NextCursor != nil {
		data.NextHref = h.links.envelopes(url.Values{"outcome": {data.Outcome}, "after": {cursorText(page.NextCursor)}})
	}
	if params.After != nil {
		data.FirstHref = h.links.envelopes(url.Values{"outcome": {data.Outcome}})
	}
	h.render(w, r, "envelopes", "Envelopes", "envelopes", data)
	return nil
}

type envelopeData struct {
	Envelope *outbound.Envelope
	// ETA is how long its messages held by rate limits take at their keys'
	// rates; its Waiting is zero when none is.
	ETA        outbound.EnvelopeETA
	Bar        *bar
	Messages   *messageTable
	CancelHref string
	// Cancellable is how many messages the cancel button would cancel; the
	// button is shown only when it is more than zero.
	Cancellable int
	Flash       string
}

// envelopePage shows one envelope, its progress, and a page of its
// recipients' messages.
func (h *handler) envelopePage(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	env, err := h.client.EnvelopePreview(r.Context(), id, bodyPreviewBytes)
	if err != nil {
		return err
	}
	progress, err := h.client.EnvelopeProgress(r.Context(), id)
	if err != nil {
		return err
	}
	table, err := h.messageTable(r, &outbound.ListMessagesParams{BulkEnvelopeID: id}, func(q url.Values) string {
		return h.links.envelope(id, q)
	})
	if err != nil {
		return err
	}
	eta, err := h.client.EnvelopeETA(r.Context(), id)
	if err != nil {
		return err
	}
	data := &envelopeData{Envelope: env, Bar: newBar(progress), Messages: table, CancelHref: h.links.cancelEnvelope(id), ETA: eta}
	if env.Status == outbound.EnvelopeStatusSubmitted {
		data.Cancellable = cancellable(progress)
	}
	if n, err := strconv.Atoi(r.URL.Query().Get("cancelled")); err == nil {
		data.Flash = fmt.Sprintf("Cancelled %d %s.", n, plural(n, "message", "messages"))
	}
	h.render(w, r, "envelope", "Envelope "+env.ID.String(), "envelopes", data)
	return nil
}

// cancelEnvelope cancels an envelope's undelivered messages, then sends the
// browser back to the envelope (POST, redirect, GET), saying how many.
func (h *handler) cancelEnvelope(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	if err := confirmed(w, r); err != nil {
		return err
	}
	n, err := h.client.CancelEnvelope(r.Context(), id, h.cancelOpts(r))
	if err != nil {
		return err
	}
	http.Redirect(w, r, h.links.envelope(id, url.Values{"cancelled": {strconv.Itoa(n)}}), http.StatusSeeOther)
	return nil
}

// messageTable is a page of messages, with its filter and page links.
type messageTable struct {
	Messages []messageRow
	Status   string
	Filter   []statusOption
	NextHref string
	// FirstHref is set on a page after the first.
	FirstHref string
	// Action is where the filter form goes.
	Action string
	// ByConversation shows the conversation filter, holding Conversation.
	ByConversation bool
	Conversation   string
}

type messageRow struct {
	Message *outbound.Message
	Href    string
}

// messageTable reads a page of messages matching params and the request's
// status and after; link builds the page's own URL with a query.
func (h *handler) messageTable(r *http.Request, params *outbound.ListMessagesParams, link func(url.Values) string) (*messageTable, error) {
	query := r.URL.Query()
	params.Status = outbound.MessageStatus(query.Get("status"))
	params.Limit = messagesPerPage
	if after := query.Get("after"); after != "" {
		params.After = &outbound.MessageListCursor{}
		if err := params.After.UnmarshalText([]byte(after)); err != nil {
			return nil, err
		}
	}
	page, err := h.client.ListMessages(r.Context(), params)
	if err != nil {
		return nil, err
	}
	t := &messageTable{Status: string(params.Status), Filter: statusOptions(messageStatuses, params.Status), Action: link(nil)}
	for _, m := range page.Messages {
		t.Messages = append(t.Messages, messageRow{Message: m, Href: h.links.message(m.ID, nil)})
	}
	// The page's own filters, which its page links keep.
	keep := url.Values{"status": {t.Status}}
	if params.ConversationID != 0 {
		keep.Set("conversation_id", strconv.FormatInt(params.ConversationID, 10))
	}
	if page.NextCursor != nil {
		next := url.Values{"after": {cursorText(page.NextCursor)}}
		for k, v := range keep {
			next[k] = v
		}
		t.NextHref = link(next)
	}
	if params.After != nil {
		t.FirstHref = link(keep)
	}
	return t, nil
}

type messagesData struct {
	Table *messageTable
}

// messagesPage lists messages, one-to-one and bulk alike, newest first,
// filtered by conversation and status.
func (h *handler) messagesPage(w http.ResponseWriter, r *http.Request) error {
	params := &outbound.ListMessagesParams{}
	conversation := r.URL.Query().Get("conversation_id")
	if conversation != "" {
		id, err := strconv.ParseInt(conversation, 10, 64)
		if err != nil {
			return badRequest(fmt.Sprintf("The conversation must be a whole number, got %q.", conversation))
		}
		params.ConversationID = id
	}
	table, err := h.messageTable(r, params, h.links.messages)
	if err != nil {
		return err
	}
	table.ByConversation, table.Conversation = true, conversation
	h.render(w, r, "messages", "Messages", "messages", &messagesData{Table: table})
	return nil
}

type messageData struct {
	Message *outbound.Message
	// Data is the message's host data as indented JSON, empty for none.
	Data         string
	EnvelopeHref string
	JobHref      string
	CancelHref   string
	Cancellable  bool
	Flash        string
}

// messagePage shows one message.
func (h *handler) messagePage(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	msg, err := h.client.MessagePreview(r.Context(), id, bodyPreviewBytes)
	if err != nil {
		return err
	}
	data := &messageData{
		Message:     msg,
		Data:        indentedJSON(msg.Data),
		JobHref:     h.links.riverJob(msg.JobID),
		CancelHref:  h.links.cancelMessage(id),
		Cancellable: msg.Status == outbound.MessageStatusPending || msg.Status == outbound.MessageStatusFailed,
	}
	if msg.BulkEnvelopeID != uuid.Nil {
		data.EnvelopeHref = h.links.envelope(msg.BulkEnvelopeID, nil)
	}
	if r.URL.Query().Get("cancelled") == "1" {
		data.Flash = "Cancelled the message."
	}
	h.render(w, r, "message", "Message "+msg.ID.String(), "messages", data)
	return nil
}

// cancelMessage cancels one undelivered message, then sends the browser back
// to it.
func (h *handler) cancelMessage(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	if err := confirmed(w, r); err != nil {
		return err
	}
	if err := h.client.CancelMessage(r.Context(), id, h.cancelOpts(r)); err != nil {
		return err
	}
	http.Redirect(w, r, h.links.message(id, url.Values{"cancelled": {"1"}}), http.StatusSeeOther)
	return nil
}

// indentedJSON is data as indented JSON, keys sorted, or "" for none.
func indentedJSON(data map[string]any) string {
	if data == nil {
		return ""
	}
	if depthOf(data) > outbound.MaxDataDepth {
		// Data stored before the library bounded its depth: indenting it
		// would grow as its depth squared.
		text, err := json.Marshal(data)
		if err != nil {
			return fmt.Sprint(data)
		}
		return string(text)
	}
	text, err := json.MarshalIndent(data, "", "  ")
	if err != nil {
		// It was decoded from JSON: it encodes.
		return fmt.Sprint(data)
	}
	return string(text)
}

// depthOf is how deeply a decoded JSON value nests objects and arrays.
func depthOf(v any) int {
	deepest := 0
	switch v := v.(type) {
	case map[string]any:
		for _, e := range v {
			deepest = max(deepest, depthOf(e))
		}
	case []any:
		for _, e := range v {
			deepest = max(deepest, depthOf(e))
		}
	default:
		return 0
	}
	return deepest + 1
}

// cancelOpts are the options of a cancel the request makes: its actor, as
// HandlerOpts.Actor names it.
func (h *handler) cancelOpts(r *http.Request) *outbound.CancelOpts {
	if h.actor == nil {
		return nil
	}
	return &outbound.CancelOpts{Actor: h.actor(r)}
}

// pathID is the {id} of a message or envelope route.
func pathID(r *http.Request) (uuid.UUID, error) {
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		return uuid.Nil, badRequest(fmt.Sprintf("%q is not a message or envelope id.", r.PathValue("id")))
	}
	return id, nil
}

// confirmed requires a cancel form's ticked confirmation box. Browsers will
// not submit the form without it; this holds any other client to it too.
func confirmed(w http.ResponseWriter, r *http.Request) error {
	return confirmedAs(w, r, "Tick the box to confirm the cancel.")
}

// confirmedAs requires a form's ticked confirmation box, refusing with
// unticked when it is missing.
func confirmedAs(w http.ResponseWriter, r *http.Request, unticked string) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return badRequest("The form could not be read.")
	}
	if r.PostForm.Get("confirm") != "yes" {
		return badRequest(unticked)
	}
	return nil
}

// cursorText is a list cursor as a page link carries it.
func cursorText(c interface{ MarshalText() ([]byte, error) }) string {
	text, _ := c.MarshalText() // a cursor always marshals
	return string(text)
}
