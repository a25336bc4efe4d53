package sqltext

import (
	"strconv"
	"strings"
)

// StatusFilter is how a ListMessages statement filters on status.
type StatusFilter int

const (
	// AnyStatus: no filter on status.
	AnyStatus StatusFilter = iota
	// AwaitingStatus: a status whose delivery has not ended (pending,
	// delivering, failed), found through the awaiting_result index.
	AwaitingStatus
	// FinalStatus: a final status, found through the final_status index.
	FinalStatus
)

// MessageFilter says which filters a ListMessages statement applies. Each
// combination is a statement of its own, so that each has a plan that uses
// the index serving its filters, where one statement with optional
// parameters would get one generic plan for all.
type MessageFilter struct {
	Conversation bool
	Envelope     bool
	Status       StatusFilter
	// After: only messages older than a cursor's.
	After bool
	// Content: read each message's content; without it, the statement
	// selects MessageColumnsWithoutContent.
	Content bool
}

// AllMessageFilters lists every MessageFilter, for tests that explain each
// statement.
func AllMessageFilters() []MessageFilter {
	var all []MessageFilter
	for _, conversation := range []bool{false, true} {
		for _, envelope := range []bool{false, true} {
			for _, status := range []StatusFilter{AnyStatus, AwaitingStatus, FinalStatus} {
				for _, after := range []bool{false, true} {
					for _, content := range []bool{false, true} {
						all = append(all, MessageFilter{Conversation: conversation, Envelope: envelope, Status: status, After: after, Content: content})
					}
				}
			}
		}
	}
	return all
}

// listMessages builds the statement of one filter. Its parameters are $1
// the limit, then, for each filter applied and in this order, the
// conversation id, the envelope id, the status and the cursor's id.
func listMessages(r *strings.Replacer, f MessageFilter) string {
	var where []string
	n := 1
	add := func(condition string) {
		n++
		where = append(where, strings.ReplaceAll(condition, "$?", "$"+strconv.Itoa(n)))
	}
	if f.Conversation {
		add("conversation_id = $?")
	}
	if f.Envelope {
		add("bulk_envelope_id = $?")
	}
	switch f.Status {
	case AwaitingStatus:
		add("awaiting_result AND status = $?")
	case FinalStatus:
		add("final_status = $?")
	}
	if f.After {
		add("id < $?")
	}
	sql := "SELECT {mcols_no_content} FROM {s}.messages"
	if f.Content {
		sql = "SELECT {mcols} FROM {s}.messages"
	}
	if len(where) > 0 {
		sql += "\nWHERE " + strings.Join(where, "\n\tAND ")
	}
	return r.Replace(sql + "\nORDER BY id DESC\nLIMIT $1")
}
