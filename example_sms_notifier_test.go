package outbound_test

import (
	"context"
	"fmt"
	"log"
	"slices"
	"sync"

	"github.com/cairnloop/outbound"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Example_smsNotifier sends a personalised bulk by SMS: each recipient gets
// the body rendered for it, and the notifier reads the phone number from the
// message's host data, with no lookup. A message triggered without a body is
// a template reference, which the notifier renders by its template id
// rather than texting the reference to a customer.
func Example_smsNotifier() {
	ctx := context.Background()

	pool, err := pgxpool.New(ctx, exampleDatabaseURL())
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	schema := exampleSchema() // an application would keep the default, "cairnloop"
	defer dropExampleSchema(pool, schema)
	if err := outbound.Migrate(ctx, pool, &outbound.MigrateOpts{Schema: schema}); err != nil {
		log.Fatal(err)
	}

	// sms stands in for an SMS provider's client.
	var (
		mu    sync.Mutex
		texts []string
	)
	sms := func(to, body string) {
		mu.Lock()
		defer mu.Unlock()
		texts = append(texts, fmt.Sprintf("to %s: %s", to, body))
	}
	notifier := outbound.NotifierFunc(func(ctx context.Context, msg *outbound.Message) error {
		to, ok := msg.Data["phone"].(string)
		if !ok {
			return outbound.Permanent(fmt.Errorf("message %s has no phone number", msg.ID))
		}
		body := msg.Content
		if !msg.Rendered {
			body = renderTemplate(msg.TemplateID, msg.Data)
		}
		sms(to, body)
		return nil
	})
	client, err := outbound.New(pool, &outbound.Config{Schema: schema, Notifier: notifier})
	if err != nil {
		log.Fatal(err)
	}
	events, unsubscribe, err := client.Subscribe(outbound.EventKindMessageSent)
	if err != nil {
		log.Fatal(err)
	}
	defer unsubscribe()
	if err := client.Start(ctx); err != nil {
		log.Fatal(err)
	}

	_, err = client.BulkTrigger(ctx, []int64{42, 43}, &outbound.BulkTriggerOpts{
		TemplateID: "ticket-resolved",
		Recipients: map[int64]outbound.BulkRecipient{
			42: {RenderedBody: "Hi Ana, your ticket #123 is resolved.", Data: map[string]any{"phone": "+15550101"}},
			43: {RenderedBody: "Hi Bo, your ticket #124 is resolved.", Data: map[string]any{"phone": "+15550102"}},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	_, err = client.Trigger(ctx, 44, &outbound.TriggerOpts{TemplateID: "survey", Data: map[string]any{"phone": "+15550103", "name": "Cy"}})
	if err != nil {
		log.Fatal(err)
	}

	for range 3 {
		<-events
	}
	if err := client.Stop(ctx); err != nil {
		log.Fatal(err)
	}
	slices.Sort(texts)
	for _, text := range texts {
		fmt.Println(text)
	}

	// Output:
	// to +15550101: Hi Ana, your ticket #123 is resolved.
	// to +15550102: Hi Bo, your ticket #124 is resolved.
	// to +15550103: Hi Cy, how did we do?
}

// renderTemplate stands in for the host's templates.
func renderTemplate(templateID string, data map[string]any) string {
	if templateID == "survey" {
		return fmt.Sprintf("Hi %s, how did we do?", data["name"])
	}
	return "(no such template: " + templateID + ")"
}
