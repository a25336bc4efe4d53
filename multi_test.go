package outbound_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/cairnloop/outbound"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

func TestBulkTriggerStatementsConstantInN(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	schema := migratedSchema(t)

	counter := &statementCounter{}
	config, err := pgxpool.ParseConfig(testDatabaseURL)
	require.NoError(t, err)
	config.MaxConns = 2
	config.ConnConfig.Tracer = counter
	pool, err := pgxpool.NewWithConfig(ctx, config)
	require.NoError(t, err)
	defer pool.Close()
	require.NoError(t, pool.Ping(ctx)) // warm a connection outside the counts

	audit, err := outbound.NewTableAuditor(pool, schema)
	require.NoError(t, err)

	type keys int
	const (
		fresh      keys = iota // no recipient's key is held
		held                   // half the recipients' keys are held
		pastWindow             // half are held by messages sent past the window
		personal               // every recipient has its own body, data and time
	)
	statements := func(n int, k keys) int64 {
		// A fresh client per call: River rate-limits its insert NOTIFY per
		// client, and every call here should take the same path.
		client, err := outbound.New(pool, &outbound.Config{Schema: schema, MaxBatchSize: n, Auditor: audit})
		require.NoError(t, err)
		// The first call of a client checks the schema; count a later one.
		_, err = client.EnvelopeProgress(ctx, uuid.Nil)
		require.ErrorIs(t, err, outbound.ErrNotFound)
		envelopeID := uuid.Must(uuid.NewV7())
		ids := conversations(n)
		if k == held || k == pastWindow {
			// Half the keys held, written in one transaction: each in its
			// own would make this test the suite's slowest.
			tx, err := testPool.Begin(ctx)
			require.NoError(t, err)
			for _, id := range ids[:n/2] {
				_, err := client.TriggerTx(ctx, tx, id, &outbound.TriggerOpts{TemplateID: fmt.Sprint("t", n), BulkEnvelopeID: envelopeID})
				require.NoError(t, err)
			}
			require.NoError(t, tx.Commit(ctx))
			if k == pastWindow {
				_, err := testPool.Exec(ctx, "UPDATE "+table(schema, "messages")+` SET status = 'sent', metadata = jsonb_set(metadata, '{status}', '"sent"'),
					sent_at = now() - interval '25 hours', updated_at = now() - interval '25 hours' WHERE bulk_envelope_id = $1`, envelopeID)
				require.NoError(t, err)
			}
		}
		opts := &outbound.BulkTriggerOpts{TemplateID: fmt.Sprint("t", n), RenderedBody: "b", EnvelopeID: envelopeID}
		if k == personal {
			opts.RenderedBody, opts.Data = "", map[string]any{"channel": "sms"}
			opts.Recipients = make(map[int64]outbound.BulkRecipient, n)
			for _, id := range ids {
				opts.Recipients[id] = outbound.BulkRecipient{RenderedBody: fmt.Sprint("Hi ", id), Data: map[string]any{"phone": fmt.Sprint("+1555", id)},
					ScheduledAt: time.Now().Add(time.Duration(id) * time.Minute)}
			}
		}
		counter.n.Store(0)
		counter.notifies.Store(0)
		res := mustBulkTrigger(ctx, t, client, ids, opts)
		require.Len(t, res.Messages, n)
		if k == pastWindow {
			for _, m := range res.Messages {
				require.Equal(t, outbound.MessageStatusPending, m.Status, "a new message for every recipient")
			}
		}
		require.LessOrEqual(t, counter.notifies.Load(), int64(1), "at most one NOTIFY per call")
		return counter.n.Load()
	}

	small, large := statements(2, fresh), statements(500, fresh)
	t.Logf("statements per BulkTrigger (besides River's NOTIFY): N=2: %d, N=500: %d", small, large)
	require.Equal(t, small, large)
	require.LessOrEqual(t, small, int64(7))

	smallDup, largeDup := statements(2, held), statements(500, held)
	t.Logf("statements per BulkTrigger with duplicates (besides River's NOTIFY): N=2: %d, N=500: %d", smallDup, largeDup)
	require.Equal(t, smallDup, largeDup)

	smallPast, largePast := statements(2, pastWindow), statements(500, pastWindow)
	t.Logf("statements per BulkTrigger with keys held past the dedup window (besides River's NOTIFY): N=2: %d, N=500: %d", smallPast, largePast)
	require.Equal(t, smallPast, largePast)

	smallPersonal, largePersonal := statements(2, personal), statements(500, personal)
	t.Logf("statements per personalised BulkTrigger (besides River's NOTIFY): N=2: %d, N=500: %d", smallPersonal, largePersonal)
	require.Equal(t, smallPersonal, largePersonal)
	require.Equal(t, small, smallPersonal, "a personalised bulk takes the statements of one with one body")
}

// TestStagedMessagesMatchRows checks the messages that Trigger and
// BulkTrigger return against the rows read back: those buildTriggerTx made
// from its parameters, and those it read as holders of a dedup key.
func TestStagedMessagesMatchRows(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxT(t)
	requireRows := func(t *testing.T, msgs ...*outbound.Message) {
		t.Helper()
		for _, m := range msgs {
			row, err := b.client.Message(ctx, m.ID)
			require.NoError(t, err)
			require.Equal(t, row, m)
		}
	}

	t.Run("Trigger", func(t *testing.T) {
		t.Parallel()
		res := mustTrigger(ctx, t, b.client, 1, &outbound.TriggerOpts{TemplateID: "plain"})
		requireRows(t, res.Message)
		res = mustTrigger(ctx, t, b.client, 1, &outbound.TriggerOpts{TemplateID: "plain"})
		require.True(t, res.Duplicate)
		requireRows(t, res.Message)
	})

	t.Run("TriggerWithEnvelopeAndSchedule", func(t *testing.T) {
		t.Parallel()
		res := mustTrigger(ctx, t, b.client, 2, &outbound.TriggerOpts{TemplateID: "t", Content: "hello", BulkEnvelopeID: uuid.Must(uuid.NewV7()), ScheduleIn: time.Hour})
		requireRows(t, res.Message)
	})

	t.Run("BulkWithHeldAndExpiredKeys", func(t *testing.T) {
		t.Parallel()
		envelopeID := uuid.Must(uuid.NewV7())
		opts := &outbound.TriggerOpts{TemplateID: "bulk", BulkEnvelopeID: envelopeID}
		mustTrigger(ctx, t, b.client, 11, opts)
		sent := mustTrigger(ctx, t, b.client, 12, opts)
		b.factory.ageMessage(t, sent.Message.ID, outbound.MessageStatusSent, 25*time.Hour)
		res := mustBulkTrigger(ctx, t, b.client, []int64{10, 11, 12}, &outbound.BulkTriggerOpts{TemplateID: "bulk", RenderedBody: "b", EnvelopeID: envelopeID, ScheduleIn: time.Minute})
		require.NotEqual(t, sent.Message.ID, res.Messages[2].ID, "a new message past the window")
		requireRows(t, res.Messages...)
	})

	t.Run("TriggerWithData", func(t *testing.T) {
		t.Parallel()
		res := mustTrigger(ctx, t, b.client, 3, &outbound.TriggerOpts{TemplateID: "t", Data: map[string]any{"phone": "+15550100", "retries": 2, "tags": []string{"vip"}}})
		require.False(t, res.Message.Rendered)
		requireRows(t, res.Message)
	})

	// Each recipient's own body, data and time, through the paths of held
	// keys and of keys held past the window.
	t.Run("PersonalisedBulkWithHeldAndExpiredKeys", func(t *testing.T) {
		t.Parallel()
		envelopeID := uuid.Must(uuid.NewV7())
		opts := &outbound.TriggerOpts{TemplateID: "personal", BulkEnvelopeID: envelopeID}
		mustTrigger(ctx, t, b.client, 21, opts)
		sent := mustTrigger(ctx, t, b.client, 22, opts)
		b.factory.ageMessage(t, sent.Message.ID, outbound.MessageStatusSent, 25*time.Hour)
		at := time.Now().Add(time.Hour).Truncate(time.Microsecond)
		res := mustBulkTrigger(ctx, t, b.client, []int64{20, 21, 22, 23}, &outbound.BulkTriggerOpts{TemplateID: "personal", RenderedBody: "shared",
			EnvelopeID: envelopeID, Data: map[string]any{"channel": "sms"},
			Recipients: map[int64]outbound.BulkRecipient{
				20: {RenderedBody: "Hi Ana", Data: map[string]any{"phone": "+15550100"}},
				22: {RenderedBody: "Hi Bo", ScheduledAt: at},
				23: {Data: map[string]any{"channel": "email", "address": "cy@example.com"}},
			}})
		requireRows(t, res.Messages...)
		require.Equal(t, "Hi Ana", res.Messages[0].Content)
		require.Equal(t, map[string]any{"channel": "sms", "phone": "+15550100"}, res.Messages[0].Data)
		require.Equal(t, "Hi Bo", res.Messages[2].Content)
		require.True(t, res.Messages[2].ScheduledAt.Equal(at))
		require.Equal(t, "shared", res.Messages[3].Content)
		require.Equal(t, map[string]any{"channel": "email", "address": "cy@example.com"}, res.Messages[3].Data)
	})
}
