// Package outboundtest helps a service that embeds outbound test its own code
// against a real database, as River's rivertest does for jobs:
// RequireTriggered, RequireNotTriggered and RequireManyTriggered assert which
// messages the code under test triggered, on the pool or inside a
// transaction, and Worker runs a message's delivery inline, with a Notifier
// of the test's choosing and no River client started.
//
// A failed assertion says what was expected and what was found:
//
//	outbound assertion failure:
//	expected one message for conversation 42, template "recovery", any envelope; found none
//	messages of conversation 42: [template "welcome", no envelope, pending]
package outboundtest

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairnloop/outbound"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Expected describes the message an assertion looks for.
//
// ConversationID, TemplateID and BulkEnvelopeID select messages; a zero value
// selects any. Status, Content, Data and ScheduledAt are further properties: when
// set, RequireTriggered and RequireManyTriggered check that the selected
// message has them, and RequireNotTriggered only fails for a message that has
// them all.
type Expected struct {
	// ConversationID selects the conversation's messages; 0 selects any.
	ConversationID int64
	// TemplateID selects the template's messages; "" selects any.
	TemplateID string
	// BulkEnvelopeID selects the messages with this envelope id; uuid.Nil
	// selects any, with or without one.
	BulkEnvelopeID uuid.UUID

	// Status, when set, is the status the message must have.
	Status outbound.MessageStatus
	// Content, when set, is the body the message must have: a bulk
	// recipient's own, when it was given one.
	Content string
	// Data, when set, are keys the message's host data must hold, with these
	// values compared as JSON (so 7 and 7.0 are equal); other keys may be
	// there too.
	Data map[string]any
	// ScheduledAt, when set, is when the message must be scheduled for,
	// within a second either way: a ScheduleIn is added to the database's
	// clock, which a test can only approach.
	ScheduledAt time.Time
}

// RequireTriggered asserts that the client's tables hold exactly one message
// selected by expected, with expected's properties, and returns it. It fails
// the test (FailNow) otherwise, saying what it expected and what it found.
func RequireTriggered(ctx context.Context, tb testing.TB, client *outbound.Client, expected Expected) *outbound.Message {
	tb.Helper()
	return requireTriggered(ctx, tb, client, nil, expected)
}

// RequireTriggeredTx is RequireTriggered inside tx: it sees the messages tx
// has triggered and not yet committed.
func RequireTriggeredTx(ctx context.Context, tb testing.TB, client *outbound.Client, tx pgx.Tx, expected Expected) *outbound.Message {
	tb.Helper()
	return requireTriggered(ctx, tb, client, tx, expected)
}

func requireTriggered(ctx context.Context, tb testing.TB, client *outbound.Client, tx pgx.Tx, expected Expected) *outbound.Message {
	tb.Helper()
	found, err := selectMessages(ctx, client, tx, expected.ConversationID, expected.BulkEnvelopeID, func(m *outbound.Message) bool {
		return expected.TemplateID == "" || m.TemplateID == expected.TemplateID
	})
	if err != nil {
		failuref(tb, "internal failure: %s", err)
		return nil
	}
	switch len(found) {
	case 0:
		msg := fmt.Sprintf("expected one message for %s; found none", expected.selector())
		if expected.ConversationID != 0 {
			if others, err := selectMessages(ctx, client, tx, expected.ConversationID, uuid.Nil, nil); err == nil {
				msg += fmt.Sprintf("\n    messages of conversation %d: %s", expected.ConversationID, describeAll(others))
			}
		}
		failuref(tb, "%s", msg)
		return nil
	case 1:
	default:
		failuref(tb, "expected one message for %s; found %d: %s\n    (select one with BulkEnvelopeID, or use RequireManyTriggered)",
			expected.selector(), len(found), describeAll(found))
		return nil
	}
	if mismatches := expected.mismatches(found[0]); len(mismatches) > 0 {
		failuref(tb, "message %s for %s: %s", found[0].ID, expected.selector(), strings.Join(mismatches, "; "))
		return nil
	}
	return found[0]
}

// RequireNotTriggered asserts that the client's tables hold no message
// selected by expected that has all of expected's properties. It fails the
// test (FailNow) otherwise, listing the messages it found.
func RequireNotTriggered(ctx context.Context, tb testing.TB, client *outbound.Client, expected Expected) {
	tb.Helper()
	requireNotTriggered(ctx, tb, client, nil, expected)
}

// RequireNotTriggeredTx is RequireNotTriggered inside tx: it sees the messages
// tx has triggered and not yet committed.
func RequireNotTriggeredTx(ctx context.Context, tb testing.TB, client *outbound.Client, tx pgx.Tx, expected Expected) {
	tb.Helper()
	requireNotTriggered(ctx, tb, client, tx, expected)
}

func requireNotTriggered(ctx context.Context, tb testing.TB, client *outbound.Client, tx pgx.Tx, expected Expected) {
	tb.Helper()
	found, err := selectMessages(ctx, client, tx, expected.ConversationID, expected.BulkEnvelopeID, func(m *outbound.Message) bool {
		return (expected.TemplateID == "" || m.TemplateID == expected.TemplateID) && len(expected.mismatches(m)) == 0
	})
	if err != nil {
		failuref(tb, "internal failure: %s", err)
		return
	}
	if len(found) > 0 {
		failuref(tb, "expected no message for %s%s; found %d: %s", expected.selector(), expected.properties(), len(found), describeAll(found))
	}
}

// RequireManyTriggered asserts that the messages of the templates named in
// expected are exactly the expected ones, in the order they were triggered
// (oldest first; a bulk's recipients in the order given), and returns them in
// that order. When an expected message names no template, every message
// counts. It fails the test (FailNow) otherwise, saying what it expected and
// what it found.
func RequireManyTriggered(ctx context.Context, tb testing.TB, client *outbound.Client, expected []Expected) []*outbound.Message {
	tb.Helper()
	return requireManyTriggered(ctx, tb, client, nil, expected)
}

// RequireManyTriggeredTx is RequireManyTriggered inside tx: it sees the
// messages tx has triggered and not yet committed.
func RequireManyTriggeredTx(ctx context.Context, tb testing.TB, client *outbound.Client, tx pgx.Tx, expected []Expected) []*outbound.Message {
	tb.Helper()
	return requireManyTriggered(ctx, tb, client, tx, expected)
}

func requireManyTriggered(ctx context.Context, tb testing.TB, client *outbound.Client, tx pgx.Tx, expected []Expected) []*outbound.Message {
	tb.Helper()
	var templates []string
	for _, e := range expected {
		if e.TemplateID == "" {
			templates = nil
			break
		}
		if !slices.Contains(templates, e.TemplateID) {
			templates = append(templates, e.TemplateID)
		}
	}
	found, err := selectMessages(ctx, client, tx, 0, uuid.Nil, func(m *outbound.Message) bool {
		return templates == nil || slices.Contains(templates, m.TemplateID)
	})
	if err != nil {
		failuref(tb, "internal failure: %s", err)
		return nil
	}
	scope := "every template"
	if templates != nil {
		scope = fmt.Sprintf("templates %q", templates)
	}
	if len(found) != len(expected) {
		failuref(tb, "expected %d messages of %s; found %d: %s", len(expected), scope, len(found), describeAll(found))
		return nil
	}
	var failures []string
	for i, e := range expected {
		mismatches := e.selectorMismatches(found[i])
		mismatches = append(mismatches, e.mismatches(found[i])...)
		if len(mismatches) > 0 {
			failures = append(failures, fmt.Sprintf("message %d of %d: %s", i+1, len(expected), strings.Join(mismatches, "; ")))
		}
	}
	if len(failures) > 0 {
		failuref(tb, "messages of %s did not match, in trigger order:\n    %s\n    found: %s", scope, strings.Join(failures, "\n    "), describeAll(found))
		return nil
	}
	return found
}

// selectMessages reads, oldest first, the messages of a conversation (or of
// all, for 0) with an envelope id (or any, for uuid.Nil) that keep accepts
// (all, for nil), on the client's pool or in tx.
func selectMessages(ctx context.Context, client *outbound.Client, tx pgx.Tx, conversationID int64, envelopeID uuid.UUID,
	keep func(*outbound.Message) bool,
) ([]*outbound.Message, error) {
	// The assertions compare bodies, and return whole messages.
	params := &outbound.ListMessagesParams{ConversationID: conversationID, BulkEnvelopeID: envelopeID, Limit: outbound.MaxListLimit, IncludeContent: true}
	var found []*outbound.Message
	for {
		var (
			page *outbound.ListMessagesResult
			err  error
		)
		if tx != nil {
			page, err = client.ListMessagesTx(ctx, tx, params)
		} else {
			page, err = client.ListMessages(ctx, params)
		}
		if err != nil {
			return nil, err
		}
		for _, m := range page.Messages {
			if keep == nil || keep(m) {
				found = append(found, m)
			}
		}
		if page.NextCursor == nil {
			break
		}
		params.After = page.NextCursor
	}
	// Listed newest first; assertions read in trigger order.
	slices.Reverse(found)
	return found, nil
}

// selector describes what e selects.
func (e Expected) selector() string {
	parts := make([]string, 0, 3)
	if e.ConversationID != 0 {
		parts = append(parts, fmt.Sprintf("conversation %d", e.ConversationID))
	} else {
		parts = append(parts, "any conversation")
	}
	if e.TemplateID != "" {
		parts = append(parts, fmt.Sprintf("template %q", e.TemplateID))
	} else {
		parts = append(parts, "any template")
	}
	if e.BulkEnvelopeID != uuid.Nil {
		parts = append(parts, "envelope "+e.BulkEnvelopeID.String())
	} else {
		parts = append(parts, "any envelope")
	}
	return strings.Join(parts, ", ")
}

// properties describes the properties e asks for, if any.
func (e Expected) properties() string {
	var parts []string
	if e.Status != "" {
		parts = append(parts, "status "+string(e.Status))
	}
	if e.Content != "" {
		parts = append(parts, fmt.Sprintf("content %q", e.Content))
	}
	if e.Data != nil {
		parts = append(parts, "data "+jsonText(e.Data))
	}
	if !e.ScheduledAt.IsZero() {
		parts = append(parts, "scheduled at "+e.ScheduledAt.UTC().Format(time.RFC3339))
	}
	if len(parts) == 0 {
		return ""
	}
	return " with " + strings.Join(parts, ", ")
}

// selectorMismatches says how m differs from what e selects.
func (e Expected) selectorMismatches(m *outbound.Message) []string {
	var out []string
	if e.ConversationID != 0 && m.ConversationID != e.ConversationID {
		out = append(out, fmt.Sprintf("expected conversation %d, found %d", e.ConversationID, m.ConversationID))
	}
	if e.TemplateID != "" && m.TemplateID != e.TemplateID {
		out = append(out, fmt.Sprintf("expected template %q, found %q", e.TemplateID, m.TemplateID))
	}
	if e.BulkEnvelopeID != uuid.Nil && m.BulkEnvelopeID != e.BulkEnvelopeID {
		out = append(out, fmt.Sprintf("expected envelope %s, found %s", e.BulkEnvelopeID, envelopeText(m.BulkEnvelopeID)))
	}
	return out
}

// mismatches says how m differs from e's properties.
func (e Expected) mismatches(m *outbound.Message) []string {
	var out []string
	if e.Status != "" && m.Status != e.Status {
		out = append(out, fmt.Sprintf("expected status %s, found %s", e.Status, m.Status))
	}
	if e.Content != "" && m.Content != e.Content {
		out = append(out, fmt.Sprintf("expected content %q, found %q", e.Content, m.Content))
	}
	for _, key := range slices.Sorted(maps.Keys(e.Data)) {
		got, ok := m.Data[key]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("expected data %q = %s, found no %q in %s", key, jsonText(e.Data[key]), key, jsonText(m.Data)))
		case jsonText(got) != jsonText(e.Data[key]):
			out = append(out, fmt.Sprintf("expected data %q = %s, found %s", key, jsonText(e.Data[key]), jsonText(got)))
		}
	}
	if d := m.ScheduledAt.Sub(e.ScheduledAt); !e.ScheduledAt.IsZero() && (d < -time.Second || d > time.Second) {
		out = append(out, fmt.Sprintf("expected scheduled at %s, found %s",
			e.ScheduledAt.UTC().Format(time.RFC3339), m.ScheduledAt.UTC().Format(time.RFC3339)))
	}
	return out
}

// jsonText is v as JSON, as the message's data is kept: numbers compare as
// JSON numbers whatever their Go type.
func jsonText(v any) string {
	text, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%v (not JSON: %v)", v, err)
	}
	var decoded any
	_ = json.Unmarshal(text, &decoded)
	text, _ = json.Marshal(decoded)
	return string(text)
}

// describeAll describes messages in one line each.
func describeAll(msgs []*outbound.Message) string {
	if len(msgs) == 0 {
		return "none"
	}
	parts := make([]string, len(msgs))
	for i, m := range msgs {
		parts[i] = fmt.Sprintf("[conversation %d, template %q, %s, %s]", m.ConversationID, m.TemplateID, envelopeText(m.BulkEnvelopeID), m.Status)
	}
	return strings.Join(parts, " ")
}

func envelopeText(id uuid.UUID) string {
	if id == uuid.Nil {
		return "no envelope"
	}
	return "envelope " + id.String()
}

// failuref fails the test with a message in rivertest's shape: a header,
// then what was expected and what was found.
func failuref(tb testing.TB, format string, args ...any) {
	tb.Helper()
	tb.Log("\n    outbound assertion failure:\n    " + fmt.Sprintf(format, args...) + "\n")
	tb.FailNow()
}
