package outbound_test

import (
	"strings"
	"testing"
	"time"

	"github.com/cairnloop/outbound"
	"github.com/stretchr/testify/require"
)

func TestNew(t *testing.T) {
	t.Parallel()

	t.Run("NilPool", func(t *testing.T) {
		t.Parallel()
		_, err := outbound.New(nil, nil)
		require.ErrorIs(t, err, outbound.ErrInvalidArgument)
		require.ErrorContains(t, err, "pool")
	})

	t.Run("Defaults", func(t *testing.T) {
		t.Parallel()
		config := &outbound.Config{}
		client, err := outbound.New(testPool, config)
		require.NoError(t, err)
		require.Equal(t, outbound.DefaultMaxBatchSize, client.MaxBatchSize())
		require.Equal(t, 25, client.MaxBatchSize())
		require.Equal(t, &outbound.Config{}, config, "New does not modify the caller's config")
		require.Equal(t, "cairnloop", outbound.DefaultSchema)
		require.Equal(t, "outbound", outbound.DefaultQueue)
		require.Equal(t, 20, outbound.DefaultMaxAttempts)
		require.Equal(t, 100*time.Millisecond, outbound.DefaultFetchCooldown)
		require.Equal(t, time.Second, outbound.DefaultFetchPollInterval)
	})

	// Bodies in flight are bounded: 64 MiB bodies take 16 workers at most.
	t.Run("ContentBytesInFlight", func(t *testing.T) {
		t.Parallel()
		_, err := outbound.New(testPool, &outbound.Config{MaxContentBytes: 64 << 20, MaxWorkers: 16})
		require.NoError(t, err)
		_, err = outbound.New(testPool, &outbound.Config{MaxContentBytes: 64 << 20, MaxWorkers: 17})
		require.ErrorContains(t, err, "Config.MaxContentBytes times Config.MaxWorkers must be at most 1073741824")
		_, err = outbound.New(testPool, &outbound.Config{MaxContentBytes: outbound.DefaultMaxContentBytes, MaxWorkers: 8192})
		require.NoError(t, err, "the default body with 8,192 workers")
	})

	t.Run("InvalidFields", func(t *testing.T) {
		t.Parallel()
		tests := []struct {
			name   string
			config *outbound.Config
			field  string
		}{
			{"SchemaLeadingDigit", &outbound.Config{Schema: "1abc"}, "Config.Schema"},
			{"SchemaHyphen", &outbound.Config{Schema: "a-b"}, "Config.Schema"},
			{"SchemaDot", &outbound.Config{Schema: "public.x"}, "Config.Schema"},
			{"SchemaQuote", &outbound.Config{Schema: `a"b`}, "Config.Schema"},
			{"SchemaSpace", &outbound.Config{Schema: "a b"}, "Config.Schema"},
			{"SchemaInjection", &outbound.Config{Schema: "x; DROP TABLE y"}, "Config.Schema"},
			{"SchemaUnicode", &outbound.Config{Schema: "schéma"}, "Config.Schema"},
			{"SchemaReservedPrefix", &outbound.Config{Schema: "pg_outbound"}, "Config.Schema"},
			{"SchemaTooLong", &outbound.Config{Schema: strings.Repeat("s", 47)}, "Config.Schema"},
			{"RiverSchema", &outbound.Config{RiverSchema: "river-jobs"}, "Config.RiverSchema"},
			{"MaxBatchSizeNegative", &outbound.Config{MaxBatchSize: -1}, "Config.MaxBatchSize"},
			{"MaxAttemptsNegative", &outbound.Config{MaxAttempts: -3}, "Config.MaxAttempts"},
			{"FetchCooldownBelowRiverMinimum", &outbound.Config{FetchCooldown: 500 * time.Microsecond}, "Config.FetchCooldown"},
			{"FetchCooldownNegative", &outbound.Config{FetchCooldown: -time.Second}, "Config.FetchCooldown"},
			{"FetchPollIntervalBelowFetchCooldown", &outbound.Config{FetchCooldown: 200 * time.Millisecond, FetchPollInterval: 100 * time.Millisecond}, "Config.FetchPollInterval"},
			{"FetchPollIntervalBelowDefaultFetchCooldown", &outbound.Config{FetchPollInterval: 50 * time.Millisecond}, "Config.FetchPollInterval"},
			{"RescueStuckJobsAfterBelowDeliveryTimeout", &outbound.Config{RescueStuckJobsAfter: 30*time.Second + 19*time.Second}, "Config.RescueStuckJobsAfter"},
			{"RescueStuckJobsAfterBelowShortDeliveryTimeout", &outbound.Config{NotifyTimeout: time.Second, RescueStuckJobsAfter: 20 * time.Second}, "Config.RescueStuckJobsAfter"},
			{"QueueUppercase", &outbound.Config{Queue: "Outbound"}, "Config.Queue"},
			{"QueueTooLong", &outbound.Config{Queue: strings.Repeat("q", 65)}, "Config.Queue"},
		}
		for _, tt := range tests {
			_, err := outbound.New(testPool, tt.config)
			require.ErrorIs(t, err, outbound.ErrInvalidArgument, tt.name)
			require.ErrorContains(t, err, tt.field, tt.name)
		}
		_, err := outbound.New(testPool, &outbound.Config{Schema: strings.Repeat("s", 46), Queue: "follow_ups-2"})
		require.NoError(t, err, "46 characters and a valid queue name are accepted")
		_, err = outbound.New(testPool, &outbound.Config{FetchCooldown: time.Millisecond, FetchPollInterval: time.Millisecond})
		require.NoError(t, err, "River's minimum fetch cooldown and poll interval are accepted")
		_, err = outbound.New(testPool, &outbound.Config{NotifyTimeout: time.Second, RescueStuckJobsAfter: 21 * time.Second})
		require.NoError(t, err, "RescueStuckJobsAfter of NotifyTimeout + 20s is accepted")
	})
}
