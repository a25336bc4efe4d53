package outbound_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/cairnloop/outbound"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ExamplePermanent discards a message after one call, because the provider
// says no retry can deliver it.
func ExamplePermanent() {
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

	called := make(chan struct{}, 1)
	client, err := outbound.New(pool, &outbound.Config{
		Schema: schema,
		Notifier: outbound.NotifierFunc(func(ctx context.Context, msg *outbound.Message) error {
			defer func() { called <- struct{}{} }()
			// The provider answers that the mailbox does not exist.
			return outbound.Permanent(errors.New("550 mailbox unavailable"))
		}),
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := client.Start(ctx); err != nil {
		log.Fatal(err)
	}
	res, err := client.Trigger(ctx, 42, &outbound.TriggerOpts{TemplateID: "recovery"})
	if err != nil {
		log.Fatal(err)
	}
	<-called
	// Stop waits for the running attempt to record its result.
	if err := client.Stop(ctx); err != nil {
		log.Fatal(err)
	}

	msg, err := client.Message(ctx, res.Message.ID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("status:", msg.Status, "attempts:", msg.Attempts)
	fmt.Println("last error:", msg.LastError)

	// Output:
	// status: discarded attempts: 1
	// last error: permanent failure: 550 mailbox unavailable
}
