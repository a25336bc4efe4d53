package outbound

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// BulkRecipient is what one recipient of a bulk has of its own, in
// BulkTriggerOpts.Recipients: the library snapshots what the caller
// rendered for each recipient, and never renders again.
type BulkRecipient struct {
	// RenderedBody is the body rendered for this recipient, such as "Hi
	// Ana, your ticket #123 is resolved", kept on its message exactly as
	// given. Empty means the bulk's RenderedBody. Not only whitespace, at
	// most Config.MaxContentBytes.
	RenderedBody string

	// Data is this recipient's host data, such as its phone number, a JSON
	// object that the Notifier receives as Message.Data. Its keys are laid
	// over BulkTriggerOpts.Data's. At most Config.MaxDataBytes as JSON, once
	// merged. It must read back as given, as TriggerOpts.Data must; an error
	// names the recipient, as Recipients[42].Data.
	Data map[string]any

	// ScheduledAt is when this recipient's delivery may start, such as 9:00
	// in its own time zone, in place of the bulk's schedule; a time already
	// past means now, however long past, and one in the year 10000 or later
	// is ErrInvalidArgument. The zero time means the bulk's schedule.
	ScheduledAt time.Time
}

// recipientParts is what one recipient's message has of its own, as staged:
// each part left zero is the call's.
type recipientParts struct {
	// content is nil for the call's.
	content *string
	// data is the recipient's own data as JSON, which the insert lays over
	// the call's; nil for the call's alone.
	data []byte
	// scheduledAt is the zero time for the call's schedule; a time already
	// past means now, whatever the call's schedule.
	scheduledAt time.Time
}

// bulkRecipients is a bulk's per-recipient request, checked.
type bulkRecipients struct {
	// parts are each recipient's, in the order of the conversation ids; nil
	// when no recipient has any.
	parts []recipientParts
	// digests are the SHA-256 of each recipient's own parts, in the same
	// order, which a replay compares; nil when no recipient has any.
	digests [][]byte
}

// sharedParts is what a bulk's recipients share: its body, and its data,
// decoded and encoded.
type sharedParts struct {
	body        string
	data        map[string]any
	encodedData []byte
}

// prepareRecipients checks a bulk's recipients' own parts against the call's
// conversations and what they share, and returns each recipient's parts and
// digest. Its errors name fields within the bulk's options, such as
// "Recipients[42].Data".
func prepareRecipients(conversationIDs []int64, recipients map[int64]BulkRecipient, shared sharedParts, maxContentBytes, maxDataBytes int) (*bulkRecipients, error) {
	if len(recipients) == 0 {
		return &bulkRecipients{}, nil
	}
	asked := make(map[int64]bool, len(conversationIDs))
	for _, id := range conversationIDs {
		asked[id] = true
	}
	for id := range recipients {
		if !asked[id] {
			return nil, invalidArgument("Recipients", "names conversation %d, which is not among the conversations of the call", id)
		}
	}
	out := &bulkRecipients{parts: make([]recipientParts, len(conversationIDs)), digests: make([][]byte, len(conversationIDs))}
	for i, id := range conversationIDs {
		r, ok := recipients[id]
		if !ok && shared.body == "" {
			return nil, invalidArgument("RenderedBody", "is required unless every recipient has a body of its own; conversation %d has none", id)
		}
		own, err := r.check(shared, maxContentBytes, maxDataBytes)
		if err != nil {
			// The field is named once something is wrong: a name for each
			// recipient would cost an allocation each.
			var argErr *InvalidArgumentError
			if errors.As(err, &argErr) {
				argErr.Field = fmt.Sprintf("Recipients[%d].%s", id, argErr.Field)
			}
			return nil, err
		}
		p := &out.parts[i]
		if r.RenderedBody != "" {
			p.content = &r.RenderedBody
		}
		p.data, p.scheduledAt = own, clampLongPast(r.ScheduledAt)
		out.digests[i] = recipientDigest(r.RenderedBody, own, p.scheduledAt)
	}
	return out, nil
}

// check checks one recipient's own parts, and returns its own data as JSON.
// Its errors name the recipient's field alone, such as "Data".
func (r *BulkRecipient) check(shared sharedParts, maxContentBytes, maxDataBytes int) ([]byte, error) {
	if err := validateBoundedText("RenderedBody", r.RenderedBody, maxContentBytes); err != nil {
		return nil, err
	}
	if err := validateNotBlank("RenderedBody", r.RenderedBody); err != nil {
		return nil, err
	}
	if r.RenderedBody == "" && shared.body == "" {
		return nil, invalidArgument("RenderedBody", "is required when the bulk has no body for every recipient")
	}
	if err := validateScheduledAt("ScheduledAt", r.ScheduledAt); err != nil {
		return nil, err
	}
	own, err := encodeData("Data", r.Data, maxDataBytes)
	if err != nil || own == nil || len(shared.data) == 0 {
		return own, err
	}
	// The merge, which the insert makes, is at most as long as both; only
	// when both together are over the limit is it made here to be measured.
	if len(shared.encodedData)+len(own) > maxDataBytes {
		if _, err := encodeData("Data", mergeData(shared.data, r.Data), maxDataBytes); err != nil {
			return nil, err
		}
	}
	return own, nil
}

// recipientDigest is the SHA-256 of one recipient's own parts: its body, its
// own data as JSON, and its time to the microsecond that timestamptz keeps.
func recipientDigest(body string, data []byte, scheduledAt time.Time) []byte {
	h := sha256.New()
	var n [8]byte
	for _, part := range [][]byte{[]byte(body), data} {
		binary.BigEndian.PutUint64(n[:], uint64(len(part)))
		h.Write(n[:])
		h.Write(part)
	}
	if !scheduledAt.IsZero() {
		binary.BigEndian.PutUint64(n[:], uint64(scheduledAt.UnixMicro()))
		h.Write(n[:])
	}
	return h.Sum(nil)
}
