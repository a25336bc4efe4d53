package outboundui_test

import (
	"context"
	"os"
	"testing"

	"github.com/cairnloop/outbound"
	"github.com/cairnloop/outbound/internal/testdb"
	"github.com/jackc/pgx/v5/pgxpool"
)

// testPool is the pool every test shares; each gets a schema of its own.
var testPool *pgxpool.Pool

func TestMain(m *testing.M) {
	os.Exit(testdb.Main(m, 0, migrate, func(pool *pgxpool.Pool, _ string) { testPool = pool }))
}

// migrate migrates a schema for the harness, which does not import the
// library, with a River of its own beside the library's tables.
func migrate(ctx context.Context, pool *pgxpool.Pool, schema string) error {
	return outbound.Migrate(ctx, pool, &outbound.MigrateOpts{Schema: schema, RiverSchema: schema})
}

// newClient takes a migrated schema of the test's own, emptied for the next
// test when it ends, and returns a client on it with its config, which
// configure, when set, changes first.
func newClient(t *testing.T, configure func(*outbound.Config)) (*outbound.Client, *outbound.Config) {
	t.Helper()
	config := &outbound.Config{Schema: testdb.Migrate(t, testPool, "obui")}
	if configure != nil {
		configure(config)
	}
	client, err := outbound.New(testPool, config)
	if err != nil {
		t.Fatalf("outbound.New: %v", err)
	}
	return client, config
}

// exampleSchema migrates a schema for one runnable example, dropped when the
// tests end: examples take no *testing.T.
func exampleSchema() string { return testdb.Migrate(nil, testPool, "obui") }
