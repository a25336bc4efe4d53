package outboundtest_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/cairnloop/outbound"
	"github.com/cairnloop/outbound/internal/testdb"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// testPool is the pool every test shares; each gets a schema of its own.
var testPool *pgxpool.Pool

// testDatabaseURL is the URL testPool connects to.
var testDatabaseURL string

func TestMain(m *testing.M) {
	os.Exit(testdb.Main(m, 0, migrate, func(pool *pgxpool.Pool, url string) { testPool, testDatabaseURL = pool, url }))
}

// migrate migrates a schema for the harness, which does not import the
// library, with a River of its own beside the library's tables.
func migrate(ctx context.Context, pool *pgxpool.Pool, schema string) error {
	return outbound.Migrate(ctx, pool, &outbound.MigrateOpts{Schema: schema, RiverSchema: schema})
}

type testBundle struct {
	client *outbound.Client
	schema string
}

// setup makes a client on a schema of the test's own.
func setup(t *testing.T) *testBundle {
	t.Helper()
	schema := testdb.Migrate(t, testPool, "obtt")
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
	schema := testdb.SchemaName("obtt")
	if err := outbound.Migrate(context.Background(), testPool, &outbound.MigrateOpts{Schema: schema, RiverSchema: schema}); err != nil {
		panic(err)
	}
	return schema, func() { testdb.Drop(testPool, schema) }
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
