package outboundtype

import "github.com/google/uuid"

// DeliveryJobKind is the River job kind of delivery jobs.
const DeliveryJobKind = "outbound_delivery"

// DeliveryArgs are the River job args of a message's delivery job: the
// contract between a trigger, which inserts the job, and the worker. All four
// fields are always present; BulkEnvelopeID is null for a message triggered
// without an envelope.
type DeliveryArgs struct {
	MessageID      uuid.UUID  `json:"message_id"`
	ConversationID int64      `json:"conversation_id"`
	TemplateID     string     `json:"template_id"`
	BulkEnvelopeID *uuid.UUID `json:"bulk_envelope_id"`
}

// Kind implements river.JobArgs.
func (DeliveryArgs) Kind() string { return DeliveryJobKind }

// ReconcileJobKind is the River job kind of the periodic reconcile job.
const ReconcileJobKind = "outbound_reconcile"

// ReconcileArgs are the (empty) args of the periodic reconcile job.
type ReconcileArgs struct{}

// Kind implements river.JobArgs.
func (ReconcileArgs) Kind() string { return ReconcileJobKind }

// PruneJobKind is the River job kind of the periodic prune job.
const PruneJobKind = "outbound_prune"

// PruneArgs are the (empty) args of the periodic prune job.
type PruneArgs struct{}

// Kind implements river.JobArgs.
func (PruneArgs) Kind() string { return PruneJobKind }
