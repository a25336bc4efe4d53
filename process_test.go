package outbound_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cairnloop/outbound"
	"github.com/stretchr/testify/require"
)

// workerProcess is a running worker process.
type workerProcess struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
}

// startWorkerProcess starts a worker process on the schema and waits until
// it is working. The process is stopped when the test ends if it still runs.
// env adds NAME=value settings for the process.
func startWorkerProcess(t testing.TB, schema string, env ...string) *workerProcess {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), workerSchemaEnv+"="+schema, workerDatabaseURLEnv+"="+testDatabaseURL)
	cmd.Env = append(cmd.Env, env...)
	// Dies with the test binary, should that be killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p := &workerProcess{cmd: cmd, stderr: &syncBuffer{}}
	cmd.Stderr = p.stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err == nil && strings.TrimSpace(line) != "ready" {
			err = fmt.Errorf("unexpected output %q", line)
		}
		ready <- err
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case err := <-ready:
		require.NoError(t, err, "worker process stderr: %s", p.stderr.String())
	case <-time.After(waitCeiling):
		t.Fatalf("worker process not ready after %s; stderr: %s", waitCeiling, p.stderr.String())
	}
	return p
}

// waitKilled waits for a process started with workerKillAtCallEnv to kill
// itself, and reaps it.
func (p *workerProcess) waitKilled(t *testing.T) {
	t.Helper()
	exited := make(chan error, 1)
	go func() { exited <- p.cmd.Wait() }()
	select {
	case <-exited:
	case <-time.After(waitCeiling):
		t.Fatalf("worker process did not kill itself within %s; stderr: %s", waitCeiling, p.stderr.String())
	}
	status, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
	require.True(t, ok && status.Signaled() && status.Signal() == syscall.SIGKILL,
		"worker process ended %s, not by its own SIGKILL; stderr: %s", p.cmd.ProcessState, p.stderr.String())
}

// stop sends SIGTERM and waits for a clean exit.
func (p *workerProcess) stop(t testing.TB) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, p.cmd.Wait(), "worker process stderr: %s", p.stderr.String())
}

// createDeliveriesTable makes the table worker processes record calls in.
func createDeliveriesTable(t *testing.T, schema string) {
	t.Helper()
	_, err := testPool.Exec(context.Background(), "CREATE TABLE "+table(schema, "test_deliveries")+
		" (message_id uuid NOT NULL, conversation_id bigint NOT NULL, attempt int NOT NULL, pid int NOT NULL,"+
		" at timestamptz NOT NULL DEFAULT now())")
	require.NoError(t, err)
}

// TestWorkerProcesses runs the worker in processes of its own: two sharing a
// bulk, and one killed mid-delivery.
func TestWorkerProcesses(t *testing.T) {
	t.Parallel()

	// SharedBulk runs two worker processes against one database
	// and checks that they share a bulk between them, each message sent once.
	t.Run("SharedBulk", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		schema := migratedSchema(t)
		createDeliveriesTable(t, schema)
		workers := []*workerProcess{startWorkerProcess(t, schema), startWorkerProcess(t, schema)}

		client, err := outbound.New(testPool, &outbound.Config{Schema: schema, MaxBatchSize: 300})
		require.NoError(t, err)
		const n = 300
		bulk := mustBulkTrigger(ctx, t, client, conversations(n), &outbound.BulkTriggerOpts{TemplateID: "outage", RenderedBody: "Back up."})

		require.Eventually(t, func() bool {
			progress, err := client.EnvelopeProgress(ctx, bulk.Envelope.ID)
			require.NoError(t, err)
			return progress.Sent == n
		}, waitCeiling, 50*time.Millisecond)
		for _, w := range workers {
			w.stop(t)
		}

		var calls, messages, duplicated int
		require.NoError(t, testPool.QueryRow(ctx, `SELECT count(*), count(DISTINCT message_id),
		(SELECT count(*) FROM (SELECT 1 FROM `+table(schema, "test_deliveries")+` GROUP BY message_id HAVING count(*) > 1) d)
		FROM `+table(schema, "test_deliveries")).Scan(&calls, &messages, &duplicated))
		require.Equal(t, n, messages, "every message reached a notifier")
		require.Zero(t, duplicated, "no message reached a notifier twice")
		require.Equal(t, n, calls)

		rows, err := testPool.Query(ctx, "SELECT pid, count(*) FROM "+table(schema, "test_deliveries")+" GROUP BY pid")
		require.NoError(t, err)
		perProcess := map[int]int{}
		for rows.Next() {
			var pid, count int
			require.NoError(t, rows.Scan(&pid, &count))
			perProcess[pid] = count
		}
		require.NoError(t, rows.Err())
		t.Logf("deliveries per process: %v", perProcess)
		require.Len(t, perProcess, 2, "both processes delivered")
		for _, w := range workers {
			require.Contains(t, perProcess, w.cmd.Process.Pid)
		}

		// The message rows agree: sent once, on the first attempt.
		for _, msg := range bulk.Messages {
			stored, err := client.Message(ctx, msg.ID)
			require.NoError(t, err)
			require.Equal(t, outbound.MessageStatusSent, stored.Status)
			require.Equal(t, 1, stored.Attempts)
		}
	})

	// Killed kills worker processes with SIGKILL mid-delivery, again and
	// again, then lets one finish, with River's rescue at the library's
	// defaults. Each process kills itself from inside a notifier call, once
	// the call is recorded, so that every kill lands between a call and the
	// record of its result, whatever the machine's speed. Every message ends
	// sent, none is lost, every notifier call for a message carried that
	// message's id, so a provider can drop the repeats that such a crash
	// causes, and a message a dead worker was delivering is attempted again
	// within NotifyTimeout + 2 minutes of its first call, or of a worker
	// running again if none ran then.
	t.Run("Killed", func(t *testing.T) {
		t.Parallel()
		notifyTimeout := time.Second
		if d, err := time.ParseDuration(os.Getenv(killTestNotifyTimeoutEnv)); err == nil {
			notifyTimeout = d
		}
		bound := notifyTimeout + 2*time.Minute
		ctx, cancel := context.WithTimeout(context.Background(), bound+2*time.Minute)
		defer cancel()
		schema := migratedSchema(t)
		createDeliveriesTable(t, schema)
		env := []string{workerNotifyTimeoutEnv + "=" + notifyTimeout.String(), workerNotifyDelayEnv + "=50ms"}
		kills := 4
		rescueAfter := notifyTimeout + 30*time.Second // the library's default
		if testing.Short() {
			// Fewer kills, and River's rescue as soon as the claim allows.
			kills = 2
			rescueAfter = notifyTimeout + 20*time.Second
			env = append(env, workerRescueAfterEnv+"="+rescueAfter.String())
		}

		client, err := outbound.New(testPool, &outbound.Config{Schema: schema, MaxBatchSize: 300})
		require.NoError(t, err)
		const n = 300
		bulk := mustBulkTrigger(ctx, t, client, conversations(n), &outbound.BulkTriggerOpts{TemplateID: "outage", RenderedBody: "Back up."})

		for range kills {
			// Killed within its first 25 calls, far short of the bulk, while
			// its other workers are mid-call too (4 workers, 50ms a call).
			killAt := 5 + rand.IntN(20)
			w := startWorkerProcess(t, schema, append(env, workerKillAtCallEnv+"="+strconv.Itoa(killAt))...)
			w.waitKilled(t)
		}
		var stuck int
		require.NoError(t, testPool.QueryRow(ctx, "SELECT count(*) FROM "+table(schema, "river_job")+
			" WHERE kind = 'outbound_delivery' AND state = 'running'").Scan(&stuck))
		progress, err := client.EnvelopeProgress(ctx, bulk.Envelope.ID)
		require.NoError(t, err)
		t.Logf("after %d kills: %d sent, %d in flight, %d jobs left running by dead workers", kills, progress.Sent, progress.Delivering, stuck)
		require.NotZero(t, stuck, "no kill landed mid-delivery")
		require.NotZero(t, progress.Delivering, "no kill left a message claimed")
		require.Less(t, progress.Sent, n, "the bulk was done before the last kill")

		// The jobs the dead workers left running wait for RescueStuckJobsAfter
		// (NotifyTimeout + 30s), for the new process to take over leadership
		// from the dead (up to 15s), and for River's rescuer, which runs every
		// 30s, first when its process becomes the leader; the rescued jobs run
		// again at once. Under -short the database is moved on instead of the
		// clock: the dead leader's lease and the dead attempts' claims run out,
		// and the stuck jobs look started rescueAfter ago, so that the new
		// process leads at once and its rescuer's first run takes them.
		if testing.Short() {
			ageDeadWorkers(t, schema, rescueAfter)
		}
		final := startWorkerProcess(t, schema, append(env, workerDebugLogEnv+"=1")...)
		var finalReady time.Time
		require.NoError(t, testPool.QueryRow(ctx, "SELECT now()").Scan(&finalReady))
		started, lastLog := time.Now(), time.Now()
		for {
			progress, err := client.EnvelopeProgress(ctx, bulk.Envelope.ID)
			require.NoError(t, err)
			if progress.Sent == n {
				break
			}
			if time.Since(lastLog) > 15*time.Second {
				lastLog = time.Now()
				t.Logf("%s after the last start: %d of %d sent, %d in flight", time.Since(started).Round(time.Second), progress.Sent, n, progress.Delivering)
			}
			if time.Since(started) > bound+30*time.Second {
				logUndelivered(t, schema, final)
				t.Fatalf("%d of %d messages left undelivered %s after the kills", n-progress.Sent, n, time.Since(started).Round(time.Second))
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Logf("all sent %s after the last start", time.Since(started).Round(time.Second))
		final.stop(t)

		// Every message reached a notifier, and every call for it carried its id
		// and its conversation: the calls recorded per conversation name one
		// message only.
		deliveries := table(schema, "test_deliveries")
		var calls, messages, conversationsWithTwoIDs, repeated int
		require.NoError(t, testPool.QueryRow(ctx, `SELECT count(*), count(DISTINCT message_id),
		(SELECT count(*) FROM (SELECT 1 FROM `+deliveries+` GROUP BY conversation_id HAVING count(DISTINCT message_id) > 1) c),
		(SELECT count(*) FROM (SELECT 1 FROM `+deliveries+` GROUP BY message_id HAVING count(*) > 1) r)
		FROM `+deliveries).Scan(&calls, &messages, &conversationsWithTwoIDs, &repeated))
		t.Logf("notifier calls: %d for %d messages; %d messages called again after a kill", calls, messages, repeated)
		require.Equal(t, n, messages, "a message never reached a notifier")
		require.Zero(t, conversationsWithTwoIDs, "one conversation's calls carried different message ids")
		require.GreaterOrEqual(t, repeated, kills, "a kill inside a notifier call left its message uncalled again")
		for _, msg := range bulk.Messages {
			stored, err := client.Message(ctx, msg.ID)
			require.NoError(t, err)
			require.Equal(t, outbound.MessageStatusSent, stored.Status)
			var recorded int
			require.NoError(t, testPool.QueryRow(ctx, "SELECT count(*) FROM "+deliveries+
				" WHERE message_id = $1 AND conversation_id = $2", msg.ID, msg.ConversationID).Scan(&recorded))
			require.NotZero(t, recorded, "message %s sent without a notifier call carrying its id", msg.ID)
		}

		// How long a dead worker's message waited: from its first call, in the
		// worker that died, to its next; or, when the test had not started
		// the last worker yet, from when it had, since a rescue needs a
		// worker running.
		var fastest, median, slowest float64
		require.NoError(t, testPool.QueryRow(ctx, `SELECT min(gap), percentile_cont(0.5) WITHIN GROUP (ORDER BY gap), max(gap) FROM (
		SELECT extract(epoch FROM (array_agg(at ORDER BY at))[2] - greatest(min(at), $1)) AS gap
		FROM `+deliveries+` GROUP BY message_id HAVING count(*) > 1) g`, finalReady).Scan(&fastest, &median, &slowest))
		t.Logf("NotifyTimeout %s: a dead worker's message was attempted again %.1fs to %.1fs (median %.1fs) after its first call",
			notifyTimeout, fastest, slowest, median)
		require.LessOrEqual(t, time.Duration(slowest*float64(time.Second)), bound,
			"a dead worker's message waited longer than NotifyTimeout + 2 minutes")
	})
}

// ageDeadWorkers moves schema's state on as if the workers killed a while
// ago had been dead for rescueAfter: River's leader row is gone, as when its
// lease runs out; every running delivery job started rescueAfter earlier; and
// the claims of the messages they were delivering have run out.
func ageDeadWorkers(t *testing.T, schema string, rescueAfter time.Duration) {
	t.Helper()
	ctx := context.Background()
	_, err := testPool.Exec(ctx, "DELETE FROM "+table(schema, "river_leader"))
	require.NoError(t, err)
	_, err = testPool.Exec(ctx, "UPDATE "+table(schema, "river_job")+" SET attempted_at = attempted_at - make_interval(secs => $1)"+
		" WHERE kind = 'outbound_delivery' AND state = 'running'", rescueAfter.Seconds())
	require.NoError(t, err)
	_, err = testPool.Exec(ctx, "UPDATE "+table(schema, "messages")+" SET claimed_until = now() WHERE status = 'delivering' AND claimed_until > now()")
	require.NoError(t, err)
}

// killTestNotifyTimeoutEnv sets TestWorkerProcesses/Killed's NotifyTimeout:
// 1s by default, to keep the suite short; run it with 30s to see the
// default's rescue time.
const killTestNotifyTimeoutEnv = "OUTBOUND_KILL_TEST_NOTIFY_TIMEOUT"

// logUndelivered logs what a failed worker-kill test needs to be explained:
// the jobs not completed, River's leader row, and the last worker's log.
func logUndelivered(t *testing.T, schema string, w *workerProcess) {
	t.Helper()
	ctx := context.Background()
	rows, err := testPool.Query(ctx, "SELECT id, state, attempt, attempted_at, scheduled_at, attempted_by, now() FROM "+
		table(schema, "river_job")+" WHERE state <> 'completed' ORDER BY id")
	require.NoError(t, err)
	for rows.Next() {
		var (
			id, attempt        int64
			state              string
			attemptedAt        *time.Time
			scheduledAt, dbNow time.Time
			attemptedBy        []string
		)
		require.NoError(t, rows.Scan(&id, &state, &attempt, &attemptedAt, &scheduledAt, &attemptedBy, &dbNow))
		t.Logf("job %d: %s, attempt %d, attempted_at %v, scheduled_at %v, attempted_by %v, now %v",
			id, state, attempt, attemptedAt, scheduledAt, attemptedBy, dbNow)
	}
	require.NoError(t, rows.Err())
	var leader string
	if err := testPool.QueryRow(ctx, "SELECT leader_id || ' elected ' || elected_at || ' expires ' || expires_at FROM "+
		table(schema, "river_leader")).Scan(&leader); err != nil {
		leader = err.Error()
	}
	t.Logf("river_leader: %s", leader)
	// A dead worker is a zombie (Z) until the test reaps it.
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", w.cmd.Process.Pid))
	t.Logf("last worker's /proc stat: %s (err %v)", stat, err)
	t.Logf("last worker's log:\n%s", w.stderr.String())
}
