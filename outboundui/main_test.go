package outboundui_test

import (
	"context"
	"fmt"
	"os"
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
	if testPool, err = pgxpool.New(ctx, url); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code := m.Run()
	for _, schema := range exampleSchemas {
		_, _ = testPool.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
	}
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

// newClient migrates a schema of its own, dropped when the test ends, and
// returns a client on it with its config.
func newClient(t *testing.T) (*outbound.Client, *outbound.Config) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	schema := fmt.Sprintf("obui_%d_%d_%d", os.Getpid(), time.Now().UnixNano()%1e6, schemaSeq.Add(1))
	t.Cleanup(func() {
		_, _ = testPool.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
	})
	require.NoError(t, outbound.Migrate(ctx, testPool, &outbound.MigrateOpts{Schema: schema}))
	config := &outbound.Config{Schema: schema}
	client, err := outbound.New(testPool, config)
	require.NoError(t, err)
	return client, config
}

// exampleSchema migrates a schema for one runnable example, dropped when the
// tests end: examples take no *testing.T.
func exampleSchema() string {
	schema := fmt.Sprintf("obui_example_%d_%d", os.Getpid(), schemaSeq.Add(1))
	if err := outbound.Migrate(context.Background(), testPool, &outbound.MigrateOpts{Schema: schema}); err != nil {
		panic(err)
	}
	exampleSchemas = append(exampleSchemas, schema)
	return schema
}

// exampleSchemas are dropped after the tests.
var exampleSchemas []string
