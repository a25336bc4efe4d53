package outbound

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// SubscribeConfig configures a subscription made by Client.SubscribeConfig.
type SubscribeConfig struct {
	// ChanSize is the buffer of the subscription's channel. An event that
	// finds it full is dropped, counted in
	// outbound.subscription.dropped_events and logged. Negative is an error.
	// Defaults to DefaultSubscribeChanSize (1000).
	ChanSize int

	// Kinds are the kinds of event the subscription receives; at least one.
	// They are named one by one, as in River, so that a kind added in a
	// later version is not sent to a subscriber that cannot handle it.
	Kinds []EventKind
}

// kindBit is the kind's bit in a subscription's set of kinds; 0 for an
// unknown kind.
func kindBit(kind EventKind) uint8 {
	switch kind {
	case EventKindMessageSent:
		return 1
	case EventKindMessageDiscarded:
		return 2
	case EventKindMessageCancelled:
		return 4
	case EventKindMessageUnconfirmed:
		return 8
	}
	return 0
}

// dropLogInterval is the shortest time between two log lines about one
// subscription's dropped events: a subscriber that has stopped reading would
// otherwise log once per outcome.
const dropLogInterval = 10 * time.Second

// subscriptions are a Client's subscribers.
type subscriptions struct {
	mu     sync.RWMutex
	byID   map[int]*subscription
	nextID int
	// active counts the subscribers, so that an outcome with none to hear
	// it costs one atomic load.
	active  atomic.Int32
	logger  *slog.Logger
	dropped func(ctx context.Context, kind EventKind)
}

// subscription is one subscriber.
type subscription struct {
	ch    chan *Event
	kinds uint8
	// droppedSinceLog counts the events dropped since the last log line,
	// and loggedAt is when that line was written (UnixNano).
	droppedSinceLog atomic.Int64
	loggedAt        atomic.Int64
}

// add registers sub and returns the function that removes it and closes its
// channel; calling that function more than once does nothing more.
func (s *subscriptions) add(sub *subscription) func() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byID == nil {
		s.byID = make(map[int]*subscription)
	}
	id := s.nextID
	s.nextID++
	s.byID[id] = sub
	s.active.Add(1)
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if _, ok := s.byID[id]; !ok {
			return
		}
		delete(s.byID, id)
		s.active.Add(-1)
		// Publishers send under the read lock, so none is sending now.
		close(sub.ch)
	}
}

// listening reports whether anyone subscribes, so that callers build events
// only for someone.
func (s *subscriptions) listening() bool { return s.active.Load() > 0 }

// publish sends the event to every subscriber of its kind without blocking.
func (s *subscriptions) publish(ctx context.Context, ev *Event) {
	if !s.listening() {
		return
	}
	bit := kindBit(ev.Kind)
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, sub := range s.byID {
		if sub.kinds&bit == 0 {
			continue
		}
		select {
		case sub.ch <- ev:
		default:
			s.drop(ctx, sub, ev.Kind)
		}
	}
}

// drop counts an event that found sub's buffer full, and logs it unless the
// subscription was logged about less than dropLogInterval ago; the next line
// then says how many were dropped in between.
func (s *subscriptions) drop(ctx context.Context, sub *subscription, kind EventKind) {
	s.dropped(ctx, kind)
	sub.droppedSinceLog.Add(1)
	now := time.Now().UnixNano()
	last := sub.loggedAt.Load()
	if last != 0 && now-last < int64(dropLogInterval) {
		return
	}
	if !sub.loggedAt.CompareAndSwap(last, now) {
		return // another publisher is logging
	}
	n := sub.droppedSinceLog.Swap(0)
	s.logger.WarnContext(ctx, "outbound: a subscriber's buffer is full; final-outcome events dropped",
		slog.Int64("dropped", n),
		slog.String("last_kind", string(kind)),
		slog.Int("chan_size", cap(sub.ch)),
	)
}

// eventKindOf maps a final status to its event kind.
var eventKindOf = map[MessageStatus]EventKind{
	MessageStatusSent:        EventKindMessageSent,
	MessageStatusDiscarded:   EventKindMessageDiscarded,
	MessageStatusCancelled:   EventKindMessageCancelled,
	MessageStatusUnconfirmed: EventKindMessageUnconfirmed,
}

// messageEvent is the event of msg's final status, happening now.
func messageEvent(msg *Message, status MessageStatus, reason EventReason, lastError string) *Event {
	return &Event{
		Kind:           eventKindOf[status],
		Reason:         reason,
		MessageID:      msg.ID,
		ConversationID: msg.ConversationID,
		TemplateID:     msg.TemplateID,
		BulkEnvelopeID: msg.BulkEnvelopeID,
		Attempts:       msg.Attempts,
		LastError:      lastError,
		OccurredAt:     time.Now(),
	}
}
