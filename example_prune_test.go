package outbound_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/cairnloop/outbound"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ExampleClient_Prune deletes old final rows: here a cancelled bulk. A
// service would rather set Config.Retention (say, 90 days) and let Start prune
// every hour.
func ExampleClient_Prune() {
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
	if _, err := client.CancelEnvelope(ctx, res.Envelope.ID, nil); err != nil {
		log.Fatal(err)
	}

	// So that the example has something old enough: a real age is days.
	time.Sleep(20 * time.Millisecond)
	pruned, err := client.Prune(ctx, &outbound.PruneParams{OlderThan: 10 * time.Millisecond})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("pruned %d messages and %d envelope\n", pruned.Messages, pruned.Envelopes)

	// Output:
	// pruned 3 messages and 1 envelope
}
