package outbound_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/cairnloop/outbound"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ExampleClient_Subscribe hears each message's final outcome: one message is
// sent, and one whose provider keeps failing is discarded after the single
// attempt its MaxAttempts allows.
func ExampleClient_Subscribe() {
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
	client, err := outbound.New(pool, &outbound.Config{
		Schema: schema,
		Notifier: outbound.NotifierFunc(func(ctx context.Context, msg *outbound.Message) error {
			if msg.ConversationID == 43 {
				return errors.New("smtp: 451 try again later")
			}
			return nil
		}),
	})
	if err != nil {
		log.Fatal(err)
	}

	// Subscribe before starting, so that no outcome is missed. Events are
	// best-effort: a host that must see every outcome reads ListMessages.
	events, unsubscribe, err := client.Subscribe(outbound.EventKindMessageSent, outbound.EventKindMessageDiscarded)
	if err != nil {
		log.Fatal(err)
	}
	defer unsubscribe()
	if err := client.Start(ctx); err != nil {
		log.Fatal(err)
	}

	sent, err := client.Trigger(ctx, 42, &outbound.TriggerOpts{TemplateID: "recovery"})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := client.Trigger(ctx, 43, &outbound.TriggerOpts{TemplateID: "recovery", MaxAttempts: 1}); err != nil {
		log.Fatal(err)
	}

	byConversation := map[int64]*outbound.Event{}
	for len(byConversation) < 2 {
		ev := <-events
		byConversation[ev.ConversationID] = ev
	}
	if err := client.Stop(ctx); err != nil {
		log.Fatal(err)
	}
	for _, id := range []int64{42, 43} {
		ev := byConversation[id]
		fmt.Printf("conversation %d: %s (%s) after %d attempt(s) %q\n", id, ev.Kind, ev.Reason, ev.Attempts, ev.LastError)
	}
	fmt.Println("same message:", byConversation[42].MessageID == sent.Message.ID)

	// Output:
	// conversation 42: message_sent (notifier_ok) after 1 attempt(s) ""
	// conversation 43: message_discarded (attempts_exhausted) after 1 attempt(s) "smtp: 451 try again later"
	// same message: true
}
