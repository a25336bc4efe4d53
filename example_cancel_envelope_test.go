package outbound_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/cairnloop/outbound"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ExampleClient_CancelEnvelope cancels a scheduled bulk before it goes out.
func ExampleClient_CancelEnvelope() {
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

	res, err := client.BulkTrigger(ctx, []int64{42, 7, 19}, &outbound.BulkTriggerOpts{
		TemplateID:   "maintenance",
		RenderedBody: "We will be down for maintenance tonight.",
		ScheduleIn:   time.Hour,
	})
	if err != nil {
		log.Fatal(err)
	}

	// The actor is kept on the rows and given to the Auditor.
	n, err := client.CancelEnvelope(ctx, res.Envelope.ID, &outbound.CancelOpts{Actor: "agent:7"})
	if err != nil {
		log.Fatal(err)
	}
	progress, err := client.EnvelopeProgress(ctx, res.Envelope.ID)
	if err != nil {
		log.Fatal(err)
	}
	env, err := client.Envelope(ctx, res.Envelope.ID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("cancelled:", n)
	fmt.Printf("progress: %+v\n", *progress)
	fmt.Println("envelope:", env.Status, env.Outcome, "by", env.CancelledBy)

	// Output:
	// cancelled: 3
	// progress: {Pending:0 Delivering:0 Sent:0 Failed:0 Unconfirmed:0 Discarded:0 Cancelled:3}
	// envelope: cancelled cancelled by agent:7
}
