package outbound_test

import (
	"context"
	"fmt"
	"log"

	"github.com/cairnloop/outbound"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ExampleClient_Trigger sends the recovery template to conversation 42, then shows
// that asking again for the same conversation and template writes nothing.
func ExampleClient_Trigger() {
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

	client, err := outbound.New(pool, &outbound.Config{Schema: schema})
	if err != nil {
		log.Fatal(err)
	}

	res, err := client.Trigger(ctx, 42, &outbound.TriggerOpts{TemplateID: "recovery", Actor: "agent:7"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s message for conversation %d: %q\n", res.Message.Status, res.Message.ConversationID, res.Message.Content)
	fmt.Println("delivery job queued:", res.Message.JobID != 0)

	again, err := client.Trigger(ctx, 42, &outbound.TriggerOpts{TemplateID: "recovery"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("duplicate:", again.Duplicate, "same message:", again.Message.ID == res.Message.ID)

	// Output:
	// pending message for conversation 42: "Outbound message using template: recovery"
	// delivery job queued: true
	// duplicate: true same message: true
}
