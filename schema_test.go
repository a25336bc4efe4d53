package outbound_test

import (
	"context"
	"testing"

	"github.com/cairnloop/outbound"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// requireTriggerRefused checks that a client on schema refuses a Trigger
// with ErrSchemaMismatch, saying each of says, and writes nothing.
func requireTriggerRefused(t *testing.T, schema string, says ...string) {
	t.Helper()
	client, err := outbound.New(testPool, &outbound.Config{Schema: schema})
	require.NoError(t, err)
	_, err = client.Trigger(ctxT(t), 1, &outbound.TriggerOpts{TemplateID: "t"})
	require.ErrorIs(t, err, outbound.ErrSchemaMismatch)
	for _, s := range says {
		require.ErrorContains(t, err, s)
	}
	require.Zero(t, countRows(t, schema, "messages"))
}

// TestSchemaMismatch checks that a client on a schema it cannot use says so,
// with what to do, on its first call that touches the database.
func TestSchemaMismatch(t *testing.T) {
	t.Parallel()

	t.Run("NeverMigrated", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		schema := newSchemaName()
		t.Cleanup(func() { dropSchema(schema) })
		client, err := outbound.New(testPool, &outbound.Config{Schema: schema})
		require.NoError(t, err, "New does not touch the database")

		calls := map[string]func() error{
			"Trigger": func() error {
				_, err := client.Trigger(ctx, 1, &outbound.TriggerOpts{TemplateID: "t"})
				return err
			},
			"BulkTrigger": func() error {
				_, err := client.BulkTrigger(ctx, []int64{1}, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b"})
				return err
			},
			"Message":  func() error { _, err := client.Message(ctx, uuid.New()); return err },
			"Envelope": func() error { _, err := client.Envelope(ctx, uuid.New()); return err },
			"ListEnvelopes": func() error {
				_, err := client.ListEnvelopes(ctx, nil)
				return err
			},
			"EnvelopeProgress": func() error { _, err := client.EnvelopeProgress(ctx, uuid.New()); return err },
			"CancelMessage":    func() error { return client.CancelMessage(ctx, uuid.New(), nil) },
			"CancelEnvelope":   func() error { _, err := client.CancelEnvelope(ctx, uuid.New(), nil); return err },
			"Reconcile":        func() error { _, err := client.Reconcile(ctx); return err },
			"Prune": func() error {
				_, err := client.Prune(ctx, &outbound.PruneParams{OlderThan: 1})
				return err
			},
			"Start": func() error { return client.Start(ctx) },
		}
		for name, call := range calls {
			err := call()
			require.ErrorIs(t, err, outbound.ErrSchemaMismatch, name)
			require.ErrorContains(t, err, "has no outbound tables: run outbound.Migrate", name)
			require.ErrorContains(t, err, schema, name)
		}

		// Inside a caller's transaction, which stays usable.
		tx, err := testPool.Begin(ctx)
		require.NoError(t, err)
		_, err = client.TriggerTx(ctx, tx, 1, &outbound.TriggerOpts{TemplateID: "t"})
		require.ErrorIs(t, err, outbound.ErrSchemaMismatch)
		var one int
		require.NoError(t, tx.QueryRow(ctx, "SELECT 1").Scan(&one))
		require.NoError(t, tx.Rollback(ctx))

		// A failed check is not remembered: once migrated, the same client
		// works.
		require.NoError(t, outbound.Migrate(ctx, testPool, &outbound.MigrateOpts{Schema: schema}))
		mustTrigger(ctx, t, client, 1, &outbound.TriggerOpts{TemplateID: "t"})
	})

	t.Run("MigratedToAnOlderVersion", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		schema := migratedSchema(t)
		require.NoError(t, outbound.MigrateDown(ctx, testPool, &outbound.MigrateOpts{Schema: schema, TargetVersion: 2}))
		requireTriggerRefused(t, schema, "older version than this library's", "run outbound.Migrate")
	})

	t.Run("MigratedByANewerVersion", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		schema := migratedSchema(t)
		_, err := testPool.Exec(ctx, "INSERT INTO "+table(schema, "outbound_migration")+" (version, name) VALUES (999, 'from_the_future')")
		require.NoError(t, err)

		requireTriggerRefused(t, schema, "version 999 by a newer version of the library", "upgrade the library")

		// Migrate and MigrateDown refuse to touch it too.
		err = outbound.Migrate(ctx, testPool, &outbound.MigrateOpts{Schema: schema})
		require.ErrorIs(t, err, outbound.ErrSchemaMismatch)
		err = outbound.MigrateDown(ctx, testPool, &outbound.MigrateOpts{Schema: schema})
		require.ErrorIs(t, err, outbound.ErrSchemaMismatch)
		require.True(t, tableExists(t, schema, "messages"))
	})

	t.Run("NoRiverTables", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		schema := migratedSchema(t)
		client, err := outbound.New(testPool, &outbound.Config{Schema: schema, RiverSchema: "no_river_here"})
		require.NoError(t, err)
		_, err = client.Trigger(ctx, 1, &outbound.TriggerOpts{TemplateID: "t"})
		require.ErrorIs(t, err, outbound.ErrSchemaMismatch)
		require.ErrorContains(t, err, `has no River tables`)
		require.ErrorContains(t, err, `"no_river_here"`)
	})

	// A client pointed at another River schema than the one Migrate
	// recorded would find none of the messages' jobs and discard every
	// pending message. It refuses to reconcile instead, and says why.
	t.Run("AnotherRiverSchemaRefusesToReconcile", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		schema := migratedSchema(t)
		otherRiver := migratedSchema(t) // River's tables, and the library's, elsewhere

		client, err := outbound.New(testPool, &outbound.Config{Schema: schema})
		require.NoError(t, err)
		bulk := mustBulkTrigger(ctx, t, client, []int64{1, 2, 3}, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b"})

		moved, err := outbound.New(testPool, &outbound.Config{Schema: schema, RiverSchema: otherRiver})
		require.NoError(t, err)
		n, err := moved.Reconcile(ctx)
		require.ErrorIs(t, err, outbound.ErrSchemaMismatch)
		require.ErrorContains(t, err, "records River schema")
		require.ErrorContains(t, err, "Reconcile refuses")
		require.Zero(t, n)
		for _, m := range bulk.Messages {
			stored, err := client.Message(ctx, m.ID)
			require.NoError(t, err)
			require.Equal(t, outbound.MessageStatusPending, stored.Status, "nothing was discarded")
		}

		// The client on the recorded River schema reconciles, and finds
		// nothing to settle.
		n, err = client.Reconcile(ctx)
		require.NoError(t, err)
		require.Zero(t, n)

		// The record is read on every run: once Migrate records the other
		// River schema, the running client refuses in its turn, without a
		// restart, and accepts again once it is recorded back.
		require.NoError(t, outbound.Migrate(ctx, testPool, &outbound.MigrateOpts{Schema: schema, RiverSchema: otherRiver}))
		_, err = client.Reconcile(ctx)
		require.ErrorIs(t, err, outbound.ErrSchemaMismatch)
		require.NoError(t, outbound.Migrate(ctx, testPool, &outbound.MigrateOpts{Schema: schema, RiverSchema: schema}))
		_, err = client.Reconcile(ctx)
		require.NoError(t, err)
	})
}

// TestMigrateOnSmallPoolsAndLimitedRoles checks the deployments Migrate must
// work in besides a superuser on a roomy pool.
func TestMigrateOnSmallPoolsAndLimitedRoles(t *testing.T) {
	t.Parallel()

	t.Run("OneConnection", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t) // Migrate used to wait here until this ran out
		schema := newSchemaName()
		t.Cleanup(func() { dropSchema(schema) })
		pool := newTestPool(t, 1)
		require.NoError(t, outbound.Migrate(ctx, pool, &outbound.MigrateOpts{Schema: schema}))
		require.NoError(t, outbound.Migrate(ctx, pool, &outbound.MigrateOpts{Schema: schema}), "idempotent")
		client, err := outbound.New(pool, &outbound.Config{Schema: schema})
		require.NoError(t, err)
		mustTrigger(ctx, t, client, 1, &outbound.TriggerOpts{TemplateID: "t"})
		require.NoError(t, outbound.MigrateDown(ctx, pool, &outbound.MigrateOpts{Schema: schema}))
		require.False(t, tableExists(t, schema, "messages"))
	})

	t.Run("RoleWithoutCreateOnTheDatabase", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		schema := newSchemaName()
		role := schema + "_role"
		_, err := testPool.Exec(ctx, "CREATE ROLE "+pgx.Identifier{role}.Sanitize()+" LOGIN; CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize()+" AUTHORIZATION "+pgx.Identifier{role}.Sanitize())
		require.NoError(t, err)
		t.Cleanup(func() {
			dropSchema(schema)
			_, err := testPool.Exec(context.Background(), "DROP ROLE "+pgx.Identifier{role}.Sanitize())
			require.NoError(t, err)
		})
		var mayCreate bool
		require.NoError(t, testPool.QueryRow(ctx, "SELECT has_database_privilege($1, current_database(), 'CREATE')", role).Scan(&mayCreate))
		require.False(t, mayCreate, "the role may not create schemas")

		pool := newTestPool(t, 2, func(c *pgxpool.Config) { c.ConnConfig.User = role })
		err = outbound.Migrate(ctx, pool, &outbound.MigrateOpts{Schema: newSchemaName()})
		require.ErrorContains(t, err, "permission denied", "a schema that does not exist cannot be made")

		require.NoError(t, outbound.Migrate(ctx, pool, &outbound.MigrateOpts{Schema: schema}))
		require.NoError(t, outbound.Migrate(ctx, pool, &outbound.MigrateOpts{Schema: schema}), "idempotent")
		client, err := outbound.New(pool, &outbound.Config{Schema: schema})
		require.NoError(t, err)
		mustBulkTrigger(ctx, t, client, []int64{1, 2}, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b"})
		require.Equal(t, 2, countRows(t, schema, "river_job"))
	})
}
