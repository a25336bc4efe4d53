package outbound_test

import (
	"context"
	"fmt"
	"log"

	"github.com/cairnloop/outbound"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ExampleClient_Start runs the embedded delivery worker with a notifier that
// stands in for an email provider.
func ExampleClient_Start() {
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

	delivered := make(chan string, 1)
	client, err := outbound.New(pool, &outbound.Config{
		Schema: schema,
		Notifier: outbound.NotifierFunc(func(ctx context.Context, msg *outbound.Message) error {
			// A real notifier calls its provider here, with msg.ID as the
			// idempotency key.
			delivered <- fmt.Sprintf("to conversation %d: %q", msg.ConversationID, msg.Content)
			return nil
		}),
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := client.Start(ctx); err != nil {
		log.Fatal(err)
	}

	res, err := client.Trigger(ctx, 42, &outbound.TriggerOpts{TemplateID: "recovery", Content: "Your account is restored."})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("delivered", <-delivered)

	// Stop waits for the running delivery to record its result.
	if err := client.Stop(ctx); err != nil {
		log.Fatal(err)
	}
	msg, err := client.Message(ctx, res.Message.ID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("status:", msg.Status, "attempts:", msg.Attempts)

	// Output:
	// delivered to conversation 42: "Your account is restored."
	// status: sent attempts: 1
}
