package outbound_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cairnloop/outbound"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// A worker process is this test binary started again with these variables
// set: TestMain sees them and runs runWorkerProcess instead of the tests.
const (
	workerSchemaEnv      = "OUTBOUND_TEST_WORKER_SCHEMA"
	workerDatabaseURLEnv = "OUTBOUND_TEST_WORKER_DATABASE_URL"
	// workerRescueAfterEnv, when set, is the worker's RescueStuckJobsAfter,
	// with the shortest NotifyTimeout and retries that it allows, so that
	// deliveries a killed worker left running are rescued within the test.
	workerRescueAfterEnv = "OUTBOUND_TEST_WORKER_RESCUE_AFTER"
	// workerNotifyDelayEnv is how long each notifier call sleeps.
	workerNotifyDelayEnv = "OUTBOUND_TEST_WORKER_NOTIFY_DELAY"
)

// runWorkerProcess works deliveries of one schema until SIGTERM or SIGINT.
// Its notifier records each call in the schema's test_deliveries table, with
// the process id, then sleeps a little so that deliveries overlap. It prints
// "ready" once it works.
func runWorkerProcess(schema string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "worker process:", err)
		return 1
	}
	poolConfig, err := pgxpool.ParseConfig(os.Getenv(workerDatabaseURLEnv))
	if err != nil {
		return fail(err)
	}
	// Four deliveries, River's listener, and the notifier's own inserts.
	poolConfig.MaxConns = 10
	pool, err := pgxpool.NewWithConfig(context.Background(), poolConfig)
	if err != nil {
		return fail(err)
	}
	defer pool.Close()
	pid := os.Getpid()
	insert := "INSERT INTO " + table(schema, "test_deliveries") +
		" (message_id, conversation_id, attempt, pid) VALUES ($1, $2, $3, $4)"
	delay := 5 * time.Millisecond
	if d, err := time.ParseDuration(os.Getenv(workerNotifyDelayEnv)); err == nil {
		delay = d
	}
	config := &outbound.Config{
		Schema:     schema,
		MaxWorkers: 4,
		Notifier: outbound.NotifierFunc(func(ctx context.Context, msg *outbound.Message) error {
			if _, err := pool.Exec(ctx, insert, msg.ID, msg.ConversationID, msg.Attempts, pid); err != nil {
				return err
			}
			time.Sleep(delay)
			return nil
		}),
	}
	if rescueAfter, err := time.ParseDuration(os.Getenv(workerRescueAfterEnv)); err == nil {
		config.NotifyTimeout = time.Second
		config.RescueStuckJobsAfter = rescueAfter
		config.RetryPolicy = fixedRetry(100 * time.Millisecond)
		// Fetch as soon as a worker is free, so that the workers are busy
		// and a kill lands mid-delivery rather than between fetches.
		config.FetchCooldown = time.Millisecond
	}
	client, err := outbound.New(pool, config)
	if err != nil {
		return fail(err)
	}
	if err := client.Start(context.Background()); err != nil {
		return fail(err)
	}
	fmt.Println("ready")
	<-ctx.Done()
	stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := client.Stop(stopCtx); err != nil {
		return fail(err)
	}
	return 0
}

// workerProcess is a running worker process.
type workerProcess struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
}

// startWorkerProcess starts a worker process on the schema and waits until
// it is working. The process is stopped when the test ends if it still runs.
// env adds NAME=value settings for the process.
func startWorkerProcess(t *testing.T, schema string, env ...string) *workerProcess {
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
	case <-time.After(60 * time.Second):
		t.Fatalf("worker process not ready after 60s; stderr: %s", p.stderr.String())
	}
	return p
}

// stop sends SIGTERM and waits for a clean exit.
func (p *workerProcess) stop(t *testing.T) {
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

// TestDeliveryAcrossProcesses runs two worker processes against one database
// and checks that they share a bulk between them, each message sent once.
func TestDeliveryAcrossProcesses(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	schema := migratedSchema(t)
	createDeliveriesTable(t, schema)
	workers := []*workerProcess{startWorkerProcess(t, schema), startWorkerProcess(t, schema)}

	client, err := outbound.New(testPool, &outbound.Config{Schema: schema, MaxBatchSize: 300})
	require.NoError(t, err)
	const n = 300
	bulk, err := client.BulkTrigger(ctx, conversations(n), &outbound.BulkTriggerOpts{TemplateID: "outage", RenderedBody: "Back up."})
	require.NoError(t, err)

	require.Eventually(t, func() bool {
		progress, err := client.EnvelopeProgress(ctx, bulk.Envelope.ID)
		require.NoError(t, err)
		return progress.Sent == n
	}, 120*time.Second, 50*time.Millisecond)
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
}
