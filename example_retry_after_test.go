package outbound_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/cairnloop/outbound"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ExampleRetryAfter honours a provider's Retry-After: the first call is
// answered 503 with Retry-After, and the next attempt waits that long rather
// than the retry policy's second. (A 429, a refusal for rate, is
// RateLimited's: see ExampleRateLimited.)
func ExampleRetryAfter() {
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

	const retryAfter = 1500 * time.Millisecond
	calls := make(chan time.Time, 2)
	client, err := outbound.New(pool, &outbound.Config{
		Schema: schema,
		Notifier: outbound.NotifierFunc(func(ctx context.Context, msg *outbound.Message) error {
			calls <- time.Now()
			if msg.Attempts == 1 {
				// The provider answers 503 with "Retry-After: 1.5".
				return outbound.RetryAfter(retryAfter, errors.New("503 service unavailable"))
			}
			return nil
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
	first, second := <-calls, <-calls
	if err := client.Stop(ctx); err != nil {
		log.Fatal(err)
	}

	msg, err := client.Message(ctx, res.Message.ID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("second attempt waited as asked:", second.Sub(first) >= retryAfter)
	fmt.Println("status:", msg.Status, "attempts:", msg.Attempts)

	// Output:
	// second attempt waited as asked: true
	// status: sent attempts: 2
}
