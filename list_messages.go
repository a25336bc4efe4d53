package outbound

import (
	"context"
	"fmt"
	"slices"

	"github.com/cairnloop/outbound/internal/dbutil"
	"github.com/cairnloop/outbound/internal/sqltext"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// allMessageStatuses lists every status, in lifecycle order.
var allMessageStatuses = []MessageStatus{
	MessageStatusPending, MessageStatusDelivering, MessageStatusSent, MessageStatusFailed,
	MessageStatusUnconfirmed, MessageStatusDiscarded, MessageStatusCancelled,
}

// ListMessagesParams filters ListMessages. A nil value, and every zero
// field, means no filter and the default limit.
type ListMessagesParams struct {
	// ConversationID keeps only this conversation's messages; 0 keeps all.
	ConversationID int64
	// BulkEnvelopeID keeps only the messages with this envelope id (of a
	// bulk, or a correlation key given to Trigger); uuid.Nil keeps all.
	BulkEnvelopeID uuid.UUID
	// Status keeps only messages with this status; "" keeps all.
	Status MessageStatus
	// Limit is the most messages returned. Defaults to DefaultListLimit
	// (50); above MaxListLimit (500) is an error.
	Limit int
	// After starts the page after this cursor, as a previous page's
	// NextCursor; nil starts with the newest message.
	After *MessageListCursor
	// IncludeContent reads each message's Content. Without it Content is
	// empty and ContentBytes gives its length: a page then takes memory in
	// proportion to its rows, not to bodies that may each be
	// Config.MaxContentBytes long.
	IncludeContent bool
}

// ListMessagesResult is one page of ListMessages.
type ListMessagesResult struct {
	// Messages are newest first.
	Messages []*Message
	// NextCursor is the After of the next page, or nil when no older
	// message matched when this page was read.
	NextCursor *MessageListCursor
}

// ListMessages returns a page of messages, newest first, filtered by
// conversation, envelope and status, as River's JobList pages jobs. Pages
// are positioned by cursor, not offset: paging through while messages are
// triggered neither repeats nor misses one that existed when paging began,
// and each page is read from an index however deep it is. Messages are in id
// order, which is creation order: ids are UUIDv7.
func (c *Client) ListMessages(ctx context.Context, params *ListMessagesParams) (*ListMessagesResult, error) {
	return c.listMessages(ctx, c.pool, params)
}

// ListMessagesTx is ListMessages inside the caller's transaction, as River's
// JobListTx is: it sees the messages that tx has triggered and not yet
// committed.
func (c *Client) ListMessagesTx(ctx context.Context, tx pgx.Tx, params *ListMessagesParams) (*ListMessagesResult, error) {
	if tx == nil {
		return nil, invalidArgument("tx", "must not be nil")
	}
	return c.listMessages(ctx, tx, params)
}

func (c *Client) listMessages(ctx context.Context, q querier, params *ListMessagesParams) (*ListMessagesResult, error) {
	if params == nil {
		params = &ListMessagesParams{}
	}
	limit, err := listLimit("ListMessagesParams.Limit", params.Limit)
	if err != nil {
		return nil, err
	}
	if params.ConversationID < 0 {
		return nil, invalidArgument("ListMessagesParams.ConversationID", "must be positive, or 0 for every conversation, got %d", params.ConversationID)
	}
	if params.Status != "" && !slices.Contains(allMessageStatuses, params.Status) {
		return nil, invalidArgument("ListMessagesParams.Status", "must be one of %v or empty, got %q", allMessageStatuses, params.Status)
	}
	if params.After != nil && params.After.id == uuid.Nil {
		return nil, invalidArgument("ListMessagesParams.After", "is a zero cursor; use a NextCursor or MessageListCursorFromMessage")
	}
	if err := c.checkSchema(ctx, q); err != nil {
		return nil, err
	}

	// One more than the limit says whether there is a next page.
	filter, args := sqltext.MessageFilter{Content: params.IncludeContent}, []any{limit + 1}
	if params.ConversationID != 0 {
		filter.Conversation = true
		args = append(args, params.ConversationID)
	}
	if params.BulkEnvelopeID != uuid.Nil {
		filter.Envelope = true
		args = append(args, dbutil.PgUUID(params.BulkEnvelopeID))
	}
	if params.Status != "" {
		filter.Status = sqltext.FinalStatus
		if awaitingResult(params.Status) {
			filter.Status = sqltext.AwaitingStatus
		}
		args = append(args, string(params.Status))
	}
	if params.After != nil {
		filter.After = true
		args = append(args, dbutil.PgUUID(params.After.id))
	}
	rows, err := q.Query(ctx, c.queries.ListMessages[filter], args...)
	if err != nil {
		return nil, fmt.Errorf("outbound: list messages: %w", err)
	}
	messages, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*Message, error) { return dbutil.ScanMessage(row) })
	if err != nil {
		return nil, fmt.Errorf("outbound: list messages: %w", err)
	}
	res := &ListMessagesResult{Messages: messages}
	if len(messages) > limit {
		res.Messages = messages[:limit]
		res.NextCursor = MessageListCursorFromMessage(res.Messages[limit-1])
	}
	return res, nil
}
