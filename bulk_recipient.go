package outbound

import (
	"crypto/sha256"
	"encoding/binary"
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
	// merged.
	Data map[string]any

	// ScheduledAt is when this recipient's delivery may start, such as 9:00
	// in its own time zone, in place of the bulk's schedule; a time already
	// past means now. The zero time means the bulk's schedule.
	ScheduledAt time.Time
}

// recipientParts is what one recipient's message has of its own, as staged:
// each part left zero is the call's.
type recipientParts struct {
	// content is nil for the call's.
	content *string
	// data is the recipient's merged data as JSON, nil for the call's.
	data []byte
	// scheduledAt is the zero time for the call's schedule.
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

// prepareRecipients checks opts.Recipients against the call's conversations
// and returns each recipient's parts, its data merged over opts.Data, and
// its digest.
func prepareRecipients(conversationIDs []int64, opts *BulkTriggerOpts, maxContentBytes, maxDataBytes int) (*bulkRecipients, error) {
	if len(opts.Recipients) == 0 {
		return &bulkRecipients{}, nil
	}
	asked := make(map[int64]bool, len(conversationIDs))
	for _, id := range conversationIDs {
		asked[id] = true
	}
	for id := range opts.Recipients {
		if !asked[id] {
			return nil, invalidArgument("BulkTriggerOpts.Recipients", "names conversation %d, which is not among the conversations of the call", id)
		}
	}
	out := &bulkRecipients{parts: make([]recipientParts, len(conversationIDs)), digests: make([][]byte, len(conversationIDs))}
	for i, id := range conversationIDs {
		r, ok := opts.Recipients[id]
		if !ok && opts.RenderedBody == "" {
			return nil, invalidArgument("BulkTriggerOpts.RenderedBody", "is required unless every recipient has a body of its own; conversation %d has none", id)
		}
		field := fmt.Sprintf("BulkTriggerOpts.Recipients[%d]", id)
		if err := validateBoundedText(field+".RenderedBody", r.RenderedBody, maxContentBytes); err != nil {
			return nil, err
		}
		if err := validateNotBlank(field+".RenderedBody", r.RenderedBody); err != nil {
			return nil, err
		}
		if r.RenderedBody == "" && opts.RenderedBody == "" {
			return nil, invalidArgument(field+".RenderedBody", "is required when the bulk has no body for every recipient")
		}
		own, err := encodeData(field+".Data", r.Data, maxDataBytes)
		if err != nil {
			return nil, err
		}
		p := &out.parts[i]
		if r.RenderedBody != "" {
			p.content = &r.RenderedBody
		}
		if own != nil {
			if p.data, err = encodeData(field+".Data", mergeData(opts.Data, r.Data), maxDataBytes); err != nil {
				return nil, err
			}
		}
		p.scheduledAt = r.ScheduledAt
		out.digests[i] = recipientDigest(r.RenderedBody, own, r.ScheduledAt)
	}
	return out, nil
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
