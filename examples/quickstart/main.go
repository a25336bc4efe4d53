// Command quickstart shows the outbound library end to end: it migrates,
// triggers a bulk of 25, a refused bulk of 26, then one message and a
// duplicate, and starts the delivery worker with a notifier that prints each
// delivery (one recipient fails once and succeeds on retry). The one message,
// triggered last, is delivered first: a one-to-one Trigger outranks bulk
// recipients. It waits for every final outcome through Subscribe, then prints
// every message's final status and what the database holds.
//
//	go run ./examples/quickstart
//
// With DATABASE_URL unset it starts a throwaway PostgreSQL from the machine's
// server binaries and removes it at the end; with DATABASE_URL set it uses that
// database and drops the schema it made.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cairnloop/outbound"
	"github.com/cairnloop/outbound/internal/devpg"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/rivertype"
)

const schema = "outbound_quickstart"

func main() {
	// Ctrl-C cancels the context, so the deferred clean-up still runs.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Stdout)
	stop()
	if err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, out io.Writer) error {
	where := "DATABASE_URL"
	if os.Getenv("DATABASE_URL") == "" {
		where = "a throwaway PostgreSQL started for this run"
	}
	url, stop, err := devpg.URLOrStart(ctx)
	if err != nil {
		return err
	}
	defer stop()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return err
	}
	defer pool.Close()
	defer pool.Exec(context.WithoutCancel(ctx), "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE")

	fmt.Fprintf(out, "outbound quickstart on %s\n\n", where)
	if err := outbound.Migrate(ctx, pool, &outbound.MigrateOpts{Schema: schema, RiverSchema: schema}); err != nil {
		return err
	}
	audit, err := outbound.NewTableAuditor(pool, schema)
	if err != nil {
		return err
	}
	client, err := outbound.New(pool, &outbound.Config{
		Schema:   schema,
		Auditor:  audit,
		Notifier: &printingNotifier{out: out, flaky: flakyConversation},
		// Retry a failed delivery after a second rather than River's
		// default backoff, so the quickstart ends quickly.
		RetryPolicy: retryAfter(time.Second),
		// One delivery at a time, fetched promptly, so that the order of
		// deliveries shows River's priorities.
		MaxWorkers:    1,
		FetchCooldown: 10 * time.Millisecond,
	})
	if err != nil {
		return err
	}

	// An inbox selection of 25, exactly the default cap, each customer
	// greeted by name: the host renders each body, and gives each message
	// the address its notifier sends to. The library keeps what it was given.
	selection := conversationIDs(100, 25)
	recipients := make(map[int64]outbound.BulkRecipient, len(selection))
	for i, id := range selection {
		name := customerNames[i%len(customerNames)]
		recipients[id] = outbound.BulkRecipient{
			RenderedBody: fmt.Sprintf("Hi %s, the outage on ticket #%d is over. Thanks for your patience!", name, 5000+id),
			Data:         map[string]any{"email": strings.ToLower(name) + "@example.com"},
		}
	}
	bulk, err := client.BulkTrigger(ctx, selection, &outbound.BulkTriggerOpts{
		TemplateID: "outage-resolved",
		Data:       map[string]any{"channel": "email"},
		Recipients: recipients,
		Actor:      "agent:7",
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "BulkTrigger(25 conversations)  -> envelope %s, %s, %d personalised messages\n",
		bulk.Envelope.ID, bulk.Envelope.Status, len(bulk.Messages))
	first := bulk.Messages[0]
	fmt.Fprintf(out, "  e.g. conversation %d to %s: %q\n", first.ConversationID, first.Data["email"], first.Content)

	// One more than the cap: refused, and the refusal is recorded.
	_, err = client.BulkTrigger(ctx, conversationIDs(200, 26), &outbound.BulkTriggerOpts{
		TemplateID:   "outage-resolved",
		RenderedBody: "The outage is over. Thanks for your patience!",
		Actor:        "agent:7",
	})
	var tooLarge *outbound.BatchTooLargeError
	if !errors.As(err, &tooLarge) {
		return fmt.Errorf("expected a refusal, got %v", err)
	}
	fmt.Fprintf(out, "BulkTrigger(26 conversations)  -> refused: %d over cap %d, envelope %s\n",
		tooLarge.Count, tooLarge.Cap, tooLarge.EnvelopeID)

	// One message for one conversation, after the bulk: a Trigger gets
	// River's priority 1 and bulk recipients priority 2, so the worker
	// delivers it first.
	single, err := client.Trigger(ctx, 42, &outbound.TriggerOpts{TemplateID: "recovery", Actor: "agent:7"})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "Trigger(42, recovery)          -> message %s, %s, River job %d, priority %d\n",
		single.Message.ID, single.Message.Status, single.Message.JobID, outbound.DefaultTriggerPriority)

	// The same conversation and template again: a duplicate, nothing written.
	dup, err := client.Trigger(ctx, 42, &outbound.TriggerOpts{TemplateID: "recovery", Actor: "agent:7"})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "Trigger(42, recovery) again    -> duplicate=%t, same message=%t\n\n",
		dup.Duplicate, dup.Message.ID == single.Message.ID)

	// Deliver: the worker hands each pending message to the notifier.
	messages := append([]*outbound.Message{single.Message}, bulk.Messages...)
	if err := deliver(ctx, out, client, messages); err != nil {
		return err
	}
	return report(ctx, out, pool, client, audit)
}

// customerNames greet the bulk's customers.
var customerNames = []string{"Ada", "Ben", "Cleo", "Dev", "Eli"}

// flakyConversation's first delivery fails, as a provider's timeout would.
const flakyConversation = 107

// printingNotifier stands in for an email or SMS provider: it prints each
// delivery, and fails the first attempt for the flaky conversation.
type printingNotifier struct {
	mu    sync.Mutex
	out   io.Writer
	flaky int64
}

func (n *printingNotifier) OnOutboundTriggered(_ context.Context, msg *outbound.Message) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if msg.ConversationID == n.flaky && msg.Attempts == 1 {
		fmt.Fprintf(n.out, "  deliver to conversation %d (%s), attempt %d: provider timed out\n", msg.ConversationID, msg.TemplateID, msg.Attempts)
		return errors.New("provider timed out")
	}
	fmt.Fprintf(n.out, "  deliver to conversation %d (%s), attempt %d: ok\n", msg.ConversationID, msg.TemplateID, msg.Attempts)
	return nil
}

// retryAfter is a River retry policy with a fixed delay.
type retryAfter time.Duration

func (d retryAfter) NextRetry(*rivertype.JobRow) time.Time { return time.Now().Add(time.Duration(d)) }

// deliver starts the worker, hears every message's final outcome through
// Subscribe, stops the worker, and prints each message's final status as
// the database holds it.
func deliver(ctx context.Context, out io.Writer, client *outbound.Client, messages []*outbound.Message) error {
	// Subscribe before starting, so that no outcome is missed. Events are
	// best-effort (a full buffer drops them, and a process can die between
	// a commit and its event), so the statuses printed below are read back
	// from the rows, which are the record.
	events, unsubscribe, err := client.Subscribe(outbound.EventKindMessageSent, outbound.EventKindMessageDiscarded)
	if err != nil {
		return err
	}
	defer unsubscribe()

	fmt.Fprintln(out, "Starting the delivery worker, one delivery at a time:")
	if err := client.Start(ctx); err != nil {
		return err
	}
	outcomes := map[string]int{}
	for heard := 0; heard < len(messages); heard++ {
		select {
		case ev := <-events:
			outcomes[fmt.Sprintf("%s (%s)", ev.Kind, ev.Reason)]++
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(30 * time.Second):
			return fmt.Errorf("heard %d of %d final outcomes in 30s; ListMessages has them all", heard, len(messages))
		}
	}
	if err := client.Stop(ctx); err != nil {
		return err
	}
	fmt.Fprintln(out, "\nFinal outcomes heard through Subscribe:")
	for _, outcome := range slices.Sorted(maps.Keys(outcomes)) {
		fmt.Fprintf(out, "  %-30s %d\n", outcome, outcomes[outcome])
	}

	fmt.Fprintln(out, "\nFinal status of every message, read back:")
	for _, msg := range messages {
		m, err := client.Message(ctx, msg.ID)
		if err != nil {
			return err
		}
		line := fmt.Sprintf("  conversation %-4d %-16s %s after %d attempt(s)", m.ConversationID, m.TemplateID, m.Status, m.Attempts)
		if m.Attempts > 1 {
			line += " (retried)"
		}
		fmt.Fprintln(out, line)
	}
	fmt.Fprintln(out)
	return nil
}

// report prints the envelopes, the messages by status, the River jobs by
// state and the audit trail.
func report(ctx context.Context, out io.Writer, pool *pgxpool.Pool, client *outbound.Client, audit *outbound.TableAuditor) error {
	envelopes, err := client.ListEnvelopes(ctx, nil)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "Envelopes, newest first:")
	for _, e := range envelopes.Envelopes {
		line := fmt.Sprintf("  %-21s count=%-3d cap=%d requested_by=%s", e.Status, e.Count, e.EffectiveCap, e.RequestedBy)
		if e.RefusedReason != "" {
			line += fmt.Sprintf(" reason=%q", e.RefusedReason)
		}
		fmt.Fprintln(out, line)
	}

	fmt.Fprintln(out, "Messages by status:")
	if err := printCounts(ctx, out, pool, "SELECT status, count(*) FROM "+pgx.Identifier{schema, "messages"}.Sanitize()+" GROUP BY status ORDER BY status"); err != nil {
		return err
	}
	fmt.Fprintln(out, "River delivery jobs by state:")
	if err := printCounts(ctx, out, pool, "SELECT queue || '/' || state::text, count(*) FROM "+pgx.Identifier{schema, "river_job"}.Sanitize()+" WHERE kind = 'outbound_delivery' GROUP BY 1 ORDER BY 1"); err != nil {
		return err
	}

	events, err := audit.ListEvents(ctx, nil)
	if err != nil {
		return err
	}
	actions := make([]string, len(events))
	for i, e := range events {
		actions[len(events)-1-i] = e.Action
	}
	fmt.Fprintf(out, "Audit trail, oldest first: %s\n", strings.Join(actions, ", "))
	fmt.Fprintln(out, "\nDone; the quickstart's schema is dropped on exit.")
	return nil
}

func printCounts(ctx context.Context, out io.Writer, pool *pgxpool.Pool, query string) error {
	rows, err := pool.Query(ctx, query)
	if err != nil {
		return err
	}
	var (
		key   string
		count int
	)
	_, err = pgx.ForEachRow(rows, []any{&key, &count}, func() error {
		fmt.Fprintf(out, "  %-21s %d\n", key, count)
		return nil
	})
	return err
}

func conversationIDs(first int64, n int) []int64 {
	ids := make([]int64, n)
	for i := range ids {
		ids[i] = first + int64(i)
	}
	return ids
}
