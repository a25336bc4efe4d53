// Package testdb is the harness that the test binaries of outbound's
// packages share: a PostgreSQL for the run (DATABASE_URL's, or a throwaway
// one from devpg), schemas of each test's own, reused once emptied, and a
// leak check at the end. It does not import the library: each TestMain
// passes how to migrate a schema.
package testdb

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	neturl "net/url"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnloop/outbound/internal/devpg"
	"github.com/cairnloop/outbound/internal/sqltext"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"
)

// Migrator migrates a new schema, as outbound.Migrate with Schema set does,
// with a River of its own.
type Migrator func(ctx context.Context, pool *pgxpool.Pool, schema string) error

// Main runs m against a database, for a TestMain: ready gets a pool on it
// (of maxConns connections; 0 means pgxpool's default) and its URL before
// the tests run, and Migrate migrates schemas with migrate. After the tests
// it drops the schemas that Migrate made, closes the pool, stops a throwaway
// database, and, if the tests passed, fails the run on a leaked goroutine.
// It returns the exit code.
func Main(m *testing.M, maxConns int32, migrate Migrator, ready func(pool *pgxpool.Pool, url string)) int {
	ctx := context.Background()
	migrator = migrate
	runMoreInParallel()
	url, stop, err := devpg.URLOrStart(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	url = withEmptySearchPath(url)
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
	for _, schema := range append(untracked.take(), reusable.takeAll()...) {
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

// withEmptySearchPath returns the URL of the tests' database with an empty
// search_path, for every connection the tests make from it. The tests name
// every schema they use; and a server of a developer's own (DATABASE_URL)
// may hold a River in public, which Migrate, asked for no River schema,
// would rightly refuse to make a second one beside.
func withEmptySearchPath(databaseURL string) string {
	if u, err := neturl.Parse(databaseURL); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		q := u.Query()
		q.Set("search_path", "")
		u.RawQuery = q.Encode()
		return u.String()
	}
	// A keyword/value connection string.
	return databaseURL + " search_path=''"
}

var seq atomic.Int64

// SchemaName returns a schema name that no other test, run or process uses.
func SchemaName(prefix string) string {
	return fmt.Sprintf("%s_%d_%d_%d", prefix, os.Getpid(), time.Now().UnixNano()%1e6, seq.Add(1))
}

// defaultParallel is how many parallel tests run at once when go test is
// given no -parallel: testsPerCore for each of the machine's cores, at most
// maxParallel. go test's own default, GOMAXPROCS, suits tests that compute;
// these mostly wait, on PostgreSQL, on River's fetch and scheduler, and on
// worker processes, so that more of them can run side by side than there
// are cores. The ceiling keeps the connections they open (a working test
// opens a pool of its own) well inside the throwaway cluster's 300.
func defaultParallel() int {
	const testsPerCore, maxParallel = 8, 24
	return min(testsPerCore*runtime.GOMAXPROCS(0), maxParallel)
}

// runMoreInParallel sets -parallel to defaultParallel unless the command
// line set it.
func runMoreInParallel() {
	if !flag.Parsed() {
		flag.Parse()
	}
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		_ = flag.Set("test.parallel", strconv.Itoa(defaultParallel()))
	}
}

// migrateCeiling bounds one schema's migration against a hang.
const migrateCeiling = 5 * time.Minute

// migrator is Main's Migrator.
var migrator Migrator

// Migrate returns a migrated schema of the test's own: one that an earlier
// test of this run left, emptied, or a new one. With tb it is emptied for the
// next test when the test ends (or dropped, if the test changed its shape);
// without (a runnable example has no *testing.T), it is dropped when Main's
// tests have all run.
func Migrate(tb testing.TB, pool *pgxpool.Pool, prefix string) string {
	if tb != nil {
		tb.Helper()
		if schema, ok := reusable.take(prefix); ok {
			tb.Cleanup(func() { release(pool, prefix, schema) })
			return schema
		}
	}
	schema := SchemaName(prefix)
	// Migrations of different schemas do not wait for each other, so this is
	// only a ceiling against a hang, which a broken build would hit and a
	// busy machine never does.
	ctx, cancel := context.WithTimeout(context.Background(), migrateCeiling)
	defer cancel()
	err := migrator(ctx, pool, schema)
	if err == nil {
		err = reusable.learnShape(ctx, pool, schema)
	}
	if tb == nil {
		if err != nil {
			panic(err)
		}
		untracked.add(schema)
		return schema
	}
	tb.Cleanup(func() { release(pool, prefix, schema) })
	if err != nil {
		tb.Fatalf("migrate schema %s: %v", schema, err)
	}
	return schema
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

// reusable keeps the migrated schemas that finished tests left, emptied, for
// the next tests to take, by prefix, as River's riverdbtest does: emptying a
// schema's tables costs a fraction of migrating a new one (CONTRIBUTING.md
// has the figures).
var reusable = schemaPool{free: map[string][]string{}}

// schemaPool is a set of emptied schemas, and the shape a freshly migrated
// schema has.
type schemaPool struct {
	mu    sync.Mutex
	free  map[string][]string
	shape string
}

func (p *schemaPool) take(prefix string) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	free := p.free[prefix]
	if len(free) == 0 {
		return "", false
	}
	p.free[prefix] = free[:len(free)-1]
	return free[len(free)-1], true
}

func (p *schemaPool) put(prefix, schema string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.free[prefix] = append(p.free[prefix], schema)
}

func (p *schemaPool) takeAll() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var all []string
	for _, free := range p.free {
		all = append(all, free...)
	}
	p.free = map[string][]string{}
	return all
}

// learnShape remembers the shape of a freshly migrated schema, the first
// time, so that release can tell a schema a test changed.
func (p *schemaPool) learnShape(ctx context.Context, pool *pgxpool.Pool, schema string) error {
	p.mu.Lock()
	known := p.shape != ""
	p.mu.Unlock()
	if known {
		return nil
	}
	shape, err := shapeOf(ctx, pool, schema)
	if err != nil {
		return fmt.Errorf("read the shape of schema %s: %w", schema, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.shape = cmp.Or(p.shape, shape)
	return nil
}

// release empties a finished test's schema and keeps it for the next test,
// or drops it when the test left it in another shape than a fresh migration
// (it migrated down, added a table or an index, or changed the versions
// recorded), or when it cannot be emptied at once.
func release(pool *pgxpool.Pool, prefix, schema string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := Empty(ctx, pool, schema); err != nil {
		Drop(pool, schema)
		return
	}
	reusable.put(prefix, schema)
}

// errChangedShape is why a schema a test changed is not reused.
var errChangedShape = errors.New("schema changed by its test")

// Empty truncates every table of schema but those that record its
// migrations, in one transaction, after checking that its shape is a fresh
// migration's: a schema a test changed is an error. It waits at most a
// second for a lock a test left held (a killed worker's connection, say).
func Empty(ctx context.Context, pool *pgxpool.Pool, schema string) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '1s'"); err != nil {
		return err
	}
	shape, err := shapeOf(ctx, tx, schema)
	if err != nil {
		return err
	}
	reusable.mu.Lock()
	want := reusable.shape
	reusable.mu.Unlock()
	if shape != want {
		return errChangedShape
	}
	var truncate string
	if err := tx.QueryRow(ctx, truncateData, schema).Scan(&truncate); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, truncate); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// shapeOf is schema's shape (schemaShape), with the migration versions and
// the River schema it records ("itself" for its own name).
func shapeOf(ctx context.Context, q interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}, schema string) (string, error) {
	var shape, records string
	if err := q.QueryRow(ctx, schemaShape, schema).Scan(&shape); err != nil {
		return "", err
	}
	s := pgx.Identifier{schema}.Sanitize()
	if err := q.QueryRow(ctx, `SELECT concat_ws('|',
		(SELECT string_agg(version::text, ',' ORDER BY version) FROM `+s+`.outbound_migration),
		(SELECT string_agg(version::text, ',' ORDER BY version) FROM `+s+`.river_migration),
		(SELECT string_agg(CASE river_schema WHEN $1 THEN 'itself' ELSE river_schema END, ',') FROM `+s+`.installation))`,
		schema).Scan(&records); err != nil {
		return "", err
	}
	return shape + "|" + records, nil
}

// schemaShape describes schema $1's tables, indexes, sequences, constraints,
// functions and types, and the migration versions it records, as one text:
// equal for two schemas that migrations alone made.
const schemaShape = `
SELECT concat_ws('|',
	(SELECT string_agg(concat_ws(':', relname, relkind, relnatts, relhastriggers), ',' ORDER BY relname, relkind)
		FROM pg_class WHERE relnamespace = n.oid),
	(SELECT count(*) FROM pg_constraint WHERE connamespace = n.oid),
	(SELECT count(*) FROM pg_proc WHERE pronamespace = n.oid),
	(SELECT count(*) FROM pg_type WHERE typnamespace = n.oid))
FROM pg_namespace n WHERE n.nspname = $1`

// truncateData builds the TRUNCATE of schema $1's tables that hold data,
// leaving those that record its migrations and its installation.
const truncateData = `
SELECT 'TRUNCATE ' || string_agg(format('%I.%I', n.nspname, c.relname), ', ') || ' RESTART IDENTITY CASCADE'
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')
	AND c.relname NOT IN ('outbound_migration', 'installation', 'river_migration')`
