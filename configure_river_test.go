package outbound_test

import (
	"context"
	"testing"
	"time"

	"github.com/cairnloop/outbound"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"
)

// hostJobArgs are the args of a job of the host's own, worked beside the
// library's.
type hostJobArgs struct{}

func (hostJobArgs) Kind() string { return "host_job" }

// TestConfigureRiver prepares a host's own River config: the library's
// workers, queue and periodic jobs beside the host's own, and refusals that
// name the fix when the client would never see the library's jobs or River
// would refuse the config.
func TestConfigureRiver(t *testing.T) {
	t.Parallel()

	t.Run("WorksTheLibrarysJobsBesideTheHosts", func(t *testing.T) {
		t.Parallel()
		ctx := ctxT(t)
		schema := migratedSchema(t)
		notifier := &recordingNotifier{}
		client, err := outbound.New(testPool, &outbound.Config{Schema: schema, Notifier: notifier, MaxWorkers: 7})
		require.NoError(t, err)

		hostRan := make(chan struct{}, 1)
		workers := river.NewWorkers()
		river.AddWorker(workers, river.WorkFunc(func(context.Context, *river.Job[hostJobArgs]) error {
			hostRan <- struct{}{}
			return nil
		}))
		cfg := &river.Config{
			Schema:       schema,
			Queues:       map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 2}},
			Workers:      workers,
			PeriodicJobs: []*river.PeriodicJob{},
		}
		require.NoError(t, client.ConfigureRiver(cfg))
		require.Equal(t, map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 2}, outbound.DefaultQueue: {MaxWorkers: 7}}, cfg.Queues)
		require.Len(t, cfg.PeriodicJobs, len(client.PeriodicJobs()))

		riverClient, err := river.NewClient(riverpgxv5.New(testPool), cfg)
		require.NoError(t, err)
		require.NoError(t, riverClient.Start(ctx))
		t.Cleanup(func() { require.NoError(t, riverClient.Stop(context.Background())) })

		res := mustTrigger(ctx, t, client, 42, &outbound.TriggerOpts{TemplateID: "recovery"})
		_, err = riverClient.Insert(ctx, hostJobArgs{}, nil)
		require.NoError(t, err)
		<-hostRan
		waitForStatus(t, client, messageIDs([]*outbound.Message{res.Message}), outbound.MessageStatusSent)
		require.Len(t, notifier.callsFor(res.Message.ID), 1)

		// Called again on the same config: the workers are there already.
		err = client.ConfigureRiver(cfg)
		require.ErrorIs(t, err, outbound.ErrInvalidArgument)
		require.ErrorContains(t, err, "river.Config.Workers already holds a worker of the library's")
		require.Len(t, cfg.PeriodicJobs, len(client.PeriodicJobs()), "nothing appended twice")
	})

	t.Run("KeepsTheHostsQueueAndMakesWorkers", func(t *testing.T) {
		t.Parallel()
		client, err := outbound.New(testPool, &outbound.Config{Schema: "cairnloop", Queue: "follow_ups"})
		require.NoError(t, err)
		cfg := &river.Config{Schema: "cairnloop", Queues: map[string]river.QueueConfig{"follow_ups": {MaxWorkers: 3}}}
		require.NoError(t, client.ConfigureRiver(cfg))
		require.NotNil(t, cfg.Workers)
		require.Equal(t, map[string]river.QueueConfig{"follow_ups": {MaxWorkers: 3}}, cfg.Queues, "the host's own setting stays")

		cfg = &river.Config{Schema: "cairnloop"}
		require.NoError(t, client.ConfigureRiver(cfg))
		require.Equal(t, map[string]river.QueueConfig{"follow_ups": {MaxWorkers: outbound.DefaultMaxWorkers}}, cfg.Queues)
	})

	// WrongSchema follows the README's defaults: Migrate with no options, a
	// default Config, and the host's existing River client on the
	// connection's search_path. Before ConfigureRiver, AddWorkers accepted
	// it, every Trigger succeeded, and nothing was ever delivered.
	t.Run("WrongSchema", func(t *testing.T) {
		t.Parallel()
		client, err := outbound.New(testPool, nil)
		require.NoError(t, err)
		for _, tc := range []struct {
			riverSchema string
			want        string
		}{
			{"", `river.Config.Schema is "" (the connection's search_path, often "public"), but the library's jobs go to Config.RiverSchema "cairnloop"`},
			{"public", `river.Config.Schema is "public", but the library's jobs go to Config.RiverSchema "cairnloop"`},
		} {
			cfg := &river.Config{Schema: tc.riverSchema}
			err := client.ConfigureRiver(cfg)
			require.ErrorIs(t, err, outbound.ErrInvalidArgument)
			require.ErrorContains(t, err, tc.want)
			require.ErrorContains(t, err, `Set river.Config.Schema to "cairnloop"`)
			require.ErrorContains(t, err, "MigrateOpts.RiverSchema")
			require.Equal(t, &river.Config{Schema: tc.riverSchema}, cfg, "nothing changed")
		}

		// The fix the error names: one River schema for both.
		shared, err := outbound.New(testPool, &outbound.Config{RiverSchema: "public"})
		require.NoError(t, err)
		require.NoError(t, shared.ConfigureRiver(&river.Config{Schema: "public"}))
	})

	// RescueStuckJobsAfter refuses what river.NewClient refuses, and says
	// what to set; a value River accepts is left as it is.
	t.Run("RescueStuckJobsAfter", func(t *testing.T) {
		t.Parallel()
		client, err := outbound.New(testPool, &outbound.Config{Schema: "cairnloop", NotifyTimeout: 10 * time.Second})
		require.NoError(t, err)
		for _, tc := range []struct {
			name             string
			rescue, timeout  time.Duration
			want             string
			riverAlsoRefuses bool
		}{
			{"ShorterThanRiversDefaultJobTimeout", 40 * time.Second, 0,
				"river.Config.RescueStuckJobsAfter is 40s, less than river.Config.JobTimeout (1m0s), which River refuses: set it to at least 1m0s, or leave it 0", true},
			{"ShorterThanJobTimeout", 90 * time.Second, 2 * time.Minute,
				"is 1m30s, less than river.Config.JobTimeout (2m0s), which River refuses: set it to at least 2m0s", true},
			{"Negative", -time.Second, 0, "is -1s, less than", true},
			{"RiversDefault", 0, 0, "", false},
			{"AtJobTimeout", 90 * time.Second, 90 * time.Second, "", false},
			{"InfiniteJobTimeout", time.Second, -1, "", false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				cfg := &river.Config{Schema: "cairnloop", RescueStuckJobsAfter: tc.rescue, JobTimeout: tc.timeout}
				err := client.ConfigureRiver(cfg)
				if tc.want != "" {
					require.ErrorIs(t, err, outbound.ErrInvalidArgument)
					require.ErrorContains(t, err, tc.want)
					require.Nil(t, cfg.Workers, "nothing changed")
				} else {
					require.NoError(t, err)
					require.Equal(t, tc.rescue, cfg.RescueStuckJobsAfter, "left as the host set it")
				}
				// The check agrees with River's own.
				_, riverErr := river.NewClient(riverpgxv5.New(testPool), cfg)
				require.Equal(t, tc.riverAlsoRefuses, riverErr != nil, "river.NewClient: %v", riverErr)
			})
		}
	})

	// StartOnlySettings: a Config that tunes Start's River client is refused,
	// naming the setting and where to set it instead, and nothing changes;
	// the host's River settings are left as it set them.
	t.Run("StartOnlySettings", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			field  string
			config *outbound.Config
		}{
			{"FetchCooldown", &outbound.Config{Schema: "cairnloop", FetchCooldown: 10 * time.Millisecond}},
			{"FetchPollInterval", &outbound.Config{Schema: "cairnloop", FetchPollInterval: 2 * time.Second}},
			{"RescueStuckJobsAfter", &outbound.Config{Schema: "cairnloop", RescueStuckJobsAfter: 5 * time.Minute}},
		} {
			t.Run(tc.field, func(t *testing.T) {
				client, err := outbound.New(testPool, tc.config)
				require.NoError(t, err, "Start may use it")
				cfg := &river.Config{Schema: "cairnloop", FetchCooldown: 50 * time.Millisecond}
				err = client.ConfigureRiver(cfg)
				var argErr *outbound.InvalidArgumentError
				require.ErrorAs(t, err, &argErr)
				require.Equal(t, "Config."+tc.field, argErr.Field)
				require.ErrorContains(t, err, "Set river.Config."+tc.field+" instead")
				require.Nil(t, cfg.Workers, "nothing changed")
				require.Equal(t, 50*time.Millisecond, cfg.FetchCooldown, "the host's setting left alone")
			})
		}
		// Left at zero, the defaults Start would apply do not count as set.
		client, err := outbound.New(testPool, &outbound.Config{Schema: "cairnloop"})
		require.NoError(t, err)
		require.NoError(t, client.ConfigureRiver(&river.Config{Schema: "cairnloop"}))
	})

	t.Run("NilConfig", func(t *testing.T) {
		t.Parallel()
		client, err := outbound.New(testPool, nil)
		require.NoError(t, err)
		require.ErrorIs(t, client.ConfigureRiver(nil), outbound.ErrInvalidArgument)
	})
}
