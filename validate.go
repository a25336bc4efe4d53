package outbound

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

const (
	// MaxListLimit is the largest Limit a list call accepts.
	MaxListLimit = 500

	// MaxTemplateIDBytes is the longest TemplateID accepted, in bytes. It
	// keeps every dedup key well inside the largest entry a PostgreSQL
	// B-tree index takes (2704 bytes), however badly the id compresses.
	MaxTemplateIDBytes = 256

	// MaxActorBytes is the longest Actor accepted, in bytes.
	MaxActorBytes = 256
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

// validateActor rejects an actor longer than MaxActorBytes, what
// validateText rejects, and control characters: an actor names who asked,
// goes to the Auditor, onto the rows and the dashboard, and into a host's
// logs, where an escape sequence, a line break or a bidirectional override
// could forge or hide what is written next to it. The message never
// repeats the actor.
func validateActor(field, s string) error {
	if err := validateBoundedText(field, s, MaxActorBytes); err != nil {
		return err
	}
	for i, r := range s {
		if unicode.IsControl(r) || isBidiControl(r) {
			return invalidArgument(field, "must not contain control characters (such as ESC, CR, LF or a bidirectional override), got %U at byte %d", r, i)
		}
	}
	return nil
}

// isBidiControl reports whether r is one of Unicode's explicit
// bidirectional formatting characters, which reorder the text around them.
func isBidiControl(r rune) bool {
	return (r >= '\u202a' && r <= '\u202e') || (r >= '\u2066' && r <= '\u2069') || r == '\u200e' || r == '\u200f' || r == '\u061c'
}

func validateConversationID(field string, id int64) error {
	if id <= 0 {
		return invalidArgument(field, "must be a positive conversation id, got %d", id)
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
