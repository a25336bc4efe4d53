package outbound_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/cairnloop/outbound"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
)

// ExampleClient_AddWorkers delivers under the host's own River client rather
// than Start's: the host registers the library's workers beside its own, and
// works the library's queue.
func ExampleClient_AddWorkers() {
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
			delivered <- fmt.Sprintf("to conversation %d", msg.ConversationID)
			return nil
		}),
	})
	if err != nil {
		log.Fatal(err)
	}

	// The host's River client, with its own workers and the library's.
	workers := river.NewWorkers()
	// river.AddWorker(workers, &yourOwnWorker{})
	client.AddWorkers(workers)
	riverClient, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Schema: schema, // Config.RiverSchema: where Migrate put River's tables
		Queues: map[string]river.QueueConfig{
			river.QueueDefault:    {MaxWorkers: 10},
			outbound.DefaultQueue: {MaxWorkers: 100},
		},
		Workers:      workers,
		PeriodicJobs: client.PeriodicJobs(), // Reconcile, and Prune when Config.Retention is set
		// Take a dead worker's delivery back after NotifyTimeout + 30s,
		// rather than River's default hour.
		RescueStuckJobsAfter: outbound.DefaultNotifyTimeout + 30*time.Second,
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := riverClient.Start(ctx); err != nil {
		log.Fatal(err)
	}

	// The host's own transaction: its writes, and the follow-up, commit as one.
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		_, err := client.TriggerTx(ctx, tx, 42, &outbound.TriggerOpts{TemplateID: "recovery"})
		return err
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("delivered", <-delivered)

	if err := riverClient.Stop(ctx); err != nil {
		log.Fatal(err)
	}

	// Output:
	// delivered to conversation 42
}
