package outboundui_test

import (
	"os"
	"testing"

	"github.com/cairnloop/outbound"
	"github.com/cairnloop/outbound/internal/testdb"
	"github.com/jackc/pgx/v5/pgxpool"
)

// testPool is the pool every test shares; each gets a schema of its own.
var testPool *pgxpool.Pool

func TestMain(m *testing.M) {
	os.Exit(testdb.Main(m, 0, func(pool *pgxpool.Pool, _ string) { testPool = pool }))
}

// newClient migrates a schema of the test's own, dropped when it ends, and
// returns a client on it with its config.
func newClient(t *testing.T) (*outbound.Client, *outbound.Config) {
	t.Helper()
	return testdb.NewClient(t, testPool, "obui", nil)
}

// exampleSchema migrates a schema for one runnable example, dropped when the
// tests end: examples take no *testing.T.
func exampleSchema() string { return testdb.Migrate(nil, testPool, "obui") }
