package outbound_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/cairnloop/outbound"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

// ExampleMigrations hands the library's schema to a host's own migration
// tool: it writes each migration as a pair of files, in the NNN_name.up.sql /
// NNN_name.down.sql layout that tools such as golang-migrate and goose read,
// and applies them as such a tool would. River's tables come from
// rivermigrate (or River's CLI, river migrate-get).
func ExampleMigrations() {
	ctx := context.Background()

	pool, err := pgxpool.New(ctx, exampleDatabaseURL())
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	schema := exampleSchema() // an application would keep the default, "cairnloop"
	defer dropExampleSchema(pool, schema)

	// Write the files, once, into the host's migrations directory.
	dir, err := os.MkdirTemp("", "migrations")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	migrations, err := outbound.Migrations()
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range migrations {
		for direction, sql := range map[string]string{"up": m.Up, "down": m.Down} {
			name := fmt.Sprintf("%03d_%s.%s.sql", m.Version, m.Name, direction)
			if err := os.WriteFile(filepath.Join(dir, name), []byte(sql), 0o644); err != nil {
				log.Fatal(err)
			}
		}
	}
	ups, err := filepath.Glob(filepath.Join(dir, "*.up.sql"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("first:", filepath.Base(ups[0]))

	// The tool applies each up file, in order, in a transaction of its own,
	// with search_path at the library's schema.
	if _, err := pool.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize()); err != nil {
		log.Fatal(err)
	}
	for _, file := range ups {
		sql, err := os.ReadFile(file)
		if err != nil {
			log.Fatal(err)
		}
		err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SET LOCAL search_path TO "+pgx.Identifier{schema}.Sanitize()); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, string(sql))
			return err
		})
		if err != nil {
			log.Fatalf("%s: %v", filepath.Base(file), err)
		}
	}

	// River's tables, beside the library's.
	migrator, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Schema: schema})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		log.Fatal(err)
	}

	// Each file recorded its version, so the client's schema check passes.
	client, err := outbound.New(pool, &outbound.Config{Schema: schema})
	if err != nil {
		log.Fatal(err)
	}
	res, err := client.Trigger(ctx, 42, &outbound.TriggerOpts{TemplateID: "recovery"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("triggered:", res.Message.Status)

	// Output:
	// first: 001_create_outbound_tables.up.sql
	// triggered: pending
}
