package outboundtest_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnloop/outbound"
	"github.com/cairnloop/outbound/internal/devpg"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// testPool is the pool every test shares; each gets a schema of its own.
var testPool *pgxpool.Pool

// testDatabaseURL is the URL testPool connects to.
var testDatabaseURL string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

// runTests starts a throwaway PostgreSQL (unless DATABASE_URL is set), runs
// the tests, stops the database, and checks for leaked goroutines.
func runTests(m *testing.M) int {
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
	testDatabaseURL = url
	if testPool, err = pgxpool.New(ctx, url); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code := m.Run()
	testPool.Close()
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

var schemaSeq atomic.Int64

// newSchema migrates a schema of its own, dropped by the returned function.
func newSchema(ctx context.Context) (string, func(), error) {
	schema := fmt.Sprintf("obtt_%d_%d_%d", os.Getpid(), time.Now().UnixNano()%1e6, schemaSeq.Add(1))
	drop := func() {
		_, _ = testPool.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
	}
	if err := outbound.Migrate(ctx, testPool, &outbound.MigrateOpts{Schema: schema}); err != nil {
		drop()
		return "", nil, err
	}
	return schema, drop, nil
}

type testBundle struct {
	client *outbound.Client
	schema string
}

// setup makes a client on a schema of the test's own.
func setup(t *testing.T) *testBundle {
	t.Helper()
	ctx := context.Background()
	schema, drop, err := newSchema(ctx)
	require.NoError(t, err)
	t.Cleanup(drop)
	client, err := outbound.New(testPool, &outbound.Config{Schema: schema})
	require.NoError(t, err)
	return &testBundle{client: client, schema: schema}
}

// fakeTB is a testing.TB whose failures are recorded rather than ending the
// test, so that a test can check that an assertion fails when it should, and
// what it says.
type fakeTB struct {
	testing.TB
	failed bool
	logs   []string
}

func (f *fakeTB) Helper()         {}
func (f *fakeTB) Log(args ...any) { f.logs = append(f.logs, fmt.Sprint(args...)) }
func (f *fakeTB) Logf(format string, args ...any) {
	f.logs = append(f.logs, fmt.Sprintf(format, args...))
}
func (f *fakeTB) Errorf(format string, args ...any) {
	f.Logf(format, args...)
	f.failed = true
}
func (f *fakeTB) Fatalf(format string, args ...any) { f.Errorf(format, args...) }
func (f *fakeTB) FailNow()                          { f.failed = true }
func (f *fakeTB) Failed() bool                      { return f.failed }

// output is everything the fake logged.
func (f *fakeTB) output() string { return strings.Join(f.logs, "\n") }

// requireFailure checks that fn failed the fake, saying each of want.
func requireFailure(t *testing.T, fn func(tb testing.TB), want ...string) {
	t.Helper()
	fake := &fakeTB{TB: t}
	fn(fake)
	require.True(t, fake.failed, "the assertion failed")
	require.Contains(t, fake.output(), "outbound assertion failure:")
	for _, w := range want {
		require.Contains(t, fake.output(), w)
	}
}

// requirePass checks that fn did not fail the fake.
func requirePass(t *testing.T, fn func(tb testing.TB)) {
	t.Helper()
	fake := &fakeTB{TB: t}
	fn(fake)
	require.False(t, fake.failed, "the assertion passed; it said: %s", fake.output())
}

// exampleDatabaseURL stands in, in examples, for the database of a host's
// tests.
func exampleDatabaseURL() string { return testDatabaseURL }

// exampleSchema migrates a schema of the example's own, as a host's test
// setup would, and returns it with a function that drops it.
func exampleSchema() (string, func()) {
	schema, drop, err := newSchema(context.Background())
	if err != nil {
		panic(err)
	}
	return schema, drop
}

// exampleT stands in, in examples, for a test's *testing.T: it panics on a
// failed assertion, with what the assertion said.
func exampleT() testing.TB { return &panicTB{} }

type panicTB struct {
	testing.TB
	logs []string
}

func (p *panicTB) Helper()         {}
func (p *panicTB) Log(args ...any) { p.logs = append(p.logs, fmt.Sprint(args...)) }
func (p *panicTB) Logf(format string, args ...any) {
	p.logs = append(p.logs, fmt.Sprintf(format, args...))
}
func (p *panicTB) Errorf(format string, args ...any) { p.Logf(format, args...); p.FailNow() }
func (p *panicTB) Fatalf(format string, args ...any) { p.Errorf(format, args...) }
func (p *panicTB) FailNow()                          { panic(strings.Join(p.logs, "\n")) }
