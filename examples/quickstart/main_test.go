package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cairnloop/outbound/internal/devpg"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// TestQuickstart runs the quickstart against a throwaway cluster, checks its
// report, and checks that it dropped its schema.
func TestQuickstart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	cluster, err := devpg.Start(ctx)
	require.NoError(t, err)
	defer cluster.Stop()
	t.Setenv("DATABASE_URL", cluster.URL)

	var out bytes.Buffer
	require.NoError(t, run(ctx, &out))
	report := out.String()
	t.Log("\n" + report)

	// Every message is delivered once, but for the flaky one, twice; the
	// single Trigger, made after the bulk, first.
	require.Equal(t, 27, strings.Count(report, "  deliver to conversation "))
	require.Equal(t, 26, strings.Count(report, " sent after "))
	first := report[strings.Index(report, "  deliver to conversation "):]
	require.True(t, strings.HasPrefix(first, "  deliver to conversation 42 (recovery), attempt 1: ok\n"), "first delivery: %.60s", first)
	for _, want := range []string{
		"outbound quickstart on DATABASE_URL",
		"Trigger(42, recovery)          -> message ",
		", priority 1\n",
		"Trigger(42, recovery) again    -> duplicate=true, same message=true",
		", submitted, 25 personalised messages",
		`  e.g. conversation 100 to ada@example.com: "Hi Ada, the outage on ticket #5100 is over. Thanks for your patience!"`,
		"-> refused: 26 over cap 25, envelope ",
		`refused_cap_exceeded  count=26  cap=25 requested_by=agent:7 reason="batch_size 26 exceeds cap 25"`,
		"submitted             count=25  cap=25 requested_by=agent:7",
		"Starting the delivery worker, one delivery at a time:",
		"  deliver to conversation 42 (recovery), attempt 1: ok\n",
		"  deliver to conversation 107 (outage-resolved), attempt 1: provider timed out\n",
		"  deliver to conversation 107 (outage-resolved), attempt 2: ok\n",
		"Final outcomes heard through Subscribe:\n  message_sent (notifier_ok)     26\n",
		"Final status of every message, read back:",
		"  conversation 42   recovery         sent after 1 attempt(s)\n",
		"  conversation 107  outage-resolved  sent after 2 attempt(s) (retried)\n",
		"  sent                  26\n",
		"  outbound/completed    26\n",
		"Audit trail, oldest first: bulk_outbound_trigger, bulk_outbound_refused, outbound_trigger",
	} {
		require.Contains(t, report, want)
	}

	conn, err := pgx.Connect(ctx, cluster.URL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var schemas int
	require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM pg_namespace WHERE nspname = $1", schema).Scan(&schemas))
	require.Zero(t, schemas, "the quickstart drops its schema")
}
