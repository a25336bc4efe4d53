package outbound

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"time"

	"github.com/cairnloop/outbound/internal/dbutil"
	"github.com/cairnloop/outbound/internal/hostdata"
	"github.com/cairnloop/outbound/internal/sqltext"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// stageParams is what every recipient of one call shares, and what each
// has of its own.
type stageParams struct {
	templateID string
	content    string
	// rendered says whether content, and each recipient's own, is a body
	// the caller rendered.
	rendered bool
	// data is the call's host data as JSON, nil for none.
	data           []byte
	bulkEnvelopeID uuid.UUID
	jobs           jobOptions
	// each is every recipient's own parts, in input order; nil when no
	// recipient has any.
	each []recipientParts
}

// stagedTrigger is what buildTriggerTx staged.
type stagedTrigger struct {
	// messages has one message per recipient, in input order: the row just
	// written, or the live row that already held the recipient's dedup key.
	messages []*Message
	// duplicates counts the recipients whose key was already held.
	duplicates int
}

// buildTriggerTx stages one pending message and one River delivery job per
// conversation inside tx, which it neither commits nor rolls back. It is the
// primitive under both Trigger and BulkTrigger.
//
// The statement count does not grow with the number of recipients: one
// InsertManyTx for the jobs, one multi-row insert for the messages, and, only
// when some dedup keys were taken, one release of expired keys, one read of
// the holders and one delete of the jobs that turned out unneeded; with
// rate limits configured, one more stores the keys (writing each limited
// message and parked job again). Jobs go first so that each message row is
// written once, with its job id; message ids are made here so that job args
// can carry them before the rows exist.
func (c *Client) buildTriggerTx(ctx context.Context, tx pgx.Tx, conversationIDs []int64, p *stageParams) (*stagedTrigger, error) {
	// The batch stays on the stack: the steps borrow it, none keeps it.
	var b triggerBatch
	if err := b.init(conversationIDs, p); err != nil {
		return nil, err
	}
	if err := c.insertJobs(ctx, tx, &b); err != nil {
		return nil, err
	}
	written := make(map[uuid.UUID]insertedMessage, len(conversationIDs))
	if err := c.insertMessages(ctx, tx, &b, b.recipients, written); err != nil {
		return nil, err
	}
	if len(written) < len(conversationIDs) && c.config.DedupWindow >= 0 {
		if err := c.insertPastWindow(ctx, tx, &b, written); err != nil {
			return nil, err
		}
	}
	staged := b.stage(written)
	if staged.duplicates > 0 {
		if err := c.stageDuplicates(ctx, tx, &b, staged); err != nil {
			return nil, err
		}
	}
	if len(c.config.RateLimits) > 0 {
		// Rate-limited messages have their key stored, and a bulk's beyond
		// its key's burst park, in this same transaction.
		if err := c.delivery.PlaceTriggered(ctx, tx, b.newMessages(staged), b.params.jobs.priority); err != nil {
			return nil, fmt.Errorf("outbound: %w", err)
		}
	}
	return staged, nil
}

// newMessages are the messages this call wrote, without the live ones that
// held a recipient's dedup key.
func (b *triggerBatch) newMessages(staged *stagedTrigger) []*Message {
	out := make([]*Message, 0, len(staged.messages)-staged.duplicates)
	for i, m := range staged.messages {
		if m != nil && m.ID == b.messageIDs[i] {
			out = append(out, m)
		}
	}
	return out
}

// triggerBatch is one call's recipients as they are staged.
type triggerBatch struct {
	params *stageParams
	// envelopeID is the envelope id as a column value: nil for none.
	envelopeID *uuid.UUID
	// scheduledAt is when delivery may start: nil for now.
	scheduledAt *time.Time
	// metadata is every new message's metadata, made once and copied into
	// each message; metadataLeft counts the messages still to take it.
	metadata     map[string]any
	metadataLeft int
	// data is the call's data decoded, which each new message without data
	// of its own gets a copy of.
	data map[string]any
	// recipients are the per-recipient columns, in input order; their job
	// ids are filled in by insertJobs.
	recipients recipientRows
	messageIDs []uuid.UUID
}

// recipientRows are the columns of the staged messages that differ from one
// recipient to the next.
type recipientRows struct {
	// ids are the message ids as pgx sends uuids in binary: uuid.UUID goes
	// through its driver.Valuer, as text parsed back.
	ids             []pgtype.UUID
	conversationIDs []int64
	jobIDs          []int64
	// contents, data and scheduledAts are each recipient's own, invalid
	// where it has none; all empty when no recipient has any.
	contents     []pgtype.Text
	data         []pgtype.Text
	scheduledAts []pgtype.Timestamptz
}

// insertedMessage is what InsertMessages returns of a row beyond its id.
type insertedMessage struct {
	createdAt, scheduledAt time.Time
}

// init makes the ids and shared values of one call's messages.
func (b *triggerBatch) init(conversationIDs []int64, p *stageParams) error {
	*b = triggerBatch{
		params:     p,
		envelopeID: dbutil.NullIfNilUUID(p.bulkEnvelopeID),
		metadata:   newMessageMetadata(p.templateID, p.bulkEnvelopeID),
		data:       hostdata.Decode(p.data),
		recipients: recipientRows{
			ids:             make([]pgtype.UUID, len(conversationIDs)),
			conversationIDs: conversationIDs,
		},
		messageIDs: make([]uuid.UUID, len(conversationIDs)),
	}
	if !p.jobs.startAt.IsZero() {
		b.scheduledAt = &p.jobs.startAt
	}
	for i := range conversationIDs {
		id, err := uuid.NewV7()
		if err != nil {
			return fmt.Errorf("outbound: message id: %w", err)
		}
		b.messageIDs[i] = id
		b.recipients.ids[i] = dbutil.PgUUID(id)
	}
	if p.each != nil {
		r := &b.recipients
		r.contents = make([]pgtype.Text, len(p.each))
		r.data = make([]pgtype.Text, len(p.each))
		r.scheduledAts = make([]pgtype.Timestamptz, len(p.each))
		for i, own := range p.each {
			if own.content != nil {
				r.contents[i] = pgtype.Text{String: *own.content, Valid: true}
			}
			if own.data != nil {
				r.data[i] = pgtype.Text{String: string(own.data), Valid: true}
			}
			if !own.scheduledAt.IsZero() {
				r.scheduledAts[i] = pgtype.Timestamptz{Time: own.scheduledAt, Valid: true}
			}
		}
	}
	return nil
}

// newMessageMetadata is a new message's metadata, which keeps the keys of
// the original library for its consumers: the metadata InsertMessages builds
// in SQL, as TestStagedMessagesMatchRows checks. The statements that change a
// message's status update its "status" key too (sqltext's setStatus).
func newMessageMetadata(templateID string, envelopeID uuid.UUID) map[string]any {
	var envelope any
	if envelopeID != uuid.Nil {
		envelope = envelopeID.String()
	}
	return map[string]any{
		"template_id":      templateID,
		"status":           string(MessageStatusPending),
		"bulk_envelope_id": envelope,
	}
}

// insertJobs inserts one delivery job per recipient and records their ids.
func (c *Client) insertJobs(ctx context.Context, tx pgx.Tx, b *triggerBatch) error {
	insertOpts := &river.InsertOpts{Queue: c.config.Queue, Priority: b.params.jobs.priority, MaxAttempts: b.params.jobs.maxAttempts}
	if b.scheduledAt != nil {
		insertOpts.ScheduledAt = *b.scheduledAt
	}
	params := make([]river.InsertManyParams, len(b.messageIDs))
	now := time.Now()
	for i, id := range b.messageIDs {
		params[i] = river.InsertManyParams{
			Args: DeliveryArgs{
				MessageID:      id,
				ConversationID: b.recipients.conversationIDs[i],
				TemplateID:     b.params.templateID,
				BulkEnvelopeID: b.envelopeID,
			},
			InsertOpts: insertOpts,
		}
		if own := b.recipients.scheduledAt(i); !own.IsZero() {
			// A recipient's own time: a job of its own options. A time
			// already past means now: no ScheduledAt, so that River makes
			// the job available at once rather than scheduled.
			opts := *insertOpts
			opts.ScheduledAt = time.Time{}
			if own.After(now) {
				opts.ScheduledAt = own
			}
			params[i].InsertOpts = &opts
		}
	}
	jobs, err := c.river.InsertManyTx(ctx, tx, params)
	if err != nil {
		return fmt.Errorf("outbound: insert delivery jobs: %w", err)
	}
	b.recipients.jobIDs, err = jobIDsByMessage(jobs, b.messageIDs)
	return err
}

// insertMessages inserts the messages of rows, skipping those whose dedup key
// is held, and adds the ones it wrote to written.
func (c *Client) insertMessages(ctx context.Context, tx pgx.Tx, b *triggerBatch, rows recipientRows, written map[uuid.UUID]insertedMessage) error {
	args := sqltext.InsertMessagesArgs{
		IDs:             rows.ids,
		ConversationIDs: rows.conversationIDs,
		JobIDs:          rows.jobIDs,
		TemplateID:      b.params.templateID,
		Content:         b.params.content,
		BulkEnvelopeID:  b.envelopeID,
		ScheduledAt:     b.scheduledAt,
		Rendered:        b.params.rendered,
		Contents:        rows.contents,
		EachData:        rows.data,
		ScheduledAts:    rows.scheduledAts,
	}
	if b.params.data != nil {
		data := string(b.params.data)
		args.Data = &data
	}
	result, err := tx.Query(ctx, c.queries.InsertMessages.SQL, args.Args()...)
	if err != nil {
		return fmt.Errorf("outbound: insert messages: %w", err)
	}
	var (
		row   insertedMessage
		rowID pgtype.UUID
	)
	_, err = pgx.ForEachRow(result, []any{&rowID, &row.createdAt, &row.scheduledAt}, func() error {
		written[rowID.Bytes] = row
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
func (c *Client) insertPastWindow(ctx context.Context, tx pgx.Tx, b *triggerBatch, written map[uuid.UUID]insertedMessage) error {
	taken := b.recipients.filter(func(i int) bool {
		_, ok := written[b.messageIDs[i]]
		return !ok
	})
	rows, err := tx.Query(ctx, c.queries.ReleaseExpiredDedupKeys, taken.conversationIDs, b.params.templateID, b.envelopeID, c.config.DedupWindow.Seconds())
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
	return c.insertMessages(ctx, tx, b, again, written)
}

// filter returns the rows at the indexes for which keep is true.
func (r recipientRows) filter(keep func(i int) bool) recipientRows {
	var out recipientRows
	for i := range r.ids {
		if keep(i) {
			out.ids = append(out.ids, r.ids[i])
			out.conversationIDs = append(out.conversationIDs, r.conversationIDs[i])
			out.jobIDs = append(out.jobIDs, r.jobIDs[i])
			if r.contents != nil {
				out.contents = append(out.contents, r.contents[i])
				out.data = append(out.data, r.data[i])
				out.scheduledAts = append(out.scheduledAts, r.scheduledAts[i])
			}
		}
	}
	return out
}

// scheduledAt is recipient i's own time, the zero time for none.
func (r *recipientRows) scheduledAt(i int) time.Time {
	if r.scheduledAts == nil {
		return time.Time{}
	}
	return r.scheduledAts[i].Time
}

// stage returns the messages written, in input order, with a nil in the
// place of each recipient whose dedup key was held, which it counts as a
// duplicate.
func (b *triggerBatch) stage(written map[uuid.UUID]insertedMessage) *stagedTrigger {
	staged := &stagedTrigger{messages: make([]*Message, len(b.messageIDs))}
	// One allocation for all new messages rather than one each.
	messages := make([]Message, len(written))
	b.metadataLeft = len(written)
	for i, id := range b.messageIDs {
		row, ok := written[id]
		if !ok {
			staged.duplicates++
			continue
		}
		m := &messages[0]
		messages = messages[1:]
		b.fillMessage(m, i, row)
		staged.messages[i] = m
	}
	return staged
}

// fillMessage sets m to the row that InsertMessages wrote for recipient i:
// the batch's values, the column defaults of migrations/001, and the two
// times the insert returned. It is the one place a new Message is made; a
// test checks that it equals the row read back.
func (b *triggerBatch) fillMessage(m *Message, i int, row insertedMessage) {
	content, data := b.params.content, b.data
	if b.params.each != nil {
		own := b.params.each[i]
		if own.content != nil {
			content = *own.content
		}
		if own.data != nil {
			// As the insert lays it over the call's, key by key.
			merged := maps.Clone(data)
			if merged == nil {
				merged = make(map[string]any)
			}
			maps.Copy(merged, hostdata.Decode(own.data))
			data = merged
		} else if data != nil {
			data = maps.Clone(data)
		}
	} else if data != nil {
		data = maps.Clone(data)
	}
	*m = Message{
		ID:             b.messageIDs[i],
		ConversationID: b.recipients.conversationIDs[i],
		Role:           RoleSystemOutbound,
		TemplateID:     b.params.templateID,
		Content:        content,
		ContentBytes:   len(content),
		Rendered:       b.params.rendered,
		Data:           data,
		Status:         MessageStatusPending,
		BulkEnvelopeID: b.params.bulkEnvelopeID,
		Metadata:       b.takeMetadata(),
		JobID:          b.recipients.jobIDs[i],
		ScheduledAt:    row.scheduledAt,
		CreatedAt:      row.createdAt,
		UpdatedAt:      row.createdAt,
	}
}

// takeMetadata returns a new message's metadata: a copy of the batch's, or,
// once it is the last copy needed, the batch's own map.
func (b *triggerBatch) takeMetadata() map[string]any {
	b.metadataLeft--
	if b.metadataLeft == 0 {
		return b.metadata
	}
	return maps.Clone(b.metadata)
}

// holderRounds bounds how often stageDuplicates inserts again the messages
// whose key's holder ended between the insert and the read of the holders.
// Each round needs another caller to take the key and free it again between
// two statements of this one's.
const holderRounds = 8

// stageDuplicates fills in, for each recipient whose dedup key was held, the
// live message that holds it, and deletes the jobs staged for those
// recipients, so that none is orphaned. A holder may have been cancelled or
// discarded since the insert found the key held: the key is free then, and
// the recipient's message is inserted after all, as if it had been free
// from the start.
func (c *Client) stageDuplicates(ctx context.Context, tx pgx.Tx, b *triggerBatch, staged *stagedTrigger) error {
	isDuplicate := make([]bool, len(b.messageIDs))
	unresolved := func(i int) bool { return staged.messages[i] == nil && !isDuplicate[i] }
	for round := 0; ; round++ {
		taken := b.recipients.filter(unresolved)
		rows, err := tx.Query(ctx, c.queries.SelectLiveMessagesByKey, taken.conversationIDs, b.params.templateID, b.envelopeID)
		if err != nil {
			return fmt.Errorf("outbound: read existing messages: %w", err)
		}
		existing, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*Message, error) { return dbutil.ScanMessage(row) })
		if err != nil {
			return fmt.Errorf("outbound: read existing messages: %w", err)
		}
		byConversation := make(map[int64]*Message, len(existing))
		for _, m := range existing {
			byConversation[m.ConversationID] = m
		}
		for i, conversationID := range b.recipients.conversationIDs {
			if m, ok := byConversation[conversationID]; ok && unresolved(i) {
				staged.messages[i], isDuplicate[i] = m, true
			}
		}
		freed := b.recipients.filter(unresolved)
		if len(freed.ids) == 0 {
			break
		}
		if round == holderRounds {
			return fmt.Errorf("outbound: dedup key of conversation %d was taken and freed %d times during the call", freed.conversationIDs[0], holderRounds)
		}
		if err := c.insertFreed(ctx, tx, b, freed, staged); err != nil {
			return err
		}
	}
	staged.duplicates = 0
	for _, dup := range isDuplicate {
		if dup {
			staged.duplicates++
		}
	}
	if staged.duplicates == 0 {
		return nil
	}
	unused := b.recipients.filter(func(i int) bool { return isDuplicate[i] })
	if err := deleteUnusedJobs(ctx, tx, c.queries, unused.jobIDs); err != nil {
		return fmt.Errorf("outbound: delete unneeded jobs: %w", err)
	}
	return nil
}

// insertFreed inserts the messages of recipients whose key's holder ended
// after the first insert, and stages those it wrote. One whose key was taken
// again meanwhile stays unstaged, for the next round's read.
func (c *Client) insertFreed(ctx context.Context, tx pgx.Tx, b *triggerBatch, freed recipientRows, staged *stagedTrigger) error {
	written := make(map[uuid.UUID]insertedMessage, len(freed.ids))
	if err := c.insertMessages(ctx, tx, b, freed, written); err != nil {
		return err
	}
	// The batch's metadata went to the messages staged before: these get
	// their own.
	b.metadata = newMessageMetadata(b.params.templateID, b.params.bulkEnvelopeID)
	b.metadataLeft = len(written)
	for i, id := range b.messageIDs {
		if row, ok := written[id]; ok {
			m := new(Message)
			b.fillMessage(m, i, row)
			staged.messages[i] = m
		}
	}
	return nil
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
