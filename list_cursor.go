package outbound

import (
	"encoding/base64"

	"github.com/google/uuid"
)

// Cursor kinds, the first byte of a cursor's encoding, so that a cursor of
// one list given to another is refused rather than misread.
const (
	cursorKindMessage  byte = 'm'
	cursorKindEnvelope byte = 'e'
)

// MessageListCursor is a position in ListMessages' order: the page after it
// starts with the next older message. Its zero value is not valid; get one
// from ListMessagesResult.NextCursor or MessageListCursorFromMessage. It
// marshals to an opaque, URL-safe text, for a page link.
type MessageListCursor struct {
	id uuid.UUID
}

// MessageListCursorFromMessage returns the cursor positioned at msg: a list
// after it starts with the message just older than msg.
func MessageListCursorFromMessage(msg *Message) *MessageListCursor {
	return &MessageListCursor{id: msg.ID}
}

// MarshalText implements encoding.TextMarshaler.
func (c MessageListCursor) MarshalText() ([]byte, error) {
	return encodeCursor(cursorKindMessage, c.id[:]), nil
}

// UnmarshalText implements encoding.TextUnmarshaler. Text that is not a
// message cursor is ErrInvalidArgument.
func (c *MessageListCursor) UnmarshalText(text []byte) error {
	payload, err := decodeCursor(text, cursorKindMessage, len(uuid.UUID{}), "message list cursor")
	if err != nil {
		return err
	}
	copy(c.id[:], payload)
	return nil
}

// encodeCursor encodes a cursor's kind and payload as base64url text.
func encodeCursor(kind byte, payload []byte) []byte {
	raw := append([]byte{kind}, payload...)
	out := make([]byte, base64.RawURLEncoding.EncodedLen(len(raw)))
	base64.RawURLEncoding.Encode(out, raw)
	return out
}

// decodeCursor decodes text made by encodeCursor and checks its kind and
// length.
func decodeCursor(text []byte, kind byte, size int, name string) ([]byte, error) {
	raw := make([]byte, base64.RawURLEncoding.DecodedLen(len(text)))
	n, err := base64.RawURLEncoding.Decode(raw, text)
	if err != nil || n != 1+size || raw[0] != kind {
		return nil, invalidArgument(name, "is malformed: its %d bytes of text are not a %s made by this library", len(text), name)
	}
	return raw[1:n], nil
}
