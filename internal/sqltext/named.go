package sqltext

import (
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
)

// Named is a statement whose text names its parameters (@name) for its
// reader, numbered once when New builds it: SQL has $1, $2 … in the order of
// Names, the sql tags of the statement's args struct, whose Args lists the
// fields' values in that order.
// pgx.NamedArgs would rewrite the text on every call instead: on Trigger's
// path that cost 34 allocations and 3 KB a call (BENCHMARKS.md, section 13).
type Named struct {
	// SQL is the statement with positional parameters.
	SQL string
	// Names are the parameters' names: Names[i] is $i+1.
	Names []string
}

// namedParam is one @name parameter.
var namedParam = regexp.MustCompile(`@([a-z_]+)`)

// named numbers text's @name parameters in the order of the sql tags of
// args' fields. text must use every name, and no other: New panics
// otherwise, and a test builds New.
func named(text string, args any) Named {
	fields := reflect.TypeOf(args)
	names := make([]string, fields.NumField())
	for i := range names {
		names[i] = fields.Field(i).Tag.Get("sql")
	}
	used := make([]bool, len(names))
	sql := namedParam.ReplaceAllStringFunc(text, func(param string) string {
		i := slices.Index(names, param[1:])
		if i < 0 {
			panic(fmt.Sprintf("sqltext: %s is not among the statement's parameters %v", param, names))
		}
		used[i] = true
		return "$" + strconv.Itoa(i+1)
	})
	if i := slices.Index(used, false); i >= 0 {
		panic(fmt.Sprintf("sqltext: parameter @%s is never used", names[i]))
	}
	return Named{SQL: sql, Names: names}
}

// InsertMessagesArgs are InsertMessages' arguments; each field's tag names
// its parameter, and Args lists them in the fields' order.
type InsertMessagesArgs struct {
	// IDs, ConversationIDs and JobIDs are one row's each, in order.
	IDs             []pgtype.UUID `sql:"ids"`
	ConversationIDs []int64       `sql:"conversation_ids"`
	JobIDs          []int64       `sql:"job_ids"`
	TemplateID      string        `sql:"template_id"`
	Content         string        `sql:"content"`
	// BulkEnvelopeID is nil for none.
	BulkEnvelopeID *uuid.UUID `sql:"bulk_envelope_id"`
	// ScheduledAt is nil for now().
	ScheduledAt *time.Time `sql:"scheduled_at"`
	// Data is the call's data as JSON text, nil for none.
	Data *string `sql:"data"`
	// Rendered says whether Content and Contents are rendered bodies.
	Rendered bool `sql:"rendered"`
	// Contents, EachData and ScheduledAts are each row's own content, data
	// (JSON text, laid over Data) and time, in the order of IDs; an invalid
	// element, or a slice shorter than IDs (empty for none), leaves the row
	// the call's.
	Contents     []pgtype.Text        `sql:"contents"`
	EachData     []pgtype.Text        `sql:"each_data"`
	ScheduledAts []pgtype.Timestamptz `sql:"scheduled_ats"`
}

// Args are the arguments in the fields' order.
func (a *InsertMessagesArgs) Args() []any {
	return []any{a.IDs, a.ConversationIDs, a.JobIDs, a.TemplateID, a.Content, a.BulkEnvelopeID, a.ScheduledAt,
		a.Data, a.Rendered, a.Contents, a.EachData, a.ScheduledAts}
}

// InsertEnvelopeArgs are InsertEnvelope's arguments; each field's tag names
// its parameter, and Args lists them in the fields' order. A nil pointer is
// NULL.
type InsertEnvelopeArgs struct {
	ID           pgtype.UUID `sql:"id"`
	TemplateID   string      `sql:"template_id"`
	RenderedBody string      `sql:"rendered_body"`
	// Recipients are those the envelope keeps; Count how many were asked for.
	Recipients   []int64 `sql:"recipients"`
	Count        int     `sql:"count"`
	EffectiveCap int     `sql:"effective_cap"`
	RequestedBy  *string `sql:"requested_by"`
	Status       string  `sql:"status"`
	// RefusedReason is set for a refused envelope only.
	RefusedReason *string `sql:"refused_reason"`
	// Digest is the SHA-256 of a refused envelope's whole list; nil for a
	// submitted one.
	Digest     []byte        `sql:"digest"`
	ScheduleIn time.Duration `sql:"schedule_in"`
	// ScheduledAt, Priority and MaxAttempts are nil when the request left
	// them to the default.
	ScheduledAt *time.Time `sql:"scheduled_at"`
	Priority    *int       `sql:"priority"`
	MaxAttempts *int       `sql:"max_attempts"`
	// Data is the shared data as JSON text, and DataDigest its SHA-256; nil
	// for none.
	Data       *string `sql:"data"`
	DataDigest []byte  `sql:"data_digest"`
	// RecipientDigests are the SHA-256 of each recipient's own body, data
	// and time, in the order of Recipients; nil when none has any.
	RecipientDigests [][]byte `sql:"recipient_digests"`
}

// Args are the arguments in the fields' order.
func (a *InsertEnvelopeArgs) Args() []any {
	return []any{a.ID, a.TemplateID, a.RenderedBody, a.Recipients, a.Count, a.EffectiveCap, a.RequestedBy,
		a.Status, a.RefusedReason, a.Digest, a.ScheduleIn, a.ScheduledAt, a.Priority, a.MaxAttempts,
		a.Data, a.DataDigest, a.RecipientDigests}
}
