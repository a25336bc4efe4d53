package outbound

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// DeliveryArgs are the River job args of a message's delivery job. All four
// fields are always present; BulkEnvelopeID is null for a message triggered
// without an envelope.
type DeliveryArgs struct {
	MessageID      uuid.UUID  `json:"message_id"`
	ConversationID int64      `json:"conversation_id"`
	TemplateID     string     `json:"template_id"`
	BulkEnvelopeID *uuid.UUID `json:"bulk_envelope_id"`
}

// DeliveryJobKind is the River job kind of delivery jobs.
const DeliveryJobKind = "outbound_delivery"

// Kind implements river.JobArgs.
func (DeliveryArgs) Kind() string { return DeliveryJobKind }

// stageParams is what every recipient of one call shares.
type stageParams struct {
	templateID     string
	content        string
	bulkEnvelopeID uuid.UUID
	scheduleIn     time.Duration
}

// stagedTrigger is what buildTriggerTx staged.
type stagedTrigger struct {
	// messages has one message per recipient, in input order: the row just
	// written, or the live row that already held the recipient's dedup key.
	messages []*Message
	// duplicates counts the recipients whose key was already held.
	duplicates int
}

// insertedMessage is what InsertMessages returns of a row beyond its id.
type insertedMessage struct {
	createdAt, scheduledAt time.Time
}

// buildTriggerTx stages one pending message and one River delivery job per
// conversation inside tx, which it neither commits nor rolls back. It is the
// primitive under both Trigger and BulkTrigger.
//
// The statement count does not grow with the number of recipients: one
// InsertManyTx for the jobs, one multi-row insert for the messages, and, only
// when some dedup keys were taken, one read of the holders and one delete of
// the jobs that turned out unneeded. Jobs go first so that each message row
// is written once, with its job id; message ids are made here so that job
// args can carry them before the rows exist.
func (c *Client) buildTriggerTx(ctx context.Context, tx pgx.Tx, conversationIDs []int64, p *stageParams) (*stagedTrigger, error) {
	n := len(conversationIDs)
	insertOpts := &river.InsertOpts{Queue: c.config.Queue, MaxAttempts: c.config.MaxAttempts}
	var scheduledAt *time.Time
	if p.scheduleIn > 0 {
		at := time.Now().Add(p.scheduleIn)
		scheduledAt = &at
		insertOpts.ScheduledAt = at
	}
	envelopeID := nullIfNilUUID(p.bulkEnvelopeID)

	messageIDs := make([]uuid.UUID, n)
	// pgx encodes uuid.UUID through its driver.Valuer, as text parsed back;
	// pgtype.UUID goes straight to the binary format.
	pgMessageIDs := make([]pgtype.UUID, n)
	params := make([]river.InsertManyParams, n)
	for i, conversationID := range conversationIDs {
		id, err := uuid.NewV7()
		if err != nil {
			return nil, fmt.Errorf("outbound: message id: %w", err)
		}
		messageIDs[i] = id
		pgMessageIDs[i] = pgtype.UUID{Bytes: id, Valid: true}
		params[i] = river.InsertManyParams{
			Args: DeliveryArgs{
				MessageID:      id,
				ConversationID: conversationID,
				TemplateID:     p.templateID,
				BulkEnvelopeID: envelopeID,
			},
			InsertOpts: insertOpts,
		}
	}

	jobs, err := c.river.InsertManyTx(ctx, tx, params)
	if err != nil {
		return nil, fmt.Errorf("outbound: insert delivery jobs: %w", err)
	}
	jobIDs, err := jobIDsByMessage(jobs, messageIDs)
	if err != nil {
		return nil, err
	}

	recipients := recipientRows{ids: pgMessageIDs, conversationIDs: conversationIDs, jobIDs: jobIDs}
	inserted := make(map[uuid.UUID]insertedMessage, n)
	if err := c.insertMessages(ctx, tx, inserted, recipients, p, envelopeID, scheduledAt); err != nil {
		return nil, err
	}
	if len(inserted) < n && c.config.DedupWindow >= 0 {
		if err := c.insertPastWindow(ctx, tx, inserted, recipients, p, envelopeID, scheduledAt); err != nil {
			return nil, err
		}
	}

	staged := &stagedTrigger{messages: make([]*Message, n)}
	// One allocation for all new messages rather than one each.
	written := make([]Message, len(inserted))
	var envelopeMetadata any
	if envelopeID != nil {
		envelopeMetadata = envelopeID.String()
	}
	var (
		takenConversations []int64
		unusedJobs         []int64
	)
	for i, id := range messageIDs {
		if r, ok := inserted[id]; ok {
			m := &written[0]
			written = written[1:]
			// The row as the insert wrote it: the parameters, the column
			// defaults of migrations/001, and the two times it returned.
			*m = Message{
				ID:             id,
				ConversationID: conversationIDs[i],
				Role:           RoleSystemOutbound,
				TemplateID:     p.templateID,
				Content:        p.content,
				Status:         MessageStatusPending,
				BulkEnvelopeID: p.bulkEnvelopeID,
				Metadata: map[string]any{
					"template_id":      p.templateID,
					"status":           string(MessageStatusPending),
					"bulk_envelope_id": envelopeMetadata,
				},
				JobID:       jobIDs[i],
				ScheduledAt: r.scheduledAt,
				CreatedAt:   r.createdAt,
				UpdatedAt:   r.createdAt,
			}
			staged.messages[i] = m
			continue
		}
		takenConversations = append(takenConversations, conversationIDs[i])
		unusedJobs = append(unusedJobs, jobIDs[i])
	}
	if len(takenConversations) == 0 {
		return staged, nil
	}

	// Some dedup keys were held by live messages: return those, and remove
	// the jobs staged for the recipients that were skipped so none is orphaned.
	if _, err := tx.Exec(ctx, c.queries.DeleteUnusedJobs, unusedJobs); err != nil {
		return nil, fmt.Errorf("outbound: delete unneeded jobs: %w", err)
	}
	rows, err := tx.Query(ctx, c.queries.SelectLiveMessagesByKey, takenConversations, p.templateID, envelopeID)
	if err != nil {
		return nil, fmt.Errorf("outbound: read existing messages: %w", err)
	}
	existing, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*Message, error) { return scanMessage(row) })
	if err != nil {
		return nil, fmt.Errorf("outbound: read existing messages: %w", err)
	}
	byConversation := make(map[int64]*Message, len(existing))
	for _, m := range existing {
		byConversation[m.ConversationID] = m
	}
	for i := range messageIDs {
		if staged.messages[i] != nil {
			continue
		}
		m, ok := byConversation[conversationIDs[i]]
		if !ok {
			// The holder was cancelled or discarded between our insert and
			// this read; the caller may simply try again.
			return nil, fmt.Errorf("outbound: dedup key of conversation %d changed during the call; retry", conversationIDs[i])
		}
		staged.messages[i] = m
		staged.duplicates++
	}
	return staged, nil
}

// recipientRows are the columns of the staged messages that differ from one
// recipient to the next, in input order.
type recipientRows struct {
	ids             []pgtype.UUID
	conversationIDs []int64
	jobIDs          []int64
}

// filter returns the rows at the indexes for which keep is true.
func (r recipientRows) filter(keep func(i int) bool) recipientRows {
	var out recipientRows
	for i := range r.ids {
		if keep(i) {
			out.ids = append(out.ids, r.ids[i])
			out.conversationIDs = append(out.conversationIDs, r.conversationIDs[i])
			out.jobIDs = append(out.jobIDs, r.jobIDs[i])
		}
	}
	return out
}

// insertMessages inserts the messages, skipping those whose dedup key is
// held, and adds the ones it wrote to inserted.
func (c *Client) insertMessages(ctx context.Context, tx pgx.Tx, inserted map[uuid.UUID]insertedMessage,
	r recipientRows, p *stageParams, envelopeID *uuid.UUID, scheduledAt *time.Time) error {
	rows, err := tx.Query(ctx, c.queries.InsertMessages, r.ids, r.conversationIDs, r.jobIDs,
		p.templateID, p.content, envelopeID, scheduledAt)
	if err != nil {
		return fmt.Errorf("outbound: insert messages: %w", err)
	}
	var row insertedMessage
	var rowID pgtype.UUID
	_, err = pgx.ForEachRow(rows, []any{&rowID, &row.createdAt, &row.scheduledAt}, func() error {
		inserted[rowID.Bytes] = row
		return nil
	})
	if err != nil {
		return fmt.Errorf("outbound: insert messages: %w", err)
	}
	return nil
}

// insertPastWindow handles the recipients whose dedup key was held: it
// releases the keys held by messages sent longer than Config.DedupWindow ago,
// then inserts those recipients' messages again. Two statements whatever the
// number of recipients. The release and the insert are in the caller's
// transaction, and the unique index judges them: of callers racing for one
// released key, one inserts and the others find its message holding the key.
func (c *Client) insertPastWindow(ctx context.Context, tx pgx.Tx, inserted map[uuid.UUID]insertedMessage,
	r recipientRows, p *stageParams, envelopeID *uuid.UUID, scheduledAt *time.Time) error {
	taken := r.filter(func(i int) bool {
		_, ok := inserted[r.ids[i].Bytes]
		return !ok
	})
	rows, err := tx.Query(ctx, c.queries.ReleaseExpiredDedupKeys, taken.conversationIDs, p.templateID, envelopeID, c.config.DedupWindow.Seconds())
	if err != nil {
		return fmt.Errorf("outbound: release expired dedup keys: %w", err)
	}
	released, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return fmt.Errorf("outbound: release expired dedup keys: %w", err)
	}
	if len(released) == 0 {
		return nil
	}
	isReleased := make(map[int64]bool, len(released))
	for _, id := range released {
		isReleased[id] = true
	}
	again := taken.filter(func(i int) bool { return isReleased[taken.conversationIDs[i]] })
	return c.insertMessages(ctx, tx, inserted, again, p, envelopeID, scheduledAt)
}

// jobIDsByMessage returns the id of each message's job, in the order of
// messageIDs. River returns inserted jobs in input order but does not promise
// it, so the order is checked, and the args are decoded only if it differs.
func jobIDsByMessage(jobs []*rivertype.JobInsertResult, messageIDs []uuid.UUID) ([]int64, error) {
	if len(jobs) != len(messageIDs) {
		return nil, fmt.Errorf("outbound: insert delivery jobs: %d jobs for %d messages", len(jobs), len(messageIDs))
	}
	ids := make([]int64, len(jobs))
	inOrder := true
	for i, job := range jobs {
		ids[i] = job.Job.ID
		if !argsCarryMessage(job.Job.EncodedArgs, messageIDs[i]) {
			inOrder = false
			break
		}
	}
	if inOrder {
		return ids, nil
	}
	byMessage := make(map[uuid.UUID]int64, len(jobs))
	for _, job := range jobs {
		var args DeliveryArgs
		if err := json.Unmarshal(job.Job.EncodedArgs, &args); err != nil {
			return nil, fmt.Errorf("outbound: read delivery job args: %w", err)
		}
		byMessage[args.MessageID] = job.Job.ID
	}
	for i, id := range messageIDs {
		jobID, ok := byMessage[id]
		if !ok {
			return nil, fmt.Errorf("outbound: no delivery job was inserted for message %s", id)
		}
		ids[i] = jobID
	}
	return ids, nil
}

// argsCarryMessage reports whether encoded delivery args name the message. It
// searches for the quoted id rather than decoding the JSON: only message_id
// holds this id, and Postgres' jsonb output may reorder keys and add spaces.
func argsCarryMessage(encodedArgs []byte, messageID uuid.UUID) bool {
	return bytes.Contains(encodedArgs, []byte(`"`+messageID.String()+`"`))
}
