package outboundui

import (
	"fmt"
	"strings"

	"github.com/cairnloop/outbound"
)

// segment is one status's share of a progress bar.
type segment struct {
	// Class names the status for the stylesheet and for tests: sent,
	// pending, delivering, failed, unconfirmed, discarded or cancelled.
	Class string
	// Label is the status as the operator reads it.
	Label string
	Count int
	// X and Width place the segment on a bar 100 units wide.
	X, Width float64
}

// bar is an envelope's messages by status: a drawing, and the same counts as
// text, so that colour is never the only way to read it.
type bar struct {
	Total    int
	Segments []segment
	// Summary is the whole bar in words, for the drawing's accessible name.
	Summary string
}

// newBar lays the progress out in a fixed order, delivered first. The
// unconfirmed status, rare, is shown only when some message has it.
func newBar(p *outbound.Progress) *bar {
	b := &bar{Total: p.Total()}
	x := 0.0
	var words []string
	for _, s := range []segment{
		{Class: "sent", Label: "sent", Count: p.Sent},
		{Class: "pending", Label: "pending", Count: p.Pending},
		{Class: "delivering", Label: "in flight", Count: p.Delivering},
		{Class: "failed", Label: "failed", Count: p.Failed},
		{Class: "unconfirmed", Label: "unconfirmed", Count: p.Unconfirmed},
		{Class: "discarded", Label: "discarded", Count: p.Discarded},
		{Class: "cancelled", Label: "cancelled", Count: p.Cancelled},
	} {
		if s.Class == "unconfirmed" && s.Count == 0 {
			continue
		}
		if b.Total > 0 {
			s.X, s.Width = x, 100*float64(s.Count)/float64(b.Total)
			x += s.Width
		}
		b.Segments = append(b.Segments, s)
		words = append(words, fmt.Sprintf("%d %s", s.Count, s.Label))
	}
	b.Summary = fmt.Sprintf("%s, of %d %s", strings.Join(words, ", "), b.Total, plural(b.Total, "message", "messages"))
	return b
}

// cancellable is how many of the envelope's messages a cancel would stop:
// those not yet handed to the notifier.
func cancellable(p *outbound.Progress) int { return p.Pending + p.Failed }

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
