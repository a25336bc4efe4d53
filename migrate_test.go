package outbound_test

import (
	"context"
	"sync"
	"testing"

	"github.com/cairnloop/outbound"
	"github.com/stretchr/testify/require"
)

// tableExists reports whether schema.name is a table.
func tableExists(t *testing.T, schema, name string) bool {
	t.Helper()
	var exists bool
	require.NoError(t, testPool.QueryRow(context.Background(), "SELECT to_regclass($1) IS NOT NULL", table(schema, name)).Scan(&exists))
	return exists
}

func TestMigrate(t *testing.T) {
	t.Parallel()

	t.Run("Idempotent", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		schema := migratedSchema(t)
		require.NoError(t, outbound.Migrate(ctx, testPool, &outbound.MigrateOpts{Schema: schema}))
		require.NoError(t, outbound.Migrate(ctx, testPool, &outbound.MigrateOpts{Schema: schema}))
		for _, name := range []string{"messages", "bulk_envelopes", "audit_events", "outbound_migration", "river_job", "river_migration"} {
			require.True(t, tableExists(t, schema, name), name)
		}
		require.Equal(t, 1, countRows(t, schema, "outbound_migration"))
	})

	t.Run("ConcurrentProcesses", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		schema := newSchemaName()
		t.Cleanup(func() { dropSchema(t, schema) })

		const migrators = 6
		var wg sync.WaitGroup
		errs := make([]error, migrators)
		for i := range migrators {
			wg.Go(func() { errs[i] = outbound.Migrate(ctx, testPool, &outbound.MigrateOpts{Schema: schema}) })
		}
		wg.Wait()
		for _, err := range errs {
			require.NoError(t, err)
		}
		require.Equal(t, 1, countRows(t, schema, "outbound_migration"))
		client, err := outbound.New(testPool, &outbound.Config{Schema: schema})
		require.NoError(t, err)
		_, err = client.Trigger(ctx, 1, &outbound.TriggerOpts{TemplateID: "t"})
		require.NoError(t, err)
	})

	t.Run("UpDownUp", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		schema := migratedSchema(t)
		client, err := outbound.New(testPool, &outbound.Config{Schema: schema})
		require.NoError(t, err)
		_, err = client.Trigger(ctx, 1, &outbound.TriggerOpts{TemplateID: "t"})
		require.NoError(t, err)

		require.NoError(t, outbound.MigrateDown(ctx, testPool, &outbound.MigrateOpts{Schema: schema}))
		for _, name := range []string{"messages", "bulk_envelopes", "audit_events"} {
			require.False(t, tableExists(t, schema, name), name)
		}
		require.Zero(t, countRows(t, schema, "outbound_migration"))
		require.True(t, tableExists(t, schema, "river_job"), "River's tables are River's to remove")
		// Down again is a no-op.
		require.NoError(t, outbound.MigrateDown(ctx, testPool, &outbound.MigrateOpts{Schema: schema}))

		require.NoError(t, outbound.Migrate(ctx, testPool, &outbound.MigrateOpts{Schema: schema}))
		_, err = client.Trigger(ctx, 1, &outbound.TriggerOpts{TemplateID: "t"})
		require.NoError(t, err)
		require.Equal(t, 1, countRows(t, schema, "messages"))
	})

	t.Run("SeparateRiverSchema", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		schema, riverSchema := newSchemaName(), newSchemaName()
		t.Cleanup(func() { dropSchema(t, schema); dropSchema(t, riverSchema) })
		require.NoError(t, outbound.Migrate(ctx, testPool, &outbound.MigrateOpts{Schema: schema, RiverSchema: riverSchema}))
		require.True(t, tableExists(t, schema, "messages"))
		require.False(t, tableExists(t, schema, "river_job"))
		require.True(t, tableExists(t, riverSchema, "river_job"))

		client, err := outbound.New(testPool, &outbound.Config{Schema: schema, RiverSchema: riverSchema})
		require.NoError(t, err)
		res, err := client.Trigger(ctx, 1, &outbound.TriggerOpts{TemplateID: "t"})
		require.NoError(t, err)
		require.Equal(t, "outbound_delivery", jobByID(t, riverSchema, res.Message.JobID).Kind)
	})

	t.Run("QuotedSchemaName", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		// Mixed case survives only when every statement quotes the name.
		schema := "Mixed_" + newSchemaName()
		t.Cleanup(func() { dropSchema(t, schema) })
		require.NoError(t, outbound.Migrate(ctx, testPool, &outbound.MigrateOpts{Schema: schema}))
		client, err := outbound.New(testPool, &outbound.Config{Schema: schema})
		require.NoError(t, err)
		_, err = client.BulkTrigger(ctx, []int64{1, 2}, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b"})
		require.NoError(t, err)
		require.Equal(t, 2, countRows(t, schema, "messages"))
	})

	t.Run("Migrations", func(t *testing.T) {
		t.Parallel()
		migrations, err := outbound.Migrations()
		require.NoError(t, err)
		require.NotEmpty(t, migrations)
		for i, m := range migrations {
			require.Equal(t, i+1, m.Version)
			require.NotEmpty(t, m.Name)
			require.Contains(t, m.Up, "CREATE TABLE")
			require.Contains(t, m.Down, "DROP TABLE")
		}
	})

	t.Run("BadTargetVersion", func(t *testing.T) {
		t.Parallel()
		err := outbound.MigrateDown(ctxT(t), testPool, &outbound.MigrateOpts{Schema: newSchemaName(), TargetVersion: 999})
		require.ErrorIs(t, err, outbound.ErrInvalidArgument)
		require.ErrorContains(t, err, "TargetVersion")
	})
}
