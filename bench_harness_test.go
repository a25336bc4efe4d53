package outbound_test

import (
	"context"
	"testing"

	"github.com/cairnloop/outbound"
	"github.com/cairnloop/outbound/internal/testdb"
	"github.com/stretchr/testify/require"
)

// BenchmarkTestSchema measures what a test's schema costs the harness: a
// fresh one, migrated and then dropped, against one reused, emptied for the
// next test (testdb.Migrate does the second whenever it can).
func BenchmarkTestSchema(b *testing.B) {
	ctx := context.Background()
	b.Run("MigrateAndDrop", func(b *testing.B) {
		for b.Loop() {
			schema := newSchemaName()
			require.NoError(b, outbound.Migrate(ctx, testPool, &outbound.MigrateOpts{Schema: schema}))
			dropSchema(schema)
		}
	})
	b.Run("EmptyForReuse", func(b *testing.B) {
		schema := migratedSchema(b)
		for b.Loop() {
			require.NoError(b, testdb.Empty(ctx, testPool, schema))
		}
	})
}
