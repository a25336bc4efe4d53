/*
Package outbound triggers outbound support messages for conversations, one at
a time or in bulk, durably and at most once per dedup key, on PostgreSQL with
pgx and River.

A host service calls [Client.Trigger] from a handler ("send the recovery
follow-up to conversation 42"), or [Client.BulkTrigger] for an operator's inbox
selection ("send this rendered body to these 25 conversations"). Each call
writes its message rows and their River delivery jobs in one transaction; a
River worker later hands each message to the host's [Notifier] and records the
outcome on the row.

# Getting started

Migrate the library's tables (and River's) once, then make a client:

	// A River of the library's own beside its tables; a host that already
	// runs River names River's schema instead ("public" by default).
	if err := outbound.Migrate(ctx, pool, &outbound.MigrateOpts{RiverSchema: outbound.DefaultSchema}); err != nil {
		// handle error
	}
	client, err := outbound.New(pool, &outbound.Config{})
	if err != nil {
		// handle error
	}
	res, err := client.Trigger(ctx, 42, &outbound.TriggerOpts{TemplateID: "recovery"})

A nil or zero Config means defaults: tables in the "cairnloop" schema, River's
tables beside them, a cap of 25 recipients per bulk, the "outbound" queue.
[Migrate] without RiverSchema puts River's tables beside the library's too,
unless River's tables already exist in the connection's search_path: it then
refuses, naming them, rather than make a second River beside the host's.

A client checks on its first call that touches the database that the schema
is migrated to the version it knows; if not, the call fails with
[ErrSchemaMismatch] and says what to do (run [Migrate], or upgrade the
library). [Migrate] needs one connection at a time and no session state, so
it works on a pool of one connection and through PgBouncer in transaction
pooling mode (with pgx's QueryExecModeCacheDescribe or QueryExecModeExec, and
Config.PollOnly for Start's River client).

# Transactions

Every call that writes messages or envelopes has a Tx variant that works
inside the caller's pgx transaction ([Client.TriggerTx],
[Client.BulkTriggerTx], [Client.CancelMessageTx], [Client.CancelEnvelopeTx]),
so a host can commit its own changes and the outbound ones atomically:

	tx, err := pool.Begin(ctx)
	...
	if _, err := client.TriggerTx(ctx, tx, conversationID, opts); err != nil {
		// handle error; the call's own writes are already undone
	}
	err = tx.Commit(ctx) // message and job become visible with the host's rows

A Tx call that fails has undone its own writes (it works under a savepoint),
and the caller's transaction stays usable. Maintenance has no Tx variant, by
design: [Migrate] takes a lock per step, and [Client.Reconcile] and
[Client.Prune] work in bounded batches, each a transaction of its own.

[Client.Trigger] and [Client.BulkTrigger] share one primitive that stages the
rows of N recipients with a constant number of statements: one River
InsertManyTx for the jobs and one multi-row insert for the messages.

# Bulk triggers and the cap

[Client.BulkTrigger] writes a durable envelope (template, the rendered body as
sent, the recipients in order, the cap in force, who asked) and one message and
job per recipient. A bulk larger than [Client.MaxBatchSize] is refused with an
error matching [ErrBatchTooLarge]; the refusal is itself recorded as an
envelope with status refused_cap_exceeded, in a transaction of its own so that
it survives the caller's rollback, within 2 seconds whatever the
caller's context. A refusal costs little however long the list: the envelope
keeps the count, the first [MaxRefusedRecipientsKept] ids and a digest of the
rest. [Client.SetMaxBatchSize] changes the cap while running.

Text inputs have byte limits: [MaxTemplateIDBytes], [MaxActorBytes], and
Config.MaxContentBytes for the body. Longer is [ErrInvalidArgument].

# Each recipient its own

BulkTriggerOpts.Recipients gives recipients, by conversation id, their own
rendered body, host data and time ([BulkRecipient]), still in one envelope,
one cap check and one transaction, with the statements of a bulk with one
body. The library snapshots what the host rendered and never renders again.
Host data (TriggerOpts.Data, BulkTriggerOpts.Data, a recipient's Data laid
over the bulk's) is a JSON object the Notifier receives as Message.Data, so
that it need not look up the address on every attempt; RateLimitKey sees it
too. A message triggered without a body is a template reference:
Message.Rendered is false, and the Notifier renders by TemplateID rather
than sending Content, the original library's placeholder, to a customer.

# Dedup and idempotency

At most one message holds each dedup key (conversation, template, envelope),
enforced by a partial unique index, so concurrent callers race safely: one
writes, the others get TriggerResult.Duplicate with the winner's message. A
message holds its key until it is final, and a sent one for
Config.DedupWindow (24 hours by default) after it was sent; cancelled and
discarded messages free their key. BulkTriggerOpts.EnvelopeID is
an idempotency key for retries: the same request replays the stored result
(BulkTriggerResult.Replayed); a different request with the same id is
[ErrIdempotencyConflict].

# Delivery

The delivery worker hands each message to Config.Notifier, once per attempt:

	client, err := outbound.New(pool, &outbound.Config{
		Notifier: outbound.NotifierFunc(func(ctx context.Context, msg *outbound.Message) error {
			return mailer.Send(ctx, msg.ID.String(), msg.ConversationID, msg.Content)
		}),
	})
	...
	if err := client.Start(ctx); err != nil { // or client.ConfigureRiver(&riverConfig)
		// handle error
	}
	defer client.Stop(ctx)

Delivery is a lease, as River's own fetch is: an attempt claims the message
in one short committed update (status delivering), calls the Notifier with
nothing open (no transaction, no row lock, no pool connection), then records
the result with an update that only the claim's holder can make. So a slow
provider never holds the database, and Config.MaxWorkers (100 by default)
does not depend on the pool's size.

Success marks the message sent, in the same statement that completes its
River job. An error, a panic or running past Config.NotifyTimeout marks it
failed, and River retries it with backoff; when the last of
Config.MaxAttempts fails, the message is discarded. A Notifier returns
[Permanent] to discard the message at once, [RetryAfter] to choose when
the next attempt comes, and [RateLimited] when the provider refused it for
its rate. Without a Notifier, deliveries are no-ops that mark messages sent.

The guarantee is at least once, with a stable message id: an attempt whose
result could not be recorded (its process died, or lost the database for
longer than the record's retries) is made again with the same Message.ID,
which the Notifier passes to its provider as an idempotency key. Two calls
for one message never run at once: a Notifier that ignores its context past
NotifyTimeout is waited for, its claim renewed while it runs, and counts
against MaxWorkers until it returns. A dead worker's message is attempted
again within about NotifyTimeout + 70s at the defaults.

# Rate limits

Config.RateLimits limits how fast Notifier calls start, per key
(Config.RateLimitKey chooses a message's, stored with it when it is
triggered), across every process working the schema: the limit's state is
a row in PostgreSQL, moved by the claim's own statement with the database's
clock. A message held back by its limit parks: it stays pending
(cancellable), spends no attempt and holds no worker and no slot; a bulk's
messages beyond their key's burst park in the trigger's transaction. When a
slot comes free, a dispatcher (one per key in each process) releases the
key's most urgent parked message, by priority and then a fair order that
shares the key between bulks, and wakes its job. A Notifier that returns
[RateLimited] pauses the key for every process, without spending an attempt,
for at most Config.MaxRateLimitedPause; [Client.LiftRateLimitPause] ends a
pause.

[Client.Start] runs an embedded River client on Config.Queue;
[Client.ConfigureRiver] adds the library's workers, queue and periodic jobs to
a host's own River config instead, and refuses one whose Schema is not
Config.RiverSchema, where the library's jobs go ([Client.AddWorkers] is its
low-level form). Several processes may work one database; River hands each job
to one of them at a time. [Client.Reconcile], run periodically by Start (and by
a host's client through [Client.PeriodicJobs]), settles messages whose job ended
without recording a result, so none holds its dedup key for ever; one whose
last call may have succeeded becomes unconfirmed and keeps its key.

# Priority, schedule and attempts

River works a queue's available jobs by priority, 1 first, then by
scheduled time. A [Client.Trigger]'s delivery job gets
[DefaultTriggerPriority] (1) and a [Client.BulkTrigger]'s recipients
[DefaultBulkTriggerPriority] (2), so that a one-to-one follow-up is
delivered before bulk recipients queued ahead of it: a bulk never delays
it. TriggerOpts.Priority and BulkTriggerOpts.Priority (1 to 4) override
the defaults. ScheduledAt delays delivery until an absolute time (one
already past means now), as ScheduleIn does by a duration; setting both is
[ErrInvalidArgument]. MaxAttempts overrides Config.MaxAttempts for the
call's messages.

# Final outcomes

[Client.Subscribe] gives a channel of each message's final outcome
([Event]: sent, discarded, cancelled or unconfirmed, with the message's id
and an [EventReason]), as River's Client.Subscribe does for jobs:

	events, unsubscribe, err := client.Subscribe(outbound.EventKindMessageDiscarded)
	if err != nil {
		// handle error: no kind, or one that is not an EventKind
	}
	defer unsubscribe()
	for ev := range events {
		alert(ev.ConversationID, ev.Reason, ev.LastError)
	}

Events are best-effort: sent without blocking into a bounded buffer after
the outcome commits, so that a slow subscriber never holds delivery up; one
that finds the buffer full is dropped, counted in outbound.subscription.dropped_events
and logged, and a process can die between a commit and its event. A host
that needs every outcome reads the rows, with [Client.ListMessages] or
[Client.Message]; events tell it promptly, the rows for certain.

# Retention

Nothing is deleted unless asked. [Client.Prune] deletes final messages,
emptied and refused envelopes, and optionally audit events, older than an
age, in bounded batches; Config.Retention makes Start run it hourly.

# Cancel and progress

[Client.CancelMessage] and [Client.CancelEnvelope] cancel undelivered
messages and their jobs in one transaction (or the caller's, with their Tx
variants), and never wait for a Notifier. A
message in flight cannot be cancelled ([ErrNotCancellable], "a delivery is in
progress"); CancelEnvelope marks such messages so that an attempt that fails
ends them cancelled rather than retried (or discarded, when the failure is
for good). A message ends sent or cancelled, never both; a cancelled message
is never handed to the Notifier afterwards and frees its dedup key. A
[CancelOpts] names the Actor, whom the rows keep as CancelledBy and the
[Auditor] receives in an [AuditActionCancel] event inside the cancel's
transaction. [Client.EnvelopeProgress] counts an envelope's messages by
status; [Envelope].Outcome says whether its bulk is over, and how it went.

# Auditing

An [Auditor] receives an [AuditEvent] inside every trigger's and cancel's
transaction; an error from it rolls the call back. [NoopAuditor] is the default;
[TableAuditor] stores events in the audit_events table.

# Reading

[Client.Message] and [Client.Envelope] read one row. [Client.ListMessages]
pages through messages, newest first, by conversation, envelope and status;
[Client.ListEnvelopes] pages through envelopes, optionally of one status or
outcome. Lists read no bodies unless asked (IncludeContent, IncludeBody), and
[Client.MessagePreview] and [Client.EnvelopePreview] read a body's start: a
body may be 64 MiB. Both lists page by cursor, as River's JobList does: a page's NextCursor is the next
page's After, and marshals to text for a page link. Every list is read from
an index, however deep the page.

# Telemetry

Spans (outbound.trigger, outbound.bulk_trigger, outbound.deliver) carry
conversation, template, envelope and message ids for tracing. Metrics carry
only attributes from fixed vocabularies, never an id, an actor or a body:

  - outbound.trigger.messages counts the messages triggers asked for by
    what became of each (triggered, staged in the caller's transaction,
    duplicate, replayed, refused, failed), and a failure also by reason
    (invalid_argument, database_error, auditor_error, ...);
  - outbound.delivery.attempts counts attempts by outcome and reason;
  - outbound.trigger.duration, outbound.bulk_trigger.duration and
    outbound.delivery.duration are histograms in seconds, with buckets from
    5 ms to 10 s (to 60 s for deliveries), as OpenTelemetry's HTTP
    conventions have;
  - outbound.message.duration is a histogram of the time from a message's
    trigger to the final status an attempt gave it, by that status;
  - outbound.message.backlog is a gauge of the backlog by status (pending,
    delivering, failed), and outbound.message.oldest_pending.age the age in
    seconds of the oldest due pending message, which rises while no worker
    delivers; both are read with one query over an index at most once
    every 5 seconds;
  - outbound.subscription.dropped_events counts the [Event]s a full
    subscription buffer dropped, by kind.

Providers default to the OpenTelemetry globals.

# Dashboard

Package [github.com/cairnloop/outbound/outboundui] is an http.Handler to mount
beside River's riverui: bulk envelopes with their progress by status, their
messages, and cancel buttons, rendered on the server without JavaScript.

# Testing

Package [github.com/cairnloop/outbound/outboundtest] asserts, in a host's own
tests, that its code triggered the right messages, and runs a message's
delivery inline, as River's rivertest does for jobs.

# Shared types

The types every part of the library shares (the message and envelope
records, statuses, events, errors, the Notifier and Auditor contracts,
RateLimit and the job args) are defined in package
[github.com/cairnloop/outbound/outboundtype], a leaf that imports nothing of
the library's, as River's rivertype is, and re-exported here by alias:
outbound.Message and outboundtype.Message are one type, and a host needs
only this package.
*/
package outbound
