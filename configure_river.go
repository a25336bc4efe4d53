package outbound

import (
	"cmp"
	"strconv"

	"github.com/riverqueue/river"
)

// ConfigureRiver prepares the config of a host's own River client to work
// the library's jobs, for a host that runs River itself instead of calling
// Start. Call it before river.NewClient:
//
//   - it registers the library's workers (delivery, reconcile and prune) in
//     cfg.Workers, which it creates when nil;
//   - it appends PeriodicJobs to cfg.PeriodicJobs;
//   - it adds Config.Queue to cfg.Queues, with Config.MaxWorkers, unless the
//     host configured that queue itself.
//
// It refuses, with an error matching ErrInvalidArgument that says what to
// set, and changes nothing, when the client would never see the library's
// jobs or River would refuse the config:
//
//   - cfg.Schema is not Config.RiverSchema. The library inserts its jobs in
//     Config.RiverSchema, which Migrate gave River's tables; a River client
//     on another schema, or on "" (the connection's search_path, where a
//     host's existing River usually lives), would never work them, and every
//     Trigger would succeed with nothing ever delivered. Either set
//     cfg.Schema to Config.RiverSchema, or set Config.RiverSchema (and
//     MigrateOpts.RiverSchema) to River's schema, named explicitly.
//   - cfg.RescueStuckJobsAfter is negative, or positive and shorter than
//     cfg.JobTimeout (River's default when zero, a minute), which
//     river.NewClient refuses.
//   - the client's Config sets FetchCooldown, FetchPollInterval or
//     RescueStuckJobsAfter: they tune a whole River client, which here is
//     the host's, so ConfigureRiver never changes them, and would otherwise
//     ignore them without a word. Set them on cfg instead.
//
// cfg.RescueStuckJobsAfter is left as the host set it, since it applies to
// all of the client's jobs: at zero, River's default of an hour, a delivery
// whose worker died waits that long to be attempted again. Config's
// RescueStuckJobsAfter (NotifyTimeout + 30s by default) is what Start uses.
//
// A worker of one of the library's kinds already in cfg.Workers (ConfigureRiver
// or AddWorkers called before on it) is an error too. The delivery worker is
// registered first, so such an error leaves cfg unchanged, unless the host
// registered a worker of its own under one of the library's periodic kinds.
//
// AddWorkers is the low-level form: it only registers the workers, and
// leaves the rest of the River config, and its checks, to the host.
func (c *Client) ConfigureRiver(cfg *river.Config) error {
	if cfg == nil {
		return invalidArgument("cfg", "must not be nil")
	}
	if err := c.config.startOnly.refuse(); err != nil {
		return err
	}
	if cfg.Schema != c.config.RiverSchema {
		return invalidArgument("river.Config.Schema", "is %s, but the library's jobs go to Config.RiverSchema %q, where Migrate put River's tables: "+
			"this River client would never work them. Set river.Config.Schema to %q, or, to share River's existing tables, "+
			"set Config.RiverSchema to River's schema by name and run outbound.Migrate with MigrateOpts.RiverSchema set to it",
			describeRiverSchema(cfg.Schema), c.config.RiverSchema, c.config.RiverSchema)
	}
	jobTimeout := cmp.Or(cfg.JobTimeout, river.JobTimeoutDefault)
	if cfg.RescueStuckJobsAfter < 0 || (cfg.RescueStuckJobsAfter > 0 && cfg.RescueStuckJobsAfter < jobTimeout) {
		return invalidArgument("river.Config.RescueStuckJobsAfter", "is %s, less than river.Config.JobTimeout (%s), which River refuses: "+
			"set it to at least %s, or leave it 0 for River's default of an hour",
			cfg.RescueStuckJobsAfter, jobTimeout, jobTimeout)
	}

	if cfg.Workers == nil {
		cfg.Workers = river.NewWorkers()
	}
	if err := c.addWorkers(cfg.Workers); err != nil {
		return invalidArgument("river.Config.Workers", "already holds a worker of the library's: %v (call ConfigureRiver once, instead of AddWorkers)", err)
	}
	c.delivery.EnableDispatch()
	cfg.PeriodicJobs = append(cfg.PeriodicJobs, c.PeriodicJobs()...)
	if _, ok := cfg.Queues[c.config.Queue]; !ok {
		if cfg.Queues == nil {
			cfg.Queues = make(map[string]river.QueueConfig)
		}
		cfg.Queues[c.config.Queue] = river.QueueConfig{MaxWorkers: c.config.MaxWorkers}
	}
	return nil
}

// describeRiverSchema names a river.Config.Schema in an error.
func describeRiverSchema(schema string) string {
	if schema == "" {
		return `"" (the connection's search_path, often "public")`
	}
	return strconv.Quote(schema)
}
