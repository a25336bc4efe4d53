package outbound_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/cairnloop/outbound"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ExampleTriggerOpts_priority shows that a bulk never delays a one-to-one
// follow-up: an agent's Trigger, made after a bulk of three, is delivered
// first, because a Trigger's job outranks bulk recipients in River's fetch
// order. One worker delivers one message at a time, so the order is plain.
func ExampleTriggerOpts_priority() {
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

	delivered := make(chan string, 5)
	client, err := outbound.New(pool, &outbound.Config{
		Schema:        schema,
		MaxWorkers:    1,
		FetchCooldown: 10 * time.Millisecond,
		Notifier: outbound.NotifierFunc(func(ctx context.Context, msg *outbound.Message) error {
			delivered <- fmt.Sprintf("conversation %d (%s)", msg.ConversationID, msg.TemplateID)
			return nil
		}),
	})
	if err != nil {
		log.Fatal(err)
	}

	// Queued first: an outage notice to three conversations, at the bulk
	// default, DefaultBulkTriggerPriority (2).
	if _, err := client.BulkTrigger(ctx, []int64{7, 8, 9}, &outbound.BulkTriggerOpts{
		TemplateID: "outage-resolved", RenderedBody: "The outage is over.",
	}); err != nil {
		log.Fatal(err)
	}
	// Then an agent's follow-up, at DefaultTriggerPriority (1).
	if _, err := client.Trigger(ctx, 42, &outbound.TriggerOpts{TemplateID: "recovery"}); err != nil {
		log.Fatal(err)
	}
	// And a survey that everything else goes before.
	if _, err := client.Trigger(ctx, 43, &outbound.TriggerOpts{TemplateID: "survey", Priority: 4}); err != nil {
		log.Fatal(err)
	}

	if err := client.Start(ctx); err != nil {
		log.Fatal(err)
	}
	for range 5 {
		fmt.Println("delivered to", <-delivered)
	}
	if err := client.Stop(ctx); err != nil {
		log.Fatal(err)
	}

	// Output:
	// delivered to conversation 42 (recovery)
	// delivered to conversation 7 (outage-resolved)
	// delivered to conversation 8 (outage-resolved)
	// delivered to conversation 9 (outage-resolved)
	// delivered to conversation 43 (survey)
}

// ExampleTriggerOpts_scheduledAt schedules a follow-up for an absolute time,
// "at 9:00 on the 2nd of January": River keeps its job scheduled until then.
// A time already past would mean now.
func ExampleTriggerOpts_scheduledAt() {
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

	nineOClock := time.Date(time.Now().Year()+1, time.January, 2, 9, 0, 0, 0, time.UTC)
	res, err := client.Trigger(ctx, 42, &outbound.TriggerOpts{TemplateID: "recovery", ScheduledAt: nineOClock})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("deliver at:", res.Message.ScheduledAt.UTC().Format("Jan 2 15:04 MST"))

	// ScheduleIn and ScheduledAt are two ways to say one thing: not both.
	_, err = client.Trigger(ctx, 43, &outbound.TriggerOpts{TemplateID: "recovery", ScheduledAt: nineOClock, ScheduleIn: time.Hour})
	fmt.Println(err)

	// Output:
	// deliver at: Jan 2 09:00 UTC
	// outbound: invalid argument: TriggerOpts.ScheduledAt must not be set together with TriggerOpts.ScheduleIn (1h0m0s): set one or the other
}
