// Package devpg starts a throwaway PostgreSQL cluster from the server binaries
// installed on the machine, for tests and for the quickstart example. It needs
// no running server and no Docker: initdb and pg_ctl are found on PATH or under
// /usr/lib/postgresql/*/bin. When the process runs as root, the cluster is run
// as an unprivileged user, because PostgreSQL refuses to run as root.
package devpg

import (
	"bytes"
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
	"syscall"
	"time"
)

// ErrNoServer is returned when no PostgreSQL server binaries can be found.
var ErrNoServer = errors.New("devpg: PostgreSQL server binaries (initdb, pg_ctl) were not found on PATH or under /usr/lib/postgresql/*/bin; install the PostgreSQL server package (Debian/Ubuntu: apt-get install postgresql) or set DATABASE_URL")

// Cluster is a running throwaway PostgreSQL cluster. Stop removes it.
type Cluster struct {
	binDir  string
	dataDir string
	port    int
	cred    *syscall.Credential
	logPath string

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

// Start initialises a new cluster in a temporary directory and starts it on a
// free loopback port. The cluster trades durability for speed (fsync off): it
// is for tests and demos only.
func Start(ctx context.Context) (*Cluster, error) {
	binDir, err := FindBinaries()
	if err != nil {
		return nil, err
	}
	c := &Cluster{binDir: binDir}

	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root: drop to an unprivileged user.
		c.cred, err = unprivilegedCredential()
		if err != nil {
			return nil, err
		}
	}

	dir, err := os.MkdirTemp("", "outbound-pg-")
	if err != nil {
		return nil, fmt.Errorf("devpg: make temp dir: %w", err)
	}
	c.dataDir = filepath.Join(dir, "data")
	c.logPath = filepath.Join(dir, "postgres.log")
	if c.cred != nil {
		if err := os.Chown(dir, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
			_ = os.RemoveAll(dir)
			return nil, fmt.Errorf("devpg: chown temp dir: %w", err)
		}
		// The temp dir's parents must be traversable by that user.
		_ = os.Chmod(dir, 0o700)
	}

	if out, err := c.run(ctx, "initdb", "-D", c.dataDir, "-U", "postgres", "--auth=trust",
		"--encoding=UTF8", "--no-locale", "--no-sync"); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("devpg: initdb: %w: %s", err, out)
	}

	// A few tries: the free port found below can be taken before the server binds it.
	var lastErr error
	for range 3 {
		c.port, err = freePort()
		if err != nil {
			_ = os.RemoveAll(dir)
			return nil, err
		}
		if lastErr = c.start(ctx); lastErr == nil {
			c.URL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
			return c, nil
		}
	}
	_ = os.RemoveAll(dir)
	return nil, lastErr
}

func (c *Cluster) start(ctx context.Context) error {
	opts := strings.Join([]string{
		"-p", strconv.Itoa(c.port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories=" + filepath.Dir(c.dataDir),
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "max_connections=300",
		"-c", "shared_buffers=128MB",
	}, " ")
	out, err := c.run(ctx, "pg_ctl", "start", "-w", "-t", "60", "-D", c.dataDir, "-l", c.logPath, "-o", opts)
	if err != nil {
		log, _ := os.ReadFile(c.logPath)
		return fmt.Errorf("devpg: pg_ctl start: %w: %s %s", err, out, tail(log, 2000))
	}
	return nil
}

// Restart stops the server and starts it again on the same port and data
// directory, keeping all data. Connections open before the restart break.
func (c *Cluster) Restart(ctx context.Context) error {
	if out, err := c.run(ctx, "pg_ctl", "stop", "-w", "-m", "fast", "-D", c.dataDir); err != nil {
		return fmt.Errorf("devpg: pg_ctl stop: %w: %s", err, out)
	}
	return c.start(ctx)
}

// Stop stops the server immediately and removes its directory.
func (c *Cluster) Stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, stopErr := c.run(ctx, "pg_ctl", "stop", "-w", "-m", "immediate", "-D", c.dataDir)
	if err := os.RemoveAll(filepath.Dir(c.dataDir)); err != nil {
		return fmt.Errorf("devpg: remove cluster dir: %w", err)
	}
	if stopErr != nil {
		return fmt.Errorf("devpg: pg_ctl stop: %w: %s", stopErr, out)
	}
	return nil
}

func (c *Cluster) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(c.binDir, name), args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C", "TZ=UTC")
	cmd.Dir = filepath.Dir(c.dataDir)
	if cmd.Dir == "." {
		cmd.Dir = os.TempDir()
	}
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
		cmd.Env = append(cmd.Env, "HOME="+cmd.Dir)
	}
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	// pg_ctl start leaves the server running with our pipes open unless the
	// server's output goes to its log file; -l takes care of that, and
	// WaitDelay keeps a stray pipe from hanging us.
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	return out.Bytes(), err
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
