package outbound_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/cairnloop/outbound"
	"github.com/jackc/pgx/v5/pgxpool"
)

// An operator sends one rendered body to an inbox selection. A selection over
// the cap is refused, and the refusal is recorded.
func ExampleClient_BulkTrigger() {
	ctx := context.Background()

	pool, err := pgxpool.New(ctx, exampleDatabaseURL())
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	schema := exampleSchema()
	defer dropExampleSchema(pool, schema)
	if err := outbound.Migrate(ctx, pool, &outbound.MigrateOpts{Schema: schema}); err != nil {
		log.Fatal(err)
	}
	client, err := outbound.New(pool, &outbound.Config{Schema: schema, MaxBatchSize: 3})
	if err != nil {
		log.Fatal(err)
	}

	res, err := client.BulkTrigger(ctx, []int64{42, 7, 19}, &outbound.BulkTriggerOpts{
		TemplateID:   "outage-resolved",
		RenderedBody: "The outage is over. Thanks for your patience!",
		Actor:        "agent:7",
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("envelope %s: %d recipients, cap %d\n", res.Envelope.Status, res.Envelope.Count, res.Envelope.EffectiveCap)
	for _, m := range res.Messages {
		fmt.Printf("  conversation %d: %s %q\n", m.ConversationID, m.Status, m.Content)
	}

	_, err = client.BulkTrigger(ctx, []int64{1, 2, 3, 4}, &outbound.BulkTriggerOpts{
		TemplateID:   "outage-resolved",
		RenderedBody: "The outage is over. Thanks for your patience!",
	})
	var tooLarge *outbound.BatchTooLargeError
	if errors.As(err, &tooLarge) {
		refused, err := client.Envelope(ctx, tooLarge.EnvelopeID)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("refused: %s (envelope %s)\n", refused.RefusedReason, refused.Status)
	}

	// Output:
	// envelope submitted: 3 recipients, cap 3
	//   conversation 42: pending "The outage is over. Thanks for your patience!"
	//   conversation 7: pending "The outage is over. Thanks for your patience!"
	//   conversation 19: pending "The outage is over. Thanks for your patience!"
	// refused: batch_size 4 exceeds cap 3 (envelope refused_cap_exceeded)
}
