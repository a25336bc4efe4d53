package outbound_test

import (
	"os"
	"regexp"
	"testing"

	"github.com/cairnloop/outbound"
	"github.com/cairnloop/outbound/internal/sqltext"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"
)

// TestRiverJobStatements reads the effect of each statement that writes
// River's tables (internal/sqltext/riverjobs.go) back through River's public
// API, and compares it with what River's own API leaves. The third,
// RecordSentCompleteJob, is read back by TestDelivery/Sent, which also checks
// that the message and its job were updated by one transaction.
func TestRiverJobStatements(t *testing.T) {
	t.Parallel()

	t.Run("DeleteUnusedJobs", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		b := setup(t)
		jobs := hostRiver(t, b.schema)
		first := mustTrigger(ctx, t, b.client, 60, &outbound.TriggerOpts{TemplateID: "recovery"})
		// The duplicate inserts its job before it learns the key is taken,
		// then deletes it; job ids come from one sequence.
		dup := mustTrigger(ctx, t, b.client, 60, &outbound.TriggerOpts{TemplateID: "recovery"})
		require.True(t, dup.Duplicate)
		_, err := jobs.JobGet(ctx, first.Message.JobID+1)
		require.ErrorIs(t, err, river.ErrNotFound)
		listed, err := jobs.JobList(ctx, river.NewJobListParams().Kinds(outbound.DeliveryJobKind))
		require.NoError(t, err)
		require.Len(t, listed.Jobs, 1)
		require.Equal(t, first.Message.JobID, listed.Jobs[0].ID)
	})

	t.Run("CancelJobs", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		b := setup(t)
		jobs := hostRiver(t, b.schema)
		ours := mustTrigger(ctx, t, b.client, 62, &outbound.TriggerOpts{TemplateID: "recovery"})
		theirs := mustTrigger(ctx, t, b.client, 63, &outbound.TriggerOpts{TemplateID: "recovery"})

		require.NoError(t, b.client.CancelMessage(ctx, ours.Message.ID, nil))
		_, err := jobs.JobCancel(ctx, theirs.Message.JobID)
		require.NoError(t, err)

		got, err := jobs.JobGet(ctx, ours.Message.JobID)
		require.NoError(t, err)
		want, err := jobs.JobGet(ctx, theirs.Message.JobID)
		require.NoError(t, err)
		require.Equal(t, want.State, got.State)
		require.Equal(t, rivertype.JobStateCancelled, got.State)
		require.NotNil(t, got.FinalizedAt)
		require.Contains(t, string(got.Metadata), "cancel_attempted_at")
		require.Contains(t, string(want.Metadata), "cancel_attempted_at")
	})
}

// TestRiverJobStatementsPinnedToRiverVersion fails when the River this
// module builds with (go.mod's) is not the one the library's own writes to
// River's tables (internal/sqltext/riverjobs.go, used by river_jobs.go and
// outboundtest's Worker) were written and tested for. Upgrading River means reading those three
// statements against its river_job table and its JobCompleteTx, JobCancel
// and JobDeleteMany, running TestRiverJobStatements, and then moving the pin.
func TestRiverJobStatementsPinnedToRiverVersion(t *testing.T) {
	t.Parallel()
	goMod, err := os.ReadFile("go.mod")
	require.NoError(t, err)
	required := regexp.MustCompile(`(?m)^\s*github\.com/riverqueue/river (v\S+)`).FindSubmatch(goMod)
	require.NotNil(t, required, "go.mod does not require github.com/riverqueue/river")
	require.Equal(t, sqltext.RiverVersion, string(required[1]),
		"go.mod's River is not the one the statements of internal/sqltext/riverjobs.go were written for: check them against River %s, then move sqltext.RiverVersion", required[1])
}
