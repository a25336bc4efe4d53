// Package devpg starts a throwaway PostgreSQL cluster from the server binaries
// installed on the machine, for tests and for the quickstart example. It needs
// no running server and no Docker: initdb and pg_ctl are found on PATH or under
// /usr/lib/postgresql/*/bin. When the process runs as root, the cluster is run
// as an unprivileged user, because PostgreSQL refuses to run as root.
package devpg

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// ErrNoServer is returned when no PostgreSQL server binaries can be found.
var ErrNoServer = errors.New("devpg: PostgreSQL server binaries (initdb, pg_ctl) were not found on PATH or under /usr/lib/postgresql/*/bin; install the PostgreSQL server package (Debian/Ubuntu: apt-get install postgresql) or set DATABASE_URL")

// Cluster is a running throwaway PostgreSQL cluster. Stop removes it.
//
// The server runs as a child of this process with a parent-death signal, so a
// test binary that is killed takes its server down with it; a later Start
// removes directories that such servers left behind.
type Cluster struct {
	binDir  string
	dir     string
	dataDir string
	port    int
	cred    *syscall.Credential
	logPath string

	mu     sync.Mutex
	server *exec.Cmd
	exited <-chan struct{}

	// URL is a connection string for the cluster's "postgres" database as
	// the superuser "postgres".
	URL string
}

// FindBinaries returns the directory holding initdb and pg_ctl: PATH first,
// then the newest /usr/lib/postgresql/*/bin.
func FindBinaries() (string, error) {
	return findBinaries(os.Getenv("PATH"), "/usr/lib/postgresql/*/bin")
}

func findBinaries(pathList, fallbackGlob string) (string, error) {
	for _, dir := range filepath.SplitList(pathList) {
		initdb := filepath.Join(dir, "initdb")
		if !isExecutable(initdb) {
			continue
		}
		if resolved, err := filepath.EvalSymlinks(initdb); err == nil {
			initdb = resolved
		}
		// Debian links initdb into PATH; pg_ctl and postgres sit beside the target.
		dir = filepath.Dir(initdb)
		if isExecutable(filepath.Join(dir, "pg_ctl")) && isExecutable(filepath.Join(dir, "postgres")) {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob(fallbackGlob)
	// Newest major version first; versions are numeric directory names.
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, dir := range dirs {
		if isExecutable(filepath.Join(dir, "initdb")) && isExecutable(filepath.Join(dir, "pg_ctl")) {
			return dir, nil
		}
	}
	return "", ErrNoServer
}

func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

func isExecutable(path string) bool {
	info, err := os.Stat(path)
	return err == nil && !info.IsDir() && info.Mode()&0o111 != 0
}

// dirPrefix names every cluster directory, so Start can find stale ones.
const dirPrefix = "outbound-pg-"

// Start initialises a new cluster in a temporary directory and starts it on a
// free loopback port. The cluster trades durability for speed (fsync off): it
// is for tests and demos only.
func Start(ctx context.Context) (*Cluster, error) {
	binDir, err := FindBinaries()
	if err != nil {
		return nil, err
	}
	removeStaleClusters()
	c := &Cluster{binDir: binDir}

	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root: drop to an unprivileged user.
		c.cred, err = unprivilegedCredential()
		if err != nil {
			return nil, err
		}
	}

	c.dir, err = os.MkdirTemp("", dirPrefix)
	if err != nil {
		return nil, fmt.Errorf("devpg: make temp dir: %w", err)
	}
	c.dataDir = filepath.Join(c.dir, "data")
	c.logPath = filepath.Join(c.dir, "postgres.log")
	if c.cred != nil {
		if err := os.Chown(c.dir, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
			_ = os.RemoveAll(c.dir)
			return nil, fmt.Errorf("devpg: chown temp dir: %w", err)
		}
	}

	initdb := c.command(ctx, "initdb", "-D", c.dataDir, "-U", "postgres", "--auth=trust",
		"--encoding=UTF8", "--no-locale", "--no-sync")
	if out, err := initdb.CombinedOutput(); err != nil {
		_ = os.RemoveAll(c.dir)
		return nil, fmt.Errorf("devpg: initdb: %w: %s", err, out)
	}

	// A few tries: the free port found below can be taken before the server binds it.
	var lastErr error
	for range 3 {
		c.port, err = freePort()
		if err != nil {
			_ = os.RemoveAll(c.dir)
			return nil, err
		}
		c.URL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
		if lastErr = c.start(ctx); lastErr == nil {
			return c, nil
		}
	}
	_ = os.RemoveAll(c.dir)
	return nil, lastErr
}

// start runs the server as a child process and waits until it accepts
// connections.
func (c *Cluster) start(ctx context.Context) error {
	logFile, err := os.OpenFile(c.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("devpg: open server log: %w", err)
	}
	defer logFile.Close()

	cmd := c.command(context.Background(), "postgres", "-D", c.dataDir,
		"-p", strconv.Itoa(c.port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories="+c.dir,
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "max_connections=300",
		"-c", "shared_buffers=128MB",
	)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	// SIGQUIT is PostgreSQL's immediate shutdown: if this process dies, the
	// server goes too instead of lingering.
	cmd.SysProcAttr.Pdeathsig = syscall.SIGQUIT

	// Started from a thread locked for the server's life: see startLocked.
	exited, err := startLocked(cmd)
	if err != nil {
		return fmt.Errorf("devpg: start postgres: %w", err)
	}
	c.mu.Lock()
	c.server, c.exited = cmd, exited
	c.mu.Unlock()

	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-exited:
			log, _ := os.ReadFile(c.logPath)
			return fmt.Errorf("devpg: postgres exited during start-up: %s", tail(log, 2000))
		default:
		}
		if c.ready(ctx) {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			_ = c.signalAndWait(syscall.SIGQUIT)
			log, _ := os.ReadFile(c.logPath)
			return fmt.Errorf("devpg: postgres did not accept connections in time: %s", tail(log, 2000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ready reports whether the server accepts connections to its database.
func (c *Cluster) ready(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	conn, err := pgconn.Connect(ctx, c.URL)
	if err != nil {
		return false
	}
	_ = conn.Close(ctx)
	return true
}

// signalAndWait sends sig to the server and waits for it to exit.
func (c *Cluster) signalAndWait(sig syscall.Signal) error {
	c.mu.Lock()
	server, exited := c.server, c.exited
	c.mu.Unlock()
	if server == nil {
		return nil
	}
	if err := server.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("devpg: signal postgres: %w", err)
	}
	select {
	case <-exited:
		return nil
	case <-time.After(60 * time.Second):
		_ = server.Process.Kill()
		<-exited
		return errors.New("devpg: postgres did not stop within 60s; killed it")
	}
}

// Restart shuts the server down (fast shutdown: open connections are
// terminated) and starts it again on the same port and data, which are kept.
func (c *Cluster) Restart(ctx context.Context) error {
	if err := c.signalAndWait(syscall.SIGINT); err != nil {
		return err
	}
	return c.start(ctx)
}

// Stop stops the server immediately and removes its directory.
func (c *Cluster) Stop() error {
	stopErr := c.signalAndWait(syscall.SIGQUIT)
	if err := os.RemoveAll(c.dir); err != nil {
		return fmt.Errorf("devpg: remove cluster dir: %w", err)
	}
	return stopErr
}

// command prepares one of the server binaries to run as the cluster's user.
func (c *Cluster) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(c.binDir, name), args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C", "TZ=UTC")
	cmd.Dir = c.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	if c.cred != nil {
		cmd.SysProcAttr.Credential = c.cred
		cmd.Env = append(cmd.Env, "HOME="+c.dir)
	}
	return cmd
}

// removeStaleClusters deletes cluster directories whose server is gone: left
// behind by a process that was killed before it could clean up. A directory
// younger than a minute may belong to a cluster still starting; it is kept.
func removeStaleClusters() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, dir := range dirs {
		info, err := os.Stat(dir)
		if err != nil || time.Since(info.ModTime()) < time.Minute {
			continue
		}
		if pid := serverPID(dir); pid > 0 && syscall.Kill(pid, 0) == nil {
			continue // still running
		}
		_ = os.RemoveAll(dir)
	}
}

// serverPID reads the postmaster's pid from a cluster directory, or 0.
func serverPID(dir string) int {
	b, err := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid"))
	if err != nil {
		return 0
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(first))
	return pid
}

// unprivilegedCredential picks the "postgres" system user when it exists,
// else "nobody".
func unprivilegedCredential() (*syscall.Credential, error) {
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
	}
	return nil, errors.New("devpg: running as root and found neither a \"postgres\" nor a \"nobody\" user to run PostgreSQL as; create one or set DATABASE_URL")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("devpg: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// URLOrStart returns DATABASE_URL when it is set, with a no-op stop function.
// Otherwise it starts a throwaway cluster and returns its URL and a function
// that stops and removes it.
func URLOrStart(ctx context.Context) (url string, stop func() error, err error) {
	if url := os.Getenv("DATABASE_URL"); url != "" {
		return url, func() error { return nil }, nil
	}
	c, err := Start(ctx)
	if err != nil {
		return "", nil, err
	}
	return c.URL, c.Stop, nil
}
