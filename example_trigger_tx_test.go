package outbound_test

import (
	"context"
	"fmt"
	"log"

	"github.com/cairnloop/outbound"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// A host closes a ticket and triggers the follow-up in the same transaction:
// both commit together, or neither does.
func ExampleClient_TriggerTx() {
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
	client, err := outbound.New(pool, &outbound.Config{Schema: schema})
	if err != nil {
		log.Fatal(err)
	}

	tickets := pgx.Identifier{schema, "tickets"}.Sanitize() // the host's own table
	if _, err := pool.Exec(ctx, "CREATE TABLE "+tickets+" (conversation_id bigint PRIMARY KEY, closed bool NOT NULL)"); err != nil {
		log.Fatal(err)
	}

	closeAndFollowUp := func(conversationID int64, commit bool) {
		tx, err := pool.Begin(ctx)
		if err != nil {
			log.Fatal(err)
		}
		defer tx.Rollback(ctx)

		if _, err := tx.Exec(ctx, "INSERT INTO "+tickets+" VALUES ($1, true)", conversationID); err != nil {
			log.Fatal(err)
		}
		if _, err := client.TriggerTx(ctx, tx, conversationID, &outbound.TriggerOpts{TemplateID: "closed-follow-up"}); err != nil {
			log.Fatal(err)
		}
		if commit {
			if err := tx.Commit(ctx); err != nil {
				log.Fatal(err)
			}
		}
	}
	closeAndFollowUp(42, true)
	closeAndFollowUp(43, false) // rolled back: no ticket change, no message, no job

	var closed, messages int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM "+tickets).Scan(&closed); err != nil {
		log.Fatal(err)
	}
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{schema, "messages"}.Sanitize()).Scan(&messages); err != nil {
		log.Fatal(err)
	}
	fmt.Println("tickets closed:", closed)
	fmt.Println("messages:", messages)

	// Output:
	// tickets closed: 1
	// messages: 1
}
