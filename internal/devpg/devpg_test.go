package devpg

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

func TestFindBinariesMissing(t *testing.T) {
	t.Parallel()

	_, err := findBinaries(t.TempDir(), filepath.Join(t.TempDir(), "*", "bin"))
	require.ErrorIs(t, err, ErrNoServer)
	require.Contains(t, err.Error(), "install the PostgreSQL server package")
}

func TestStartQueryRestartStop(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	c, err := Start(ctx)
	require.NoError(t, err)

	query := func() int {
		conn, err := pgx.Connect(ctx, c.URL)
		require.NoError(t, err)
		defer conn.Close(ctx)
		var n int
		require.NoError(t, conn.QueryRow(ctx, "SELECT 41 + 1").Scan(&n))
		return n
	}
	require.Equal(t, 42, query())

	conn, err := pgx.Connect(ctx, c.URL)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "CREATE TABLE kept (v int); INSERT INTO kept VALUES (7)")
	require.NoError(t, err)
	conn.Close(ctx)

	require.NoError(t, c.Restart(ctx))
	conn, err = pgx.Connect(ctx, c.URL)
	require.NoError(t, err)
	var v int
	require.NoError(t, conn.QueryRow(ctx, "SELECT v FROM kept").Scan(&v))
	require.Equal(t, 7, v)
	conn.Close(ctx)

	dir := filepath.Dir(c.dataDir)
	require.NoError(t, c.Stop())
	_, err = os.Stat(dir)
	require.True(t, errors.Is(err, os.ErrNotExist), "cluster dir should be removed, stat err: %v", err)
	_, err = pgx.Connect(ctx, c.URL)
	require.Error(t, err, "server should be gone after Stop")
}
