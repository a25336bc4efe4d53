package outbound_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/cairnloop/outbound"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
)

// ExampleClient_ConfigureRiver delivers under the host's own River client
// rather than Start's: ConfigureRiver adds the library's workers, queue and
// periodic jobs to the host's River config, beside the host's own, and
// refuses a config whose schema would never see the library's jobs.
func ExampleClient_ConfigureRiver() {
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

	// River on the connection's search_path would never see the library's
	// jobs, which Migrate put in the library's schema: refused.
	if err := client.ConfigureRiver(&river.Config{}); err != nil {
		fmt.Println("refused: river.Config.Schema is not Config.RiverSchema:", errors.Is(err, outbound.ErrInvalidArgument))
	}

	// The host's River config, with its own queues and workers.
	workers := river.NewWorkers()
	// river.AddWorker(workers, &yourOwnWorker{})
	riverConfig := &river.Config{
		Schema:  schema, // Config.RiverSchema: where Migrate put River's tables
		Queues:  map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 10}},
		Workers: workers,
		// Take a dead worker's delivery back after a minute, rather than
		// River's default hour. It applies to all the host's jobs, so it
		// stays above the longest; River wants it no shorter than JobTimeout.
		RescueStuckJobsAfter: time.Minute,
	}
	if err := client.ConfigureRiver(riverConfig); err != nil {
		log.Fatal(err)
	}
	riverClient, err := river.NewClient(riverpgxv5.New(pool), riverConfig)
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
	// refused: river.Config.Schema is not Config.RiverSchema: true
	// delivered to conversation 42
}
