package devpg

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// ErrNoPgBouncer is returned when the pgbouncer binary cannot be found.
var ErrNoPgBouncer = errors.New("devpg: pgbouncer was not found on PATH or in /usr/sbin; install it (Debian/Ubuntu: apt-get install pgbouncer)")

// PgBouncer is a throwaway PgBouncer in transaction pooling mode in front of
// one database. Stop removes it.
type PgBouncer struct {
	dir     string
	logPath string
	cmd     *exec.Cmd
	exited  <-chan struct{}

	// URL is a connection string for the target database through PgBouncer,
	// as the target URL's user.
	URL string
}

// StartPgBouncer starts PgBouncer in transaction pooling mode on a free
// loopback port, in front of the database that targetURL names, with the
// user (and password, if any) that it names. Like a Cluster's
// server, it runs unprivileged when this process is root (PgBouncer refuses
// to run as root), and dies with this process.
func StartPgBouncer(ctx context.Context, targetURL string) (*PgBouncer, error) {
	binary, err := findPgBouncer()
	if err != nil {
		return nil, err
	}
	target, err := pgconn.ParseConfig(targetURL)
	if err != nil {
		return nil, fmt.Errorf("devpg: parse target URL: %w", err)
	}
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		if cred, err = unprivilegedCredential(); err != nil {
			return nil, err
		}
	}
	dir, err := os.MkdirTemp("", "outbound-pgbouncer-")
	if err != nil {
		return nil, fmt.Errorf("devpg: make temp dir: %w", err)
	}
	b := &PgBouncer{dir: dir, logPath: filepath.Join(dir, "pgbouncer.log")}
	port, err := freePort()
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	database := target.Database
	server := fmt.Sprintf("host=%s port=%d dbname=%s user=%s", target.Host, target.Port, database, target.User)
	if target.Password != "" {
		// A DATABASE_URL server may want a password; PgBouncer passes it on.
		server += " password=" + target.Password
	}
	// server_reset_query is unused in transaction pooling; the settings that
	// matter are pool_mode and the 1.18 default of no prepared statement
	// support, so that a client that prepares statements fails as it would
	// in production.
	ini := fmt.Sprintf(`[databases]
%[1]s = %[2]s

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %[3]d
unix_socket_dir =
auth_type = trust
auth_file = %[4]s
pool_mode = transaction
default_pool_size = 20
max_client_conn = 500
ignore_startup_parameters = extra_float_digits
logfile = %[5]s
`, database, server, port, filepath.Join(dir, "users.txt"), b.logPath)
	files := map[string]string{
		"pgbouncer.ini": ini,
		// Clients are trusted by name: the test connects without a password.
		"users.txt": strconv.Quote(target.User) + ` ""` + "\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			_ = os.RemoveAll(dir)
			return nil, fmt.Errorf("devpg: write %s: %w", name, err)
		}
	}
	if cred != nil {
		for _, path := range []string{dir, filepath.Join(dir, "pgbouncer.ini"), filepath.Join(dir, "users.txt")} {
			if err := os.Chown(path, int(cred.Uid), int(cred.Gid)); err != nil {
				_ = os.RemoveAll(dir)
				return nil, fmt.Errorf("devpg: chown %s: %w", path, err)
			}
		}
	}

	b.cmd = exec.Command(binary, filepath.Join(dir, "pgbouncer.ini"))
	b.cmd.Dir = dir
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
	if b.exited, err = startLocked(b.cmd); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("devpg: start pgbouncer: %w", err)
	}
	b.URL = fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", target.User, port, database)

	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-b.exited:
			log, _ := os.ReadFile(b.logPath)
			_ = os.RemoveAll(dir)
			return nil, fmt.Errorf("devpg: pgbouncer exited during start-up: %s", tail(log, 2000))
		default:
		}
		if conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second); err == nil {
			_ = conn.Close()
			return b, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			_ = b.Stop()
			return nil, errors.New("devpg: pgbouncer did not accept connections in time")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop stops PgBouncer and removes its directory.
func (b *PgBouncer) Stop() error {
	if err := b.cmd.Process.Signal(syscall.SIGINT); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("devpg: signal pgbouncer: %w", err)
	}
	select {
	case <-b.exited:
	case <-time.After(10 * time.Second):
		_ = b.cmd.Process.Kill()
		<-b.exited
	}
	return os.RemoveAll(b.dir)
}

// Log returns what PgBouncer has logged so far.
func (b *PgBouncer) Log() string {
	log, _ := os.ReadFile(b.logPath)
	return string(log)
}

func findPgBouncer() (string, error) {
	if path, err := exec.LookPath("pgbouncer"); err == nil {
		return path, nil
	}
	if isExecutable("/usr/sbin/pgbouncer") {
		return "/usr/sbin/pgbouncer", nil
	}
	return "", ErrNoPgBouncer
}

// startLocked starts cmd from a goroutine locked to its OS thread for as
// long as the child runs: a parent-death signal fires when the thread that
// started the child exits, not the process. Once the child is gone the thread
// is unlocked, not left to exit with the goroutine: it may have started other
// processes with a parent-death signal of their own before it was locked, and
// they must live on. The returned channel is closed when the child has exited.
func startLocked(cmd *exec.Cmd) (<-chan struct{}, error) {
	started := make(chan error, 1)
	exited := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		defer close(exited)
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		_ = cmd.Wait()
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return exited, nil
}
