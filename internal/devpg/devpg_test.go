package devpg

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

func TestFindBinariesMissing(t *testing.T) {
	t.Parallel()

	_, err := findBinaries(t.TempDir(), filepath.Join(t.TempDir(), "*", "bin"))
	require.ErrorIs(t, err, ErrNoServer)
	require.Contains(t, err.Error(), "install the PostgreSQL server package")
}

func TestStartQueryRestartStop(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	c, err := Start(ctx)
	require.NoError(t, err)

	conn, err := pgx.Connect(ctx, c.URL)
	require.NoError(t, err)
	var n int
	require.NoError(t, conn.QueryRow(ctx, "SELECT 41 + 1").Scan(&n))
	require.Equal(t, 42, n)
	_, err = conn.Exec(ctx, "CREATE TABLE kept (v int); INSERT INTO kept VALUES (7)")
	require.NoError(t, err)

	require.NoError(t, c.Restart(ctx))
	require.Error(t, conn.Ping(ctx), "connections from before the restart are broken")
	conn.Close(ctx)

	conn, err = pgx.Connect(ctx, c.URL)
	require.NoError(t, err)
	var v int
	require.NoError(t, conn.QueryRow(ctx, "SELECT v FROM kept").Scan(&v))
	require.Equal(t, 7, v, "data survives a restart")
	conn.Close(ctx)

	require.NoError(t, c.Stop())
	_, err = os.Stat(c.dir)
	require.True(t, errors.Is(err, os.ErrNotExist), "cluster dir should be removed, stat err: %v", err)
	_, err = pgx.Connect(ctx, c.URL)
	require.Error(t, err, "server should be gone after Stop")
}

// TestKilledParentTakesServerDown starts a cluster in a child process, kills
// that process with SIGKILL (no clean-up runs), and checks that the server
// goes down too and that the next Start removes the directory left behind.
func TestKilledParentTakesServerDown(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	if os.Getenv("DEVPG_CHILD") == "1" {
		return // run only as the parent
	}
	child := exec.Command(os.Args[0], "-test.run=^TestChildCluster$")
	child.Env = append(os.Environ(), "DEVPG_CHILD=1")
	stdout, err := child.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, child.Start())

	var url, dir string
	scanner := bufio.NewScanner(stdout)
	for scanner.Scan() {
		if rest, ok := strings.CutPrefix(scanner.Text(), "CLUSTER "); ok {
			url, dir, _ = strings.Cut(rest, " ")
			break
		}
	}
	require.NotEmpty(t, url, "child reported its cluster")
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	conn.Close(ctx)

	require.NoError(t, child.Process.Signal(syscall.SIGKILL))
	_ = child.Wait()

	require.Eventually(t, func() bool {
		conn, err := pgx.Connect(ctx, url)
		if err == nil {
			conn.Close(ctx)
		}
		return err != nil
	}, waitCeiling, 100*time.Millisecond, "server stops when its parent is killed")

	_, err = os.Stat(dir)
	require.NoError(t, err, "a killed parent leaves its directory")
	// The postmaster may still be exiting when its socket closes, and its
	// exit touches the directory; once it is gone and the directory is old
	// enough, the directory counts as stale.
	require.Eventually(t, func() bool {
		old := time.Now().Add(-2 * time.Minute)
		if err := os.Chtimes(dir, old, old); err != nil {
			return false
		}
		removeStaleClusters()
		_, err := os.Stat(dir)
		return errors.Is(err, os.ErrNotExist)
	}, waitCeiling, 100*time.Millisecond, "stale cluster dir removed")
}

// waitCeiling bounds a wait for behaviour against a hang: a broken build
// hits it, a busy machine never does.
const waitCeiling = 3 * time.Minute

// TestChildCluster is the child of TestKilledParentTakesServerDown: it starts
// a cluster, reports it, and waits to be killed.
func TestChildCluster(t *testing.T) {
	if os.Getenv("DEVPG_CHILD") != "1" {
		return // run only as the child
	}
	c, err := Start(context.Background())
	require.NoError(t, err)
	fmt.Printf("CLUSTER %s %s\n", c.URL, c.dir)
	time.Sleep(time.Minute)
	_ = c.Stop()
}

// TestStopSparesOtherChildren starts processes that, like worker processes in
// a test, are to die with the thread that started them (Pdeathsig), then
// starts, restarts and stops a cluster. The cluster's start-up thread must not
// exit, or every process started from it before is killed with it.
func TestStopSparesOtherChildren(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	// Started from many goroutines, so from many threads, which are then
	// free for the cluster's start-up goroutine to run on.
	const n = 32
	children := make([]*exec.Cmd, n)
	started := make(chan error, n)
	for i := range children {
		cmd := exec.Command("sleep", "600")
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		children[i] = cmd
		go func() { started <- cmd.Start() }()
	}
	for range n {
		require.NoError(t, <-started)
	}
	t.Cleanup(func() {
		for _, cmd := range children {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})

	c, err := Start(ctx)
	require.NoError(t, err)
	for range 3 {
		require.NoError(t, c.Restart(ctx))
	}
	require.NoError(t, c.Stop())

	time.Sleep(200 * time.Millisecond) // for a parent-death signal to land
	for i, cmd := range children {
		var status syscall.WaitStatus
		pid, err := syscall.Wait4(cmd.Process.Pid, &status, syscall.WNOHANG, nil)
		require.NoError(t, err)
		require.Zero(t, pid, "child %d died with the cluster's thread, by %v", i, status.Signal())
	}
}

func TestPgBouncerInFront(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, err := Start(ctx)
	require.NoError(t, err)
	defer func() { require.NoError(t, c.Stop()) }()

	b, err := StartPgBouncer(ctx, c.URL)
	require.NoError(t, err)
	conn, err := pgx.Connect(ctx, b.URL)
	require.NoError(t, err)
	var port int
	require.NoError(t, conn.QueryRow(ctx, "SELECT current_setting('port')::int", pgx.QueryExecModeSimpleProtocol).Scan(&port))
	require.Equal(t, c.port, port, "the query reached the cluster")
	require.NoError(t, conn.Close(ctx))
	require.NoError(t, b.Stop())
	_, err = os.Stat(b.dir)
	require.ErrorIs(t, err, os.ErrNotExist)
}
