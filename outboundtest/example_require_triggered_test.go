package outboundtest_test

import (
	"context"
	"fmt"
	"log"

	"github.com/cairnloop/outbound"
	"github.com/cairnloop/outbound/outboundtest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// closeConversation is the code under test: a host's handler that closes a
// conversation and, in the same transaction, triggers the recovery
// follow-up.
func closeConversation(ctx context.Context, pool *pgxpool.Pool, client *outbound.Client, conversationID int64) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		// ... the host's own writes: mark the conversation closed ...
		_, err := client.TriggerTx(ctx, tx, conversationID, &outbound.TriggerOpts{TemplateID: "recovery"})
		return err
	})
}

// ExampleRequireTriggered asserts, in a host's own test, that its handler
// triggered the recovery follow-up for the conversation it closed, and
// nothing for another.
func ExampleRequireTriggered() {
	ctx := context.Background()
	t := exampleT() // in a test: the test's *testing.T

	pool, err := pgxpool.New(ctx, exampleDatabaseURL())
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	schema, drop := exampleSchema() // migrated by the test's setup
	defer drop()
	client, err := outbound.New(pool, &outbound.Config{Schema: schema})
	if err != nil {
		log.Fatal(err)
	}

	if err := closeConversation(ctx, pool, client, 42); err != nil {
		log.Fatal(err)
	}

	msg := outboundtest.RequireTriggered(ctx, t, client, outboundtest.Expected{
		ConversationID: 42,
		TemplateID:     "recovery",
		Status:         outbound.MessageStatusPending,
	})
	fmt.Printf("triggered %s for conversation %d\n", msg.TemplateID, msg.ConversationID)
	outboundtest.RequireNotTriggered(ctx, t, client, outboundtest.Expected{ConversationID: 43})
	fmt.Println("nothing for conversation 43")

	// Output:
	// triggered recovery for conversation 42
	// nothing for conversation 43
}

// ExampleRequireManyTriggered asserts the messages of a bulk, in the order of
// its recipients.
func ExampleRequireManyTriggered() {
	ctx := context.Background()
	t := exampleT() // in a test: the test's *testing.T

	pool, err := pgxpool.New(ctx, exampleDatabaseURL())
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	schema, drop := exampleSchema() // migrated by the test's setup
	defer drop()
	client, err := outbound.New(pool, &outbound.Config{Schema: schema})
	if err != nil {
		log.Fatal(err)
	}

	if _, err := client.BulkTrigger(ctx, []int64{7, 8}, &outbound.BulkTriggerOpts{TemplateID: "outage", RenderedBody: "We are back up."}); err != nil {
		log.Fatal(err)
	}

	msgs := outboundtest.RequireManyTriggered(ctx, t, client, []outboundtest.Expected{
		{ConversationID: 7, TemplateID: "outage", Content: "We are back up."},
		{ConversationID: 8, TemplateID: "outage", Content: "We are back up."},
	})
	for _, m := range msgs {
		fmt.Printf("conversation %d: %s\n", m.ConversationID, m.Status)
	}

	// Output:
	// conversation 7: pending
	// conversation 8: pending
}
