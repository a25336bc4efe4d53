package outboundtest_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/cairnloop/outbound"
	"github.com/cairnloop/outbound/outboundtest"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ExampleWorker_Deliver runs a message's delivery inline, with a Notifier
// that fails the first time, and shows the message failed and then sent.
func ExampleWorker_Deliver() {
	ctx := context.Background()
	t := exampleT() // in a test: the test's *testing.T

	pool, err := pgxpool.New(ctx, exampleDatabaseURL())
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	schema, drop := exampleSchema() // migrated by the test's setup
	defer drop()
	config := &outbound.Config{Schema: schema}
	client, err := outbound.New(pool, config)
	if err != nil {
		log.Fatal(err)
	}

	calls := 0
	notifier := outbound.NotifierFunc(func(ctx context.Context, msg *outbound.Message) error {
		calls++
		if calls == 1 {
			return errors.New("mailbox full")
		}
		return nil
	})
	worker := outboundtest.NewWorker(t, pool, config, notifier)

	res, err := client.Trigger(ctx, 42, &outbound.TriggerOpts{TemplateID: "recovery"})
	if err != nil {
		log.Fatal(err)
	}
	first, _ := worker.Deliver(ctx, t, res.Message.ID) // the error is the notifier's, as River would see it
	fmt.Printf("attempt 1: message %s, job %s, error %q\n", first.Message.Status, first.Job.State, first.Message.LastError)
	second, err := worker.Deliver(ctx, t, res.Message.ID)
	fmt.Printf("attempt 2: message %s, job %s, error %v\n", second.Message.Status, second.Job.State, err)

	// Output:
	// attempt 1: message failed, job retryable, error "mailbox full"
	// attempt 2: message sent, job completed, error <nil>
}
