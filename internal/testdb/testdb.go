// Package testdb is the harness that the test binaries of outbound's
// packages share: a PostgreSQL for the run (DATABASE_URL's, or a throwaway
// one from devpg), schemas of each test's own, and a leak check at the end.
package testdb

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnloop/outbound"
	"github.com/cairnloop/outbound/internal/devpg"
	"github.com/cairnloop/outbound/internal/sqltext"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"
)

// Main runs m against a database, for a TestMain: ready gets a pool on it
// (of maxConns connections; 0 means pgxpool's default) and its URL before
// the tests run. After them it drops the schemas that
// Migrate made, closes the pool, stops a throwaway database, and, if the
// tests passed, fails the run on a leaked goroutine. It returns the exit
// code.
func Main(m *testing.M, maxConns int32, ready func(pool *pgxpool.Pool, url string)) int {
	ctx := context.Background()
	url, stop, err := devpg.URLOrStart(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = stop()
		}
	}()
	config, err := pgxpool.ParseConfig(url)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if maxConns > 0 {
		config.MaxConns = maxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, config)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ready(pool, url)
	code := m.Run()
	for _, schema := range untracked.take() {
		Drop(pool, schema)
	}
	pool.Close()
	stopped = true
	if err := stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			return 1
		}
	}
	return code
}

var seq atomic.Int64

// SchemaName returns a schema name that no other test, run or process uses.
func SchemaName(prefix string) string {
	return fmt.Sprintf("%s_%d_%d_%d", prefix, os.Getpid(), time.Now().UnixNano()%1e6, seq.Add(1))
}

// Migrate migrates a new schema and returns its name. With tb it is dropped
// when the test ends; without (a runnable example has no *testing.T), when
// Main's tests have all run.
func Migrate(tb testing.TB, pool *pgxpool.Pool, prefix string) string {
	schema := SchemaName(prefix)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := outbound.Migrate(ctx, pool, &outbound.MigrateOpts{Schema: schema})
	if tb == nil {
		if err != nil {
			panic(err)
		}
		untracked.add(schema)
		return schema
	}
	tb.Helper()
	tb.Cleanup(func() { Drop(pool, schema) })
	if err != nil {
		tb.Fatalf("migrate schema %s: %v", schema, err)
	}
	return schema
}

// NewClient migrates a new schema for the test, dropped when it ends, and
// returns a client on it made from config (nil for defaults), whose Schema it
// sets.
func NewClient(tb testing.TB, pool *pgxpool.Pool, prefix string, config *outbound.Config) (*outbound.Client, *outbound.Config) {
	tb.Helper()
	if config == nil {
		config = &outbound.Config{}
	}
	config.Schema = Migrate(tb, pool, prefix)
	client, err := outbound.New(pool, config)
	if err != nil {
		tb.Fatalf("outbound.New: %v", err)
	}
	return client, config
}

// Drop drops a schema and everything in it.
func Drop(pool *pgxpool.Pool, schema string) {
	_, _ = pool.Exec(context.Background(), sqltext.DropSchema(schema))
}

// untracked holds the schemas migrated without a test to drop them.
var untracked schemaList

type schemaList struct {
	mu   sync.Mutex
	list []string
}

func (l *schemaList) add(schema string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.list = append(l.list, schema)
}

func (l *schemaList) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	list := l.list
	l.list = nil
	return list
}
