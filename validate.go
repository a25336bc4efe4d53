package outbound

import (
	"strings"
	"unicode/utf8"
)

const (
	// DefaultListLimit is the number of rows a list call returns when its
	// Limit is zero.
	DefaultListLimit = 50

	// MaxListLimit is the largest Limit a list call accepts.
	MaxListLimit = 500
)

// validateText rejects text that Postgres cannot store in a text column (NUL
// bytes) or that is not UTF-8. The message never repeats the text: it may be a
// customer-facing body.
func validateText(field, s string) error {
	if strings.IndexByte(s, 0) >= 0 {
		return invalidArgument(field, "must not contain NUL bytes")
	}
	if !utf8.ValidString(s) {
		return invalidArgument(field, "must be valid UTF-8")
	}
	return nil
}

func validateConversationID(field string, id int64) error {
	if id <= 0 {
		return invalidArgument(field, "must be a positive conversation id, got %d", id)
	}
	return nil
}

func validateTrigger(conversationID int64, opts *TriggerOpts) error {
	if err := validateConversationID("conversationID", conversationID); err != nil {
		return err
	}
	if opts.TemplateID == "" {
		return invalidArgument("TriggerOpts.TemplateID", "is required")
	}
	for _, f := range []struct{ name, value string }{
		{"TriggerOpts.TemplateID", opts.TemplateID},
		{"TriggerOpts.Content", opts.Content},
		{"TriggerOpts.Actor", opts.Actor},
	} {
		if err := validateText(f.name, f.value); err != nil {
			return err
		}
	}
	if opts.ScheduleIn < 0 {
		return invalidArgument("TriggerOpts.ScheduleIn", "must not be negative, got %s", opts.ScheduleIn)
	}
	return nil
}

func validateBulkTrigger(conversationIDs []int64, opts *BulkTriggerOpts) error {
	if len(conversationIDs) == 0 {
		return invalidArgument("conversationIDs", "must name at least one conversation")
	}
	firstAt := make(map[int64]int, len(conversationIDs))
	for i, id := range conversationIDs {
		if id <= 0 {
			return invalidArgument("conversationIDs", "must hold positive conversation ids, got %d at index %d", id, i)
		}
		if j, seen := firstAt[id]; seen {
			return invalidArgument("conversationIDs", "must not repeat a conversation: %d is at index %d and %d", id, j, i)
		}
		firstAt[id] = i
	}
	if opts.TemplateID == "" {
		return invalidArgument("BulkTriggerOpts.TemplateID", "is required")
	}
	if opts.RenderedBody == "" {
		return invalidArgument("BulkTriggerOpts.RenderedBody", "is required")
	}
	for _, f := range []struct{ name, value string }{
		{"BulkTriggerOpts.TemplateID", opts.TemplateID},
		{"BulkTriggerOpts.RenderedBody", opts.RenderedBody},
		{"BulkTriggerOpts.Actor", opts.Actor},
	} {
		if err := validateText(f.name, f.value); err != nil {
			return err
		}
	}
	if opts.ScheduleIn < 0 {
		return invalidArgument("BulkTriggerOpts.ScheduleIn", "must not be negative, got %s", opts.ScheduleIn)
	}
	return nil
}

// listLimit applies the default list limit and rejects out-of-range ones.
func listLimit(field string, limit int) (int, error) {
	switch {
	case limit == 0:
		return DefaultListLimit, nil
	case limit < 0 || limit > MaxListLimit:
		return 0, invalidArgument(field, "must be between 1 and %d (0 means %d), got %d", MaxListLimit, DefaultListLimit, limit)
	}
	return limit, nil
}
