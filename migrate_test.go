package outbound_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cairnloop/outbound"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
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
		migrations, err := outbound.Migrations()
		require.NoError(t, err)
		require.Equal(t, len(migrations), countRows(t, schema, "outbound_migration"))
	})

	t.Run("ConcurrentProcesses", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		schema := newSchemaName()
		t.Cleanup(func() { dropSchema(schema) })

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
		migrations, err := outbound.Migrations()
		require.NoError(t, err)
		require.Equal(t, len(migrations), countRows(t, schema, "outbound_migration"))
		client, err := outbound.New(testPool, &outbound.Config{Schema: schema})
		require.NoError(t, err)
		mustTrigger(ctx, t, client, 1, &outbound.TriggerOpts{TemplateID: "t"})
	})

	// LockPerSchema holds one schema's migration mid-way, on a table lock
	// it needs: a migration of another schema goes on beside it, a second
	// migration of the same schema waits for the first on its advisory lock,
	// and so does River's migration of that schema for a library schema
	// whose River lives there. Before, one database-wide lock queued them
	// all behind the first.
	t.Run("LockPerSchema", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		held, other, sharing := newSchemaName(), newSchemaName(), newSchemaName()
		t.Cleanup(func() { dropSchema(held); dropSchema(other); dropSchema(sharing) })
		for _, schema := range []string{held, other} {
			require.NoError(t, outbound.Migrate(ctx, testPool, &outbound.MigrateOpts{Schema: schema, RiverSchema: schema}))
		}
		appName := "obt_lock_" + held
		pool := newTestPool(t, 6, func(c *pgxpool.Config) { c.ConnConfig.RuntimeParams["application_name"] = appName })
		waiting := func(event string) int {
			var n int
			require.NoError(t, testPool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
				WHERE application_name = $1 AND wait_event_type = 'Lock' AND wait_event = $2`, appName, event).Scan(&n))
			return n
		}
		migrateAsync := func(opts *outbound.MigrateOpts) chan error {
			done := make(chan error, 1)
			go func() { done <- outbound.Migrate(ctx, pool, opts) }()
			return done
		}

		// A migration of held, stopped while it holds held's lock: it records
		// the River schema in a table locked here.
		blocker, err := testPool.Begin(ctx)
		require.NoError(t, err)
		defer func() { _ = blocker.Rollback(ctx) }()
		_, err = blocker.Exec(ctx, "LOCK TABLE "+table(held, "installation")+" IN ACCESS EXCLUSIVE MODE")
		require.NoError(t, err)
		first := migrateAsync(&outbound.MigrateOpts{Schema: held, RiverSchema: held})
		require.Eventually(t, func() bool { return waiting("relation") == 1 }, waitCeiling, 5*time.Millisecond,
			"the first migration of the held schema did not reach the locked table")

		// Another schema migrates beside it, from scratch, River included.
		besideCtx, cancel := context.WithTimeout(ctx, waitCeiling)
		defer cancel()
		require.NoError(t, outbound.Migrate(besideCtx, pool, &outbound.MigrateOpts{Schema: other + "_new", RiverSchema: other}),
			"a migration of another schema waited for the held one")
		t.Cleanup(func() { dropSchema(other + "_new") })
		require.True(t, tableExists(t, other+"_new", "messages"))

		// The same schema waits its turn; so does River's migration in it.
		second := migrateAsync(&outbound.MigrateOpts{Schema: held, RiverSchema: held})
		third := migrateAsync(&outbound.MigrateOpts{Schema: sharing, RiverSchema: held})
		require.Eventually(t, func() bool { return waiting("advisory") == 2 }, waitCeiling, 5*time.Millisecond,
			"the second migration of the held schema and River's migration there did not wait on its lock")
		// The library's part of the third, in its own schema, went ahead.
		require.True(t, tableExists(t, sharing, "messages"))
		require.Empty(t, first)
		require.Empty(t, second)
		require.Empty(t, third)

		require.NoError(t, blocker.Rollback(ctx))
		for _, done := range []chan error{first, second, third} {
			require.NoError(t, <-done)
		}
		require.Equal(t, held, recordedRiverSchema(t, sharing))
	})

	t.Run("UpDownUp", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		schema := migratedSchema(t)
		client, err := outbound.New(testPool, &outbound.Config{Schema: schema})
		require.NoError(t, err)
		mustTrigger(ctx, t, client, 1, &outbound.TriggerOpts{TemplateID: "t"})

		require.NoError(t, outbound.MigrateDown(ctx, testPool, &outbound.MigrateOpts{Schema: schema}))
		for _, name := range []string{"messages", "bulk_envelopes", "audit_events"} {
			require.False(t, tableExists(t, schema, name), name)
		}
		require.Zero(t, countRows(t, schema, "outbound_migration"))
		require.True(t, tableExists(t, schema, "river_job"), "River's tables are River's to remove")
		// Down again is a no-op.
		require.NoError(t, outbound.MigrateDown(ctx, testPool, &outbound.MigrateOpts{Schema: schema}))

		require.NoError(t, outbound.Migrate(ctx, testPool, &outbound.MigrateOpts{Schema: schema}))
		mustTrigger(ctx, t, client, 1, &outbound.TriggerOpts{TemplateID: "t"})
		require.Equal(t, 1, countRows(t, schema, "messages"))
	})

	// Down from the lease (002) to 001, with messages in the statuses 002
	// added: in flight goes back to pending, unconfirmed to sent, so that
	// both keep their dedup key under 001's index; then up again.
	t.Run("LeaseDownAndUp", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		schema := migratedSchema(t)
		client, err := outbound.New(testPool, &outbound.Config{Schema: schema})
		require.NoError(t, err)
		bulk := mustBulkTrigger(ctx, t, client, []int64{1, 2, 3}, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b"})
		for i, status := range []string{"delivering", "unconfirmed"} {
			_, err := testPool.Exec(ctx, "UPDATE "+table(schema, "messages")+" SET status = $2, claim_id = gen_random_uuid(), claimed_until = now() WHERE id = $1",
				bulk.Messages[i].ID, status)
			require.NoError(t, err)
		}

		require.NoError(t, outbound.MigrateDown(ctx, testPool, &outbound.MigrateOpts{Schema: schema, TargetVersion: 1}))
		require.Equal(t, 1, countRows(t, schema, "outbound_migration"))
		var statuses []string
		require.NoError(t, testPool.QueryRow(ctx, "SELECT array_agg(status || '/' || (metadata->>'status') ORDER BY conversation_id) FROM "+
			table(schema, "messages")).Scan(&statuses))
		require.Equal(t, []string{"pending/pending", "sent/sent", "pending/pending"}, statuses)
		_, err = testPool.Exec(ctx, "UPDATE "+table(schema, "messages")+" SET status = 'delivering' WHERE id = $1", bulk.Messages[0].ID) // refused by 001's constraint
		require.ErrorContains(t, err, "messages_status_check", "001's statuses are back")

		require.NoError(t, outbound.Migrate(ctx, testPool, &outbound.MigrateOpts{Schema: schema}))
		again := mustTrigger(ctx, t, client, 2, &outbound.TriggerOpts{TemplateID: "t", BulkEnvelopeID: bulk.Envelope.ID})
		require.True(t, again.Duplicate, "the once-unconfirmed message keeps its key")
	})

	// Down from the dedup window (003) is refused while a key released by
	// an old message is held by a newer one: 002's index could not hold
	// both. Once the newer one is gone, down and up again work.
	t.Run("DedupWindowDownAndUp", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		schema := migratedSchema(t)
		client, err := outbound.New(testPool, &outbound.Config{Schema: schema})
		require.NoError(t, err)
		first := mustTrigger(ctx, t, client, 1, &outbound.TriggerOpts{TemplateID: "t"})
		newFactory(schema).ageMessage(t, first.Message.ID, outbound.MessageStatusSent, 25*time.Hour)
		second := mustTrigger(ctx, t, client, 1, &outbound.TriggerOpts{TemplateID: "t"})
		require.False(t, second.Duplicate)

		err = outbound.MigrateDown(ctx, testPool, &outbound.MigrateOpts{Schema: schema, TargetVersion: 2})
		require.ErrorContains(t, err, "cannot revert 003_dedup_window: 1 messages released their dedup key")
		migrations, err := outbound.Migrations()
		require.NoError(t, err)
		require.Equal(t, len(migrations), countRows(t, schema, "outbound_migration"), "nothing was reverted")

		require.NoError(t, client.CancelMessage(ctx, second.Message.ID, nil))
		require.NoError(t, outbound.MigrateDown(ctx, testPool, &outbound.MigrateOpts{Schema: schema, TargetVersion: 2}))
		require.Equal(t, 2, countRows(t, schema, "outbound_migration"))
		all, holding := keyHolders(t, schema, 1, "t")
		require.Equal(t, []int{2, 1}, []int{all, holding}, "the old sent message holds its key again, as under 002")

		require.NoError(t, outbound.Migrate(ctx, testPool, &outbound.MigrateOpts{Schema: schema}))
		again := mustTrigger(ctx, t, client, 1, &outbound.TriggerOpts{TemplateID: "t"})
		require.False(t, again.Duplicate, "its window has passed: it is released again")
	})

	// Down from bounded refusals (004) deletes the refusals whose list was
	// cut and keeps the others; up again gives those a digest, computed in
	// SQL, that the library's own matches: a retry still replays.
	t.Run("BoundedRefusalsDownAndUp", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		schema := migratedSchema(t)
		client, err := outbound.New(testPool, &outbound.Config{Schema: schema, MaxBatchSize: 2})
		require.NoError(t, err)
		refuse := func(ids []int64, envelopeID uuid.UUID) *outbound.BatchTooLargeError {
			_, err := client.BulkTrigger(ctx, ids, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b", EnvelopeID: envelopeID})
			var tooLarge *outbound.BatchTooLargeError
			require.ErrorAs(t, err, &tooLarge)
			return tooLarge
		}
		short := refuse([]int64{5, 1, 9}, uuid.Nil)
		refuse(conversations(1500), uuid.Nil)
		require.Equal(t, 2, countRows(t, schema, "bulk_envelopes"))

		require.NoError(t, outbound.MigrateDown(ctx, testPool, &outbound.MigrateOpts{Schema: schema, TargetVersion: 3}))
		require.Equal(t, 1, countRows(t, schema, "bulk_envelopes"), "the cut list is gone")
		require.NoError(t, outbound.Migrate(ctx, testPool, &outbound.MigrateOpts{Schema: schema}))
		replayed := refuse([]int64{5, 1, 9}, short.EnvelopeID)
		require.Equal(t, short.EnvelopeID, replayed.EnvelopeID)
		_, err = client.BulkTrigger(ctx, []int64{5, 1, 8}, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b", EnvelopeID: short.EnvelopeID})
		require.ErrorIs(t, err, outbound.ErrIdempotencyConflict)
	})

	// An envelope recorded before migration 007 kept no schedule: a retry of
	// it is compared on everything else, and replays whatever its schedule.
	t.Run("EnvelopeScheduleDownAndUp", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		schema := migratedSchema(t)
		client, err := outbound.New(testPool, &outbound.Config{Schema: schema})
		require.NoError(t, err)
		opts := &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b", ScheduleIn: time.Hour, EnvelopeID: uuid.Must(uuid.NewV7())}
		mustBulkTrigger(ctx, t, client, []int64{1, 2}, opts)

		require.NoError(t, outbound.MigrateDown(ctx, testPool, &outbound.MigrateOpts{Schema: schema, TargetVersion: 6}))
		require.NoError(t, outbound.Migrate(ctx, testPool, &outbound.MigrateOpts{Schema: schema}))
		opts.ScheduleIn = 0
		res := mustBulkTrigger(ctx, t, client, []int64{1, 2}, opts)
		require.True(t, res.Replayed, "the schedule is unknown, so not compared")
		opts.Actor = "agent:9"
		_, err = client.BulkTrigger(ctx, []int64{1, 2}, opts)
		require.ErrorIs(t, err, outbound.ErrIdempotencyConflict)
		require.ErrorContains(t, err, "different actor")
	})

	// An envelope recorded before migration 008 kept no ScheduledAt,
	// Priority or MaxAttempts, as none could be asked for: a retry replays
	// when it asks for none, and conflicts when it asks for one.
	t.Run("EnvelopeDeliveryDownAndUp", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		schema := migratedSchema(t)
		require.NoError(t, outbound.MigrateDown(ctx, testPool, &outbound.MigrateOpts{Schema: schema, TargetVersion: 7}))
		envelopeID := uuid.Must(uuid.NewV7())
		_, err := testPool.Exec(ctx, "INSERT INTO "+table(schema, "bulk_envelopes")+
			` (id, template_id, rendered_body, recipient_conversation_ids, count, effective_cap, status, schedule_in)
			VALUES ($1, 't', 'b', '{1,2}', 2, 25, 'refused_cap_exceeded', '0')`, envelopeID)
		require.NoError(t, err)
		require.NoError(t, outbound.Migrate(ctx, testPool, &outbound.MigrateOpts{Schema: schema}))

		client, err := outbound.New(testPool, &outbound.Config{Schema: schema})
		require.NoError(t, err)
		opts := &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b", EnvelopeID: envelopeID}
		_, err = client.BulkTrigger(ctx, []int64{1, 2}, opts)
		require.ErrorIs(t, err, outbound.ErrBatchTooLarge, "the stored refusal replays")
		opts.Priority = 2
		_, err = client.BulkTrigger(ctx, []int64{1, 2}, opts)
		require.ErrorIs(t, err, outbound.ErrIdempotencyConflict)
		require.ErrorContains(t, err, "different priority")
	})

	// The statuses that hold a dedup key are stated once in the schema, as
	// the generated column the dedup index reads; the Go copy used by bulk
	// replays must agree with it for every status.
	t.Run("DedupKeyRule", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		schema := migratedSchema(t)
		client, err := outbound.New(testPool, &outbound.Config{Schema: schema})
		require.NoError(t, err)
		statuses := []outbound.MessageStatus{
			outbound.MessageStatusPending, outbound.MessageStatusDelivering, outbound.MessageStatusSent,
			outbound.MessageStatusFailed, outbound.MessageStatusUnconfirmed, outbound.MessageStatusDiscarded,
			outbound.MessageStatusCancelled,
		}
		for i, status := range statuses {
			res := mustTrigger(ctx, t, client, int64(i+1), &outbound.TriggerOpts{TemplateID: "t"})
			var (
				holds, awaiting bool
				final           *string
			)
			require.NoError(t, testPool.QueryRow(ctx, "UPDATE "+table(schema, "messages")+" SET status = $2 WHERE id = $1 RETURNING holds_dedup_key, awaiting_result, final_status",
				res.Message.ID, status).Scan(&holds, &awaiting, &final))
			require.Equal(t, holds, outbound.HoldsDedupKey(status), "status %s", status)
			// ListMessages picks the index of a status filter by the same
			// rule as the generated columns it reads.
			require.Equal(t, awaiting, outbound.AwaitingResult(status), "status %s", status)
			require.Equal(t, awaiting, final == nil, "status %s: final_status is set exactly when final", status)
			if final != nil {
				require.Equal(t, string(status), *final)
			}
			again := mustTrigger(ctx, t, client, int64(i+1), &outbound.TriggerOpts{TemplateID: "t"})
			require.Equal(t, holds, again.Duplicate, "status %s", status)
		}
	})

	// A host's own tool applies Migrations' SQL, which records each version,
	// so the client's schema check passes; the downs undo it all, and the
	// library's Migrate can take over from there.
	t.Run("OwnTool", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		schema := newSchemaName()
		t.Cleanup(func() { dropSchema(schema) })
		_, err := testPool.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize())
		require.NoError(t, err)
		migrations, err := outbound.Migrations()
		require.NoError(t, err)
		apply := func(sql string) {
			t.Helper()
			require.NoError(t, pgx.BeginFunc(ctx, testPool, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, "SET LOCAL search_path TO "+pgx.Identifier{schema}.Sanitize()); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, sql)
				return err
			}))
		}
		for _, m := range migrations {
			apply(m.Up)
		}
		migrator, err := rivermigrate.New(riverpgxv5.New(testPool), &rivermigrate.Config{Schema: schema})
		require.NoError(t, err)
		_, err = migrator.Migrate(ctx, rivermigrate.DirectionUp, nil)
		require.NoError(t, err)
		require.Equal(t, len(migrations), countRows(t, schema, "outbound_migration"))

		client, err := outbound.New(testPool, &outbound.Config{Schema: schema})
		require.NoError(t, err)
		_, err = client.Trigger(ctx, 1, &outbound.TriggerOpts{TemplateID: "t"})
		require.NoError(t, err, "the schema check passes")

		for _, m := range slices.Backward(migrations) {
			apply(m.Down)
		}
		require.False(t, tableExists(t, schema, "messages"))
		require.Zero(t, countRows(t, schema, "outbound_migration"))
		require.NoError(t, outbound.Migrate(ctx, testPool, &outbound.MigrateOpts{Schema: schema}))
		require.Equal(t, len(migrations), countRows(t, schema, "outbound_migration"))
	})

	t.Run("SeparateRiverSchema", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		schema, riverSchema := migratedSchemas(t)
		require.True(t, tableExists(t, schema, "messages"))
		require.False(t, tableExists(t, schema, "river_job"))
		require.True(t, tableExists(t, riverSchema, "river_job"))

		client, err := outbound.New(testPool, &outbound.Config{Schema: schema, RiverSchema: riverSchema})
		require.NoError(t, err)
		res := mustTrigger(ctx, t, client, 1, &outbound.TriggerOpts{TemplateID: "t"})
		require.Equal(t, "outbound_delivery", jobByID(t, riverSchema, res.Message.JobID).Kind)
	})

	// KeepsTheRecordedRiverSchema runs Migrate a second time, as another
	// process of the service would, without MigrateOpts.RiverSchema: the
	// River schema recorded by the first stays recorded, and River's tables
	// are migrated there, not beside the library's. Before, the second run
	// recorded the library's schema, and the correctly configured client's
	// Reconcile then failed with ErrSchemaMismatch.
	t.Run("KeepsTheRecordedRiverSchema", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		schema, riverSchema := migratedSchemas(t)
		client, err := outbound.New(testPool, &outbound.Config{Schema: schema, RiverSchema: riverSchema})
		require.NoError(t, err)
		mustTrigger(ctx, t, client, 1, &outbound.TriggerOpts{TemplateID: "t"})

		require.NoError(t, outbound.Migrate(ctx, testPool, &outbound.MigrateOpts{Schema: schema}))
		require.Equal(t, riverSchema, recordedRiverSchema(t, schema))
		require.False(t, tableExists(t, schema, "river_job"), "River's tables migrated beside the library's")
		_, err = client.Reconcile(ctx)
		require.NoError(t, err)

		// Asked to, Migrate moves the record, and River's tables with it.
		require.NoError(t, outbound.Migrate(ctx, testPool, &outbound.MigrateOpts{Schema: schema, RiverSchema: schema}))
		require.Equal(t, schema, recordedRiverSchema(t, schema))
		require.True(t, tableExists(t, schema, "river_job"))
		_, err = client.Reconcile(ctx)
		require.ErrorIs(t, err, outbound.ErrSchemaMismatch)
	})

	// NoSilentSecondRiver: on a schema with no River schema recorded,
	// Migrate without RiverSchema used to make a River beside the library's
	// tables even when the host's own River was where the connection looks
	// for it. It now asks which to use, and writes nothing until told.
	t.Run("NoSilentSecondRiver", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		hostRiver, schema, own, next := newSchemaName(), newSchemaName(), newSchemaName(), newSchemaName()
		t.Cleanup(func() {
			for _, s := range []string{hostRiver, schema, own, next} {
				dropSchema(s)
			}
		})
		// The host's River, migrated by River's own tool, in the schema its
		// connections' search_path names, as public is by default.
		_, err := testPool.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{hostRiver}.Sanitize())
		require.NoError(t, err)
		migrator, err := rivermigrate.New(riverpgxv5.New(testPool), &rivermigrate.Config{Schema: hostRiver})
		require.NoError(t, err)
		_, err = migrator.Migrate(ctx, rivermigrate.DirectionUp, nil)
		require.NoError(t, err)
		pool := newTestPool(t, 2, func(c *pgxpool.Config) { c.ConnConfig.RuntimeParams["search_path"] = hostRiver })

		err = outbound.Migrate(ctx, pool, &outbound.MigrateOpts{Schema: schema})
		require.ErrorIs(t, err, outbound.ErrInvalidArgument)
		require.ErrorContains(t, err, "MigrateOpts.RiverSchema")
		require.ErrorContains(t, err, `River's tables already exist in schema "`+hostRiver+`"`)
		require.ErrorContains(t, err, `set RiverSchema to "`+hostRiver+`"`)
		require.ErrorContains(t, err, `or to "`+schema+`" for a River of the library's own`)
		var exists bool
		require.NoError(t, testPool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", schema).Scan(&exists))
		require.False(t, exists, "the refused migration left its schema behind")

		// Told to use the host's River, it does, and later runs keep it.
		require.NoError(t, outbound.Migrate(ctx, pool, &outbound.MigrateOpts{Schema: schema, RiverSchema: hostRiver}))
		require.NoError(t, outbound.Migrate(ctx, pool, &outbound.MigrateOpts{Schema: schema}))
		require.Equal(t, hostRiver, recordedRiverSchema(t, schema))
		require.False(t, tableExists(t, schema, "river_job"))

		// Told to make its own, it does.
		require.NoError(t, outbound.Migrate(ctx, pool, &outbound.MigrateOpts{Schema: own, RiverSchema: own}))
		require.True(t, tableExists(t, own, "river_job"))

		// A River the library made for one of its schemas is not a host's:
		// with the search_path at that schema, the next gets its own as
		// before.
		ownPool := newTestPool(t, 2, func(c *pgxpool.Config) { c.ConnConfig.RuntimeParams["search_path"] = own })
		require.NoError(t, outbound.Migrate(ctx, ownPool, &outbound.MigrateOpts{Schema: next}))
		require.Equal(t, next, recordedRiverSchema(t, next))
		require.True(t, tableExists(t, next, "river_job"))
	})

	t.Run("QuotedSchemaName", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		// Mixed case survives only when every statement quotes the name.
		schema := "Mixed_" + newSchemaName()
		t.Cleanup(func() { dropSchema(schema) })
		require.NoError(t, outbound.Migrate(ctx, testPool, &outbound.MigrateOpts{Schema: schema}))
		client, err := outbound.New(testPool, &outbound.Config{Schema: schema})
		require.NoError(t, err)
		mustBulkTrigger(ctx, t, client, []int64{1, 2}, &outbound.BulkTriggerOpts{TemplateID: "t", RenderedBody: "b"})
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
			require.NotEmpty(t, m.Up)
			require.NotEmpty(t, m.Down)
		}
		require.Contains(t, migrations[0].Up, "CREATE TABLE messages")
		require.Contains(t, migrations[0].Down, "DROP TABLE messages")
	})

	t.Run("BadTargetVersion", func(t *testing.T) {
		t.Parallel()
		err := outbound.MigrateDown(ctxT(t), testPool, &outbound.MigrateOpts{Schema: newSchemaName(), TargetVersion: 999})
		require.ErrorIs(t, err, outbound.ErrInvalidArgument)
		require.ErrorContains(t, err, "TargetVersion")
	})
}

// recordedRiverSchema reads the River schema Migrate recorded for a schema.
func recordedRiverSchema(tb testing.TB, schema string) string {
	tb.Helper()
	var riverSchema string
	require.NoError(tb, testPool.QueryRow(context.Background(), "SELECT river_schema FROM "+table(schema, "installation")).Scan(&riverSchema))
	return riverSchema
}
