package outbound_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cairnloop/outbound"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ExampleRateLimit limits SMS to one a minute across every process, and
// leaves email unlimited. Of three SMS triggered together, one is sent at
// once and two wait, pending, with no slot promised (a more urgent SMS
// triggered now would go first); the email goes by.
func ExampleRateLimit() {
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

	client, err := outbound.New(pool, &outbound.Config{
		Schema: schema,
		RateLimits: map[string]outbound.RateLimit{
			"sms": {Limit: 1, Per: time.Minute},
		},
		// The key of a message: here its template's channel, "sms_code"'s
		// "sms".
		RateLimitKey: func(m *outbound.Message) string {
			channel, _, _ := strings.Cut(m.TemplateID, "_")
			return channel
		},
		Notifier: outbound.NotifierFunc(func(context.Context, *outbound.Message) error { return nil }),
	})
	if err != nil {
		log.Fatal(err)
	}
	sms, err := client.BulkTrigger(ctx, []int64{1, 2, 3}, &outbound.BulkTriggerOpts{TemplateID: "sms_code", RenderedBody: "Your code is 123456."})
	if err != nil {
		log.Fatal(err)
	}
	email, err := client.Trigger(ctx, 4, &outbound.TriggerOpts{TemplateID: "eml_recovery"})
	if err != nil {
		log.Fatal(err)
	}
	if err := client.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer client.Stop(ctx)

	// Until the email is sent and two SMS wait for their slots.
	var sent, waiting int
	var slots []time.Time
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			log.Fatal("the messages never settled")
		}
		sent, waiting, slots = 0, 0, nil
		for _, m := range sms.Messages {
			m, err := client.Message(ctx, m.ID)
			if err != nil {
				log.Fatal(err)
			}
			switch {
			case m.Status == outbound.MessageStatusSent:
				sent++
			case m.Status == outbound.MessageStatusPending && !m.RateLimitedUntil.IsZero():
				waiting++
				slots = append(slots, m.RateLimitedUntil)
			}
		}
		m, err := client.Message(ctx, email.Message.ID)
		if err != nil {
			log.Fatal(err)
		}
		if m.Status == outbound.MessageStatusSent && sent == 1 && waiting == 2 {
			break
		}
	}
	fmt.Println("email sent; SMS sent:", sent, "waiting:", waiting)
	// RateLimitedUntil is an estimate: the key's next slot, a minute away.
	fmt.Println("expected in a minute or more:", time.Until(slices.MinFunc(slots, time.Time.Compare)) > 50*time.Second)
	states, err := client.RateLimitStates(ctx)
	if err != nil {
		log.Fatal(err)
	}
	// Waiting are parked; Released have been handed a slot that their
	// claim has not yet taken (here, it finds the slot gone and parks).
	fmt.Printf("key %q: %d waiting\n", states[0].Key, states[0].Waiting+states[0].Released)

	// Output:
	// email sent; SMS sent: 1 waiting: 2
	// expected in a minute or more: true
	// key "sms": 2 waiting
}

// ExampleRateLimited passes a provider's 429 on as back-pressure: the key is
// paused for every process, the message waits pending, and the refused call
// is not counted as an attempt, so even MaxAttempts 1 is not spent on it.
func ExampleRateLimited() {
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

	const pause = 500 * time.Millisecond
	calls := make(chan time.Time, 2)
	var n atomic.Int32
	client, err := outbound.New(pool, &outbound.Config{
		Schema:      schema,
		MaxAttempts: 1,
		RateLimits:  map[string]outbound.RateLimit{"": {Limit: 100, Per: time.Second}},
		Notifier: outbound.NotifierFunc(func(ctx context.Context, msg *outbound.Message) error {
			calls <- time.Now()
			if n.Add(1) == 1 {
				// The provider answers 429 with "Retry-After: 0.5".
				return outbound.RateLimited(pause, errors.New("429 too many requests"))
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
	fmt.Println("the key paused as asked:", second.Sub(first) >= pause)
	fmt.Println("status:", msg.Status, "attempts:", msg.Attempts)

	// Output:
	// the key paused as asked: true
	// status: sent attempts: 1
}

// ExampleClient_LiftRateLimitPause ends a pause early: the provider asked
// for a day, Config.MaxRateLimitedPause held it to an hour, and an operator
// who knows the provider is back lifts it, as the dashboard's button does.
func ExampleClient_LiftRateLimitPause() {
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

	sent := make(chan struct{})
	var n atomic.Int32
	client, err := outbound.New(pool, &outbound.Config{
		Schema:              schema,
		RateLimits:          map[string]outbound.RateLimit{"": {Limit: 100, Per: time.Second}},
		MaxRateLimitedPause: time.Hour,
		Notifier: outbound.NotifierFunc(func(ctx context.Context, msg *outbound.Message) error {
			if n.Add(1) == 1 {
				return outbound.RateLimited(24*time.Hour, errors.New("429 too many requests"))
			}
			close(sent)
			return nil
		}),
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := client.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer client.Stop(ctx)
	if _, err := client.Trigger(ctx, 42, &outbound.TriggerOpts{TemplateID: "recovery"}); err != nil {
		log.Fatal(err)
	}

	var states []outbound.RateLimitState
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			log.Fatal("the key was never paused")
		}
		if states, err = client.RateLimitStates(ctx); err != nil {
			log.Fatal(err)
		}
		if !states[0].PausedUntil.IsZero() {
			break
		}
	}
	fmt.Println("paused for at most an hour:", time.Until(states[0].PausedUntil) <= time.Hour)

	lifted, err := client.LiftRateLimitPause(ctx, "")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("lifted:", lifted)
	<-sent
	fmt.Println("sent")

	// Output:
	// paused for at most an hour: true
	// lifted: true
	// sent
}
