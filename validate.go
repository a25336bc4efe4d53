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

	// MaxTemplateIDBytes is the longest TemplateID accepted, in bytes. It
	// keeps every dedup key well inside the largest entry a PostgreSQL
	// B-tree index takes (2704 bytes), however badly the id compresses.
	MaxTemplateIDBytes = 256

	// MaxActorBytes is the longest Actor accepted, in bytes.
	MaxActorBytes = 256

	// DefaultMaxContentBytes is Config.MaxContentBytes when it is zero: the
	// longest TriggerOpts.Content and BulkTriggerOpts.RenderedBody accepted,
	// in bytes.
	DefaultMaxContentBytes = 128 << 10

	// maxMaxContentBytes is the largest Config.MaxContentBytes accepted.
	maxMaxContentBytes = 64 << 20
)

// validateBoundedText rejects text longer than maxBytes, and then what
// validateText rejects. The length is checked first, so that an oversized
// value is refused without being read through.
func validateBoundedText(field, s string, maxBytes int) error {
	if len(s) > maxBytes {
		return invalidArgument(field, "must be at most %d bytes, got %d", maxBytes, len(s))
	}
	return validateText(field, s)
}

// validateNotBlank rejects text that is only whitespace (empty text is the
// caller's to judge: required, or a default): a template id no one can
// render by, a body that would reach a customer blank.
func validateNotBlank(field, s string) error {
	if s != "" && strings.TrimSpace(s) == "" {
		return invalidArgument(field, "must not be only whitespace")
	}
	return nil
}

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

func validateTrigger(conversationID int64, opts *TriggerOpts, maxContentBytes int) error {
	if err := validateConversationID("conversationID", conversationID); err != nil {
		return err
	}
	if opts.TemplateID == "" {
		return invalidArgument("TriggerOpts.TemplateID", "is required")
	}
	for _, f := range []struct {
		name, value string
		maxBytes    int
		notBlank    bool
	}{
		{"TriggerOpts.TemplateID", opts.TemplateID, MaxTemplateIDBytes, true},
		{"TriggerOpts.Content", opts.Content, maxContentBytes, true},
		{"TriggerOpts.Actor", opts.Actor, MaxActorBytes, false},
	} {
		if err := validateBoundedText(f.name, f.value, f.maxBytes); err != nil {
			return err
		}
		if f.notBlank {
			if err := validateNotBlank(f.name, f.value); err != nil {
				return err
			}
		}
	}
	return opts.delivery().validate("TriggerOpts")
}

// validateBulkTrigger checks a bulk request. The options are checked first.
// A list over the cap is refused whatever it holds, so only the positivity
// of its ids is checked, which allocates nothing; a list within the cap is
// also checked for repeats.
func validateBulkTrigger(conversationIDs []int64, opts *BulkTriggerOpts, maxContentBytes, batchCap int) error {
	if opts.TemplateID == "" {
		return invalidArgument("BulkTriggerOpts.TemplateID", "is required")
	}
	if opts.RenderedBody == "" {
		return invalidArgument("BulkTriggerOpts.RenderedBody", "is required")
	}
	for _, f := range []struct {
		name, value string
		maxBytes    int
		notBlank    bool
	}{
		{"BulkTriggerOpts.TemplateID", opts.TemplateID, MaxTemplateIDBytes, true},
		{"BulkTriggerOpts.RenderedBody", opts.RenderedBody, maxContentBytes, true},
		{"BulkTriggerOpts.Actor", opts.Actor, MaxActorBytes, false},
	} {
		if err := validateBoundedText(f.name, f.value, f.maxBytes); err != nil {
			return err
		}
		if f.notBlank {
			if err := validateNotBlank(f.name, f.value); err != nil {
				return err
			}
		}
	}
	if err := opts.delivery().validate("BulkTriggerOpts"); err != nil {
		return err
	}
	if len(conversationIDs) == 0 {
		return invalidArgument("conversationIDs", "must name at least one conversation")
	}
	for i, id := range conversationIDs {
		if id <= 0 {
			return invalidArgument("conversationIDs", "must hold positive conversation ids, got %d at index %d", id, i)
		}
	}
	if len(conversationIDs) > batchCap {
		return nil
	}
	firstAt := make(map[int64]int, len(conversationIDs))
	for i, id := range conversationIDs {
		if j, seen := firstAt[id]; seen {
			return invalidArgument("conversationIDs", "must not repeat a conversation: %d is at index %d and %d", id, j, i)
		}
		firstAt[id] = i
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
