package outbound

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"regexp"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cairnloop/outbound/internal/delivery"
	"github.com/cairnloop/outbound/outboundtype"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

const (
	// DefaultSchema is the schema of the library's tables when Config.Schema
	// is empty.
	DefaultSchema = "cairnloop"

	// DefaultMaxBatchSize is the BulkTrigger cap when Config.MaxBatchSize is
	// zero.
	DefaultMaxBatchSize = 25

	// DefaultQueue is the River queue of delivery jobs when Config.Queue is
	// empty.
	DefaultQueue = "outbound"

	// DefaultMaxAttempts is the number of delivery attempts before a message
	// is discarded when Config.MaxAttempts is zero.
	DefaultMaxAttempts = 20

	// DefaultMaxWorkers is the number of delivery jobs the embedded River
	// client works at once when Config.MaxWorkers is zero.
	DefaultMaxWorkers = 100

	// maxMaxWorkers is River's own limit on a queue's MaxWorkers.
	maxMaxWorkers = 10_000

	// DefaultMaxRateLimitedPause is Config.MaxRateLimitedPause when it is
	// zero.
	DefaultMaxRateLimitedPause = time.Hour

	// DefaultFetchCooldown is Config.FetchCooldown when it is zero.
	DefaultFetchCooldown = river.FetchCooldownDefault

	// DefaultFetchPollInterval is Config.FetchPollInterval when it is zero.
	DefaultFetchPollInterval = river.FetchPollIntervalDefault

	// DefaultDedupWindow is Config.DedupWindow when it is zero: the span of
	// River's completed-job retention and of providers' idempotency keys.
	DefaultDedupWindow = 24 * time.Hour

	// DefaultNotifyTimeout is how long a Notifier may take over one delivery
	// when Config.NotifyTimeout is zero.
	DefaultNotifyTimeout = 30 * time.Second

	// rescueMargin is how much longer than a claim River waits by default
	// before it takes a running delivery for lost: enough for the claim to
	// have run out when the rescued attempt comes, even when the first
	// waited a while for a pool connection to make its claim.
	rescueMargin = 10 * time.Second

	// DefaultMaxContentBytes is Config.MaxContentBytes when it is zero: the
	// longest TriggerOpts.Content and BulkTriggerOpts.RenderedBody accepted,
	// in bytes.
	DefaultMaxContentBytes = 128 << 10

	// DefaultMaxDataBytes is Config.MaxDataBytes when it is zero: room for an
	// address, a channel, a locale, a tenant and a few ids, and small enough
	// that a bulk's data costs little beside its bodies.
	DefaultMaxDataBytes = 8 << 10

	// maxMaxDataBytes is the largest Config.MaxDataBytes accepted: data is
	// for the host's routing, not for bodies.
	maxMaxDataBytes = 1 << 20

	// maxMaxContentBytes is the largest Config.MaxContentBytes accepted.
	maxMaxContentBytes = 64 << 20

	// MaxContentBytesInFlight bounds the bodies the embedded worker's
	// deliveries may hold at once: Config.MaxWorkers times
	// Config.MaxContentBytes must not exceed it. Each delivery in flight
	// holds its body while its Notifier runs, and reading it takes about as
	// much again for a moment (BENCHMARKS.md, section 14), so this keeps a
	// worker's memory for bodies within about 2 GiB whatever its settings.
	MaxContentBytesInFlight = 1 << 30

	// maxSchemaLength leaves room for River's notification topics, which are
	// "<schema>.river_leadership" and must fit Postgres' 63-byte identifiers.
	maxSchemaLength = 46
)

// River's job priorities run from 1, the highest, to 4. River works the
// available jobs of a queue in priority order, then by scheduled time, so a
// job of priority 1 is fetched before every job of priority 2 queued before
// it.
const (
	// minPriority and maxPriority bound River's priorities.
	minPriority = 1
	maxPriority = 4

	// maxMaxAttempts is the largest MaxAttempts accepted: River keeps a
	// job's attempts in a smallint.
	maxMaxAttempts = math.MaxInt16

	// scheduledAtYearLimit is the first year a ScheduledAt may not be in:
	// RFC 3339, and so JSON's encoding of a time (an event, the example
	// service's answers), stops at 9999, well inside PostgreSQL's
	// timestamptz, which stops at 294276.
	scheduledAtYearLimit = 10000
)

// Defaults of each call's options, beside the client's: every default the
// library applies is here.
const (
	// DefaultTriggerPriority is the River priority of the delivery job of
	// Trigger and TriggerTx when TriggerOpts.Priority is zero: River's
	// highest, so that a one-to-one follow-up is delivered before the bulk
	// recipients queued ahead of it.
	DefaultTriggerPriority = 1

	// DefaultBulkTriggerPriority is the River priority of the delivery jobs
	// of BulkTrigger and BulkTriggerTx when BulkTriggerOpts.Priority is
	// zero: one below Trigger's, so that a bulk, however large, never delays
	// a one-to-one follow-up. Priorities 3 and 4 stay free for bulks a host
	// wants delivered after other bulks, such as a backfill.
	DefaultBulkTriggerPriority = 2

	// DefaultListLimit is the number of rows a list call returns when its
	// Limit is zero.
	DefaultListLimit = 50

	// DefaultSubscribeChanSize is the buffer of a subscription's channel when
	// SubscribeConfig.ChanSize is zero, as in River's Subscribe.
	DefaultSubscribeChanSize = 1000
)

var (
	schemaNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	// queueNameRE is River's own rule for queue names.
	queueNameRE = regexp.MustCompile(`^(?:[a-z0-9])+(?:[_|\-]?[a-z0-9]+)*$`)
)

// Config configures a Client. A nil *Config, and every zero field, means the
// default.
type Config struct {
	// Schema is the Postgres schema of the library's tables. It must match
	// ^[A-Za-z_][A-Za-z0-9_]*$, be at most 46 characters, and not begin
	// with pg_ (reserved by PostgreSQL).
	// Defaults to DefaultSchema ("cairnloop").
	Schema string

	// RiverSchema is the schema of River's tables. A host that already runs
	// River points it at River's schema. Defaults to Schema.
	RiverSchema string

	// MaxBatchSize is the most recipients BulkTrigger accepts in one call;
	// SetMaxBatchSize changes it while running. Defaults to
	// DefaultMaxBatchSize (25).
	MaxBatchSize int

	// DedupWindow is how long a sent message keeps its dedup key
	// (conversation, template, envelope) after its sent_at: a trigger with
	// the same key within the window is a duplicate, and one after it
	// writes a new message. An unconfirmed message keeps its key as long
	// after it became unconfirmed. Pending, delivering and failed messages
	// keep their key until they are final, whatever the window; cancelled
	// and discarded ones free it at once. Negative: a sent message keeps
	// its key for the row's life. Defaults to DefaultDedupWindow (24h).
	DedupWindow time.Duration

	// MaxContentBytes is the longest TriggerOpts.Content and
	// BulkTriggerOpts.RenderedBody accepted, in bytes, at most 64 MiB; a
	// longer one is ErrInvalidArgument and writes nothing. Times MaxWorkers
	// it must not exceed MaxContentBytesInFlight (1 GiB): with 64 MiB
	// bodies, at most 16 workers. Defaults to DefaultMaxContentBytes
	// (128 KiB).
	MaxContentBytes int

	// MaxDataBytes is the longest host data (TriggerOpts.Data, a bulk's
	// data, merged for each recipient) accepted, in bytes as JSON, at most
	// 1 MiB; longer is ErrInvalidArgument and writes nothing. Defaults to
	// DefaultMaxDataBytes (8 KiB).
	MaxDataBytes int

	// Auditor receives an event inside every trigger's transaction.
	// TriggerOpts.Auditor and BulkTriggerOpts.Auditor override it per call.
	// Defaults to NoopAuditor.
	Auditor Auditor

	// Notifier delivers messages: the delivery worker hands it each message.
	// Nil makes deliveries no-ops: a message is marked sent without being
	// handed to anyone (outcome no_op), as the original library did.
	Notifier Notifier

	// NotifyTimeout cuts off a Notifier call that takes longer: its
	// context is cancelled at the deadline, and an error it then returns
	// fails the attempt, which is retried. A Notifier that ignores its
	// context is waited for, holding its message's claim and its worker,
	// and what it returns late is recorded. Defaults to
	// DefaultNotifyTimeout (30s).
	NotifyTimeout time.Duration

	// Queue is the River queue that delivery jobs go to. Defaults to
	// DefaultQueue ("outbound").
	Queue string

	// MaxAttempts is the number of delivery attempts before a message is
	// discarded, at most 32,767 (River keeps it in a smallint).
	// TriggerOpts.MaxAttempts and BulkTriggerOpts.MaxAttempts override it
	// per call. Defaults to DefaultMaxAttempts (20).
	MaxAttempts int

	// MaxWorkers is the number of delivery jobs that Start's embedded River
	// client works at once in this process, at most 10,000. It does not
	// depend on the pool's size: a delivery holds a pool connection only for
	// the two short statements that claim the message and record the
	// result, never while its Notifier runs, so a pool of 4 connections
	// serves hundreds of deliveries in flight, and a Notifier that queries
	// the same pool waits for a connection only as long as those statements
	// take. Defaults to DefaultMaxWorkers (100).
	MaxWorkers int

	// FetchCooldown is the shortest time Start's embedded River client
	// waits between two fetches of deliveries. With MaxWorkers it bounds
	// delivery throughput: at the default, 10 workers deliver at most about
	// 100 messages a second however fast the Notifier is. Lower it for more.
	// Must be at least 1ms. Defaults to DefaultFetchCooldown (100ms, River's
	// default). Start's alone: ConfigureRiver refuses a Config that sets it,
	// since it would tune the host's whole River client; set
	// river.Config.FetchCooldown there instead.
	FetchCooldown time.Duration

	// FetchPollInterval is how often Start's embedded River client looks for
	// due deliveries when no insert notification has woken it. Must be at
	// least FetchCooldown. Defaults to DefaultFetchPollInterval (1s, River's
	// default). Start's alone, as FetchCooldown is.
	FetchPollInterval time.Duration

	// RescueStuckJobsAfter is how long a delivery may stay running before
	// Start's embedded River client takes it for lost (its worker process
	// died mid-delivery, say) and runs it again, at once, with the same
	// message id. It must be at least NotifyTimeout + 20s, the length of an
	// attempt's claim on its message: the longest an attempt can take
	// including recording its result. River's rescuer looks every 30s, so a
	// dead worker's message is attempted again within about
	// RescueStuckJobsAfter + 40s of its attempt's start: at the defaults,
	// NotifyTimeout + 70s. A rescued attempt never calls the Notifier beside
	// one still running: while that one's claim holds, it waits for the
	// claim to run out. Defaults to NotifyTimeout + 30s. Start's alone, as
	// FetchCooldown is.
	RescueStuckJobsAfter time.Duration

	// riverTime, set only by the tests, is the River client's clock.
	riverTime rivertype.TimeGenerator

	// startOnly is what the caller set of the settings that only Start's
	// River client uses, before defaults: ConfigureRiver refuses them.
	startOnly startOnlySettings

	// Retention, when positive, makes Start run Prune every hour
	// with PruneParams.OlderThan set to it: final messages and empty or
	// refused envelopes older than this are deleted (sent messages never
	// before their DedupWindow has passed). Zero, the default, keeps every
	// row: these rows are conversation history. A host with its own River
	// client gets the job from PeriodicJobs.
	Retention time.Duration

	// AuditRetention, when positive, makes the periodic prune job also
	// delete TableAuditor events (in Schema) older than this. Zero, the
	// default, keeps them.
	AuditRetention time.Duration

	// PollOnly makes Start's embedded River client find new deliveries by
	// polling every FetchPollInterval instead of listening for
	// notifications, which needs a session of its own: set it behind
	// PgBouncer in transaction pooling mode. Lower FetchPollInterval to
	// keep deliveries prompt.
	PollOnly bool

	// RateLimits limits how fast Notifier calls start, per key, across
	// every process working the schema: see RateLimit. A message's key is
	// RateLimitKey's; a key without an entry is unlimited. A message held
	// back by its limit stays pending (cancellable by CancelMessage and
	// CancelEnvelope), uses no attempt, and holds no worker and no slot
	// while it waits: it parks, and its job sleeps until a dispatcher
	// releases it when a slot is its. Nil, the default, limits nothing and
	// costs nothing.
	RateLimits map[string]RateLimit

	// RateLimitKey chooses a message's key in RateLimits, such as the
	// provider or channel its template goes through. It runs when the
	// message is triggered, in the trigger's transaction, and a key with a
	// limit is stored with the message, so that the database can order the
	// key's waiting messages from the start: a RateLimitKey changed between
	// deploys applies to messages triggered after, and the others keep the
	// key they have. A key without a limit in the triggering process's
	// RateLimits is not stored, and the attempt computes it again (so give
	// processes that only trigger the same RateLimits as the workers). It must be fast and must not block; one
	// that panics at the trigger leaves the key to the attempt, where a
	// panic fails the attempt as a Notifier's panic does. Nil gives every
	// message the key "".
	RateLimitKey func(*Message) string

	// MaxRateLimitedPause caps the pause a Notifier's RateLimited(d, err)
	// puts on a key, so that a provider's absurd Retry-After cannot stop a
	// key for days. Client.LiftRateLimitPause ends a pause early. Defaults
	// to DefaultMaxRateLimitedPause.
	MaxRateLimitedPause time.Duration

	// RetryPolicy decides when a failed delivery is tried again, in both
	// worker modes (Start, and AddWorkers under a host's River client).
	// Defaults to the River client's policy, which for Start is River's
	// DefaultClientRetryPolicy: attempt^4 seconds, with jitter.
	RetryPolicy river.ClientRetryPolicy

	// TracerProvider makes the tracer for spans. Defaults to
	// otel.GetTracerProvider().
	TracerProvider trace.TracerProvider

	// MeterProvider makes the meter for metrics. Defaults to
	// otel.GetMeterProvider().
	MeterProvider metric.MeterProvider

	// Logger receives the library's log lines. Defaults to slog.Default().
	Logger *slog.Logger
}

// MaxLastErrorBytes bounds Message.LastError, and so what of a Notifier's
// error reaches the database, River's job errors and River's logs.
const MaxLastErrorBytes = delivery.MaxLastErrorBytes

// recordTimeout bounds each step that records an attempt's result
// (delivery.RecordTimeout), and so the claim's length.
const recordTimeout = delivery.RecordTimeout

// claimLength is how long a claim holds a message: the longest an attempt may
// take from its claim to its recorded result.
func claimLength(cfg *Config) time.Duration {
	return cfg.NotifyTimeout + 2*recordTimeout
}

// withDefaults returns a copy of the config with every zero field set to its
// default; the caller's Config is never modified.
func (c *Config) withDefaults() *Config {
	if c == nil {
		c = &Config{}
	}
	out := *c
	out.startOnly = startOnlySettings{fetchCooldown: c.FetchCooldown, fetchPollInterval: c.FetchPollInterval, rescueStuckJobsAfter: c.RescueStuckJobsAfter}
	out.Schema = cmp.Or(out.Schema, DefaultSchema)
	out.RiverSchema = cmp.Or(out.RiverSchema, out.Schema)
	out.MaxBatchSize = cmp.Or(out.MaxBatchSize, DefaultMaxBatchSize)
	out.Queue = cmp.Or(out.Queue, DefaultQueue)
	out.MaxAttempts = cmp.Or(out.MaxAttempts, DefaultMaxAttempts)
	out.NotifyTimeout = cmp.Or(out.NotifyTimeout, DefaultNotifyTimeout)
	out.DedupWindow = cmp.Or(out.DedupWindow, DefaultDedupWindow)
	out.MaxContentBytes = cmp.Or(out.MaxContentBytes, DefaultMaxContentBytes)
	out.MaxDataBytes = cmp.Or(out.MaxDataBytes, DefaultMaxDataBytes)
	out.FetchCooldown = cmp.Or(out.FetchCooldown, DefaultFetchCooldown)
	out.FetchPollInterval = cmp.Or(out.FetchPollInterval, DefaultFetchPollInterval)
	out.MaxWorkers = cmp.Or(out.MaxWorkers, DefaultMaxWorkers)
	out.RescueStuckJobsAfter = cmp.Or(out.RescueStuckJobsAfter, claimLength(&out)+rescueMargin)
	out.RateLimits = withBursts(out.RateLimits)
	out.MaxRateLimitedPause = cmp.Or(out.MaxRateLimitedPause, DefaultMaxRateLimitedPause)
	if out.Auditor == nil {
		out.Auditor = NoopAuditor{}
	}
	if out.TracerProvider == nil {
		out.TracerProvider = otel.GetTracerProvider()
	}
	if out.MeterProvider == nil {
		out.MeterProvider = otel.GetMeterProvider()
	}
	if out.Logger == nil {
		out.Logger = slog.Default()
	}
	return &out
}

// validate checks a config that has had its defaults applied.
func (c *Config) validate() error {
	if err := validateSchemaName("Config.Schema", c.Schema); err != nil {
		return err
	}
	if err := validateSchemaName("Config.RiverSchema", c.RiverSchema); err != nil {
		return err
	}
	if c.MaxBatchSize < 1 {
		return invalidArgument("Config.MaxBatchSize", "must be at least 1 (0 means the default, %d), got %d", DefaultMaxBatchSize, c.MaxBatchSize)
	}
	if c.MaxAttempts < 1 || c.MaxAttempts > maxMaxAttempts {
		return invalidArgument("Config.MaxAttempts", "must be between 1 and %d (0 means the default, %d), got %d", maxMaxAttempts, DefaultMaxAttempts, c.MaxAttempts)
	}
	if c.MaxWorkers < 1 || c.MaxWorkers > maxMaxWorkers {
		return invalidArgument("Config.MaxWorkers", "must be between 1 and %d (0 means the default, %d), got %d", maxMaxWorkers, DefaultMaxWorkers, c.MaxWorkers)
	}
	if c.Retention < 0 {
		return invalidArgument("Config.Retention", "must not be negative (0 keeps every row), got %s", c.Retention)
	}
	if c.AuditRetention < 0 {
		return invalidArgument("Config.AuditRetention", "must not be negative (0 keeps every event), got %s", c.AuditRetention)
	}
	if c.MaxContentBytes < 1 || c.MaxContentBytes > maxMaxContentBytes {
		return invalidArgument("Config.MaxContentBytes", "must be between 1 and %d (0 means the default, %d), got %d", maxMaxContentBytes, DefaultMaxContentBytes, c.MaxContentBytes)
	}
	if c.MaxDataBytes < 1 || c.MaxDataBytes > maxMaxDataBytes {
		return invalidArgument("Config.MaxDataBytes", "must be between 1 and %d (0 means the default, %d), got %d", maxMaxDataBytes, DefaultMaxDataBytes, c.MaxDataBytes)
	}
	if int64(c.MaxContentBytes)*int64(c.MaxWorkers) > MaxContentBytesInFlight {
		return invalidArgument("Config.MaxContentBytes", "times Config.MaxWorkers must be at most %d (MaxContentBytesInFlight): each delivery in flight holds its body; got %d × %d workers; lower either",
			MaxContentBytesInFlight, c.MaxContentBytes, c.MaxWorkers)
	}
	if c.MaxRateLimitedPause < time.Millisecond || c.MaxRateLimitedPause > maxRateLimitSpan {
		return invalidArgument("Config.MaxRateLimitedPause", "must be between 1ms and %s (0 means the default, %s), got %s", maxRateLimitSpan, DefaultMaxRateLimitedPause, c.MaxRateLimitedPause)
	}
	if c.NotifyTimeout < 0 {
		return invalidArgument("Config.NotifyTimeout", "must not be negative (0 means the default, %s), got %s", DefaultNotifyTimeout, c.NotifyTimeout)
	}
	if c.FetchCooldown < river.FetchCooldownMin {
		return invalidArgument("Config.FetchCooldown", "must be at least %s (0 means the default, %s), got %s", river.FetchCooldownMin, DefaultFetchCooldown, c.FetchCooldown)
	}
	if c.FetchPollInterval < c.FetchCooldown {
		return invalidArgument("Config.FetchPollInterval", "must be at least Config.FetchCooldown (%s; 0 means the default, %s), got %s", c.FetchCooldown, DefaultFetchPollInterval, c.FetchPollInterval)
	}
	if c.RescueStuckJobsAfter < claimLength(c) {
		return invalidArgument("Config.RescueStuckJobsAfter", "must be at least NotifyTimeout + %s (%s; 0 means NotifyTimeout + %s), got %s",
			2*recordTimeout, claimLength(c), 2*recordTimeout+rescueMargin, c.RescueStuckJobsAfter)
	}
	if err := validateRateLimits(c.RateLimits); err != nil {
		return err
	}
	if len(c.Queue) > 64 || !queueNameRE.MatchString(c.Queue) {
		return invalidArgument("Config.Queue", "must be at most 64 lowercase letters and digits separated by single underscores or hyphens, got %q", c.Queue)
	}
	return nil
}

// validateSchemaName checks a schema name before it is quoted into SQL.
func validateSchemaName(field, name string) error {
	if len(name) > maxSchemaLength {
		return invalidArgument(field, "must be at most %d characters, got %d", maxSchemaLength, len(name))
	}
	if !schemaNameRE.MatchString(name) {
		return invalidArgument(field, "must match ^[A-Za-z_][A-Za-z0-9_]*$, got %q", name)
	}
	if strings.HasPrefix(name, "pg_") {
		// PostgreSQL refuses to create such a schema; say so before it does.
		return invalidArgument(field, "must not begin with pg_, which PostgreSQL reserves for itself, got %q", name)
	}
	return nil
}

// startOnlySettings are the Config settings that tune the River client that
// Start runs, as the caller gave them (zero when left to the default).
type startOnlySettings struct {
	fetchCooldown, fetchPollInterval, rescueStuckJobsAfter time.Duration
}

// refuse returns an error naming the first setting given, which
// ConfigureRiver would otherwise ignore: the host's River client is the
// host's to tune.
func (s startOnlySettings) refuse() error {
	for _, set := range []struct {
		field string
		value time.Duration
	}{
		{"FetchCooldown", s.fetchCooldown},
		{"FetchPollInterval", s.fetchPollInterval},
		{"RescueStuckJobsAfter", s.rescueStuckJobsAfter},
	} {
		if set.value != 0 {
			return invalidArgument("Config."+set.field, "is %s, but only Start's own River client uses it: ConfigureRiver leaves the host's River client as the host configured it. "+
				"Set river.Config.%s instead, and leave Config.%s zero", set.value, set.field, set.field)
		}
	}
	return nil
}

// maxRateLimitKeyBytes bounds the keys of Config.RateLimits, which are
// stored as the rate_limits table's primary key.
const maxRateLimitKeyBytes = 256

// validateRateLimits checks Config.RateLimits, whose bursts withDefaults has
// set, and names the first bad key in sorted order.
func validateRateLimits(limits map[string]RateLimit) error {
	keys := make([]string, 0, len(limits))
	for key := range limits {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	for _, key := range keys {
		l := limits[key]
		field := fmt.Sprintf("Config.RateLimits[%q]", key)
		switch {
		case len(key) > maxRateLimitKeyBytes:
			return invalidArgument("Config.RateLimits", "a key must be at most %d bytes, got one of %d", maxRateLimitKeyBytes, len(key))
		case !utf8.ValidString(key) || containsNUL(key):
			return invalidArgument("Config.RateLimits", "a key must be valid UTF-8 without NUL bytes, got %q", key)
		case l.Limit < 1:
			return invalidArgument(field+".Limit", "must be at least 1, got %d", l.Limit)
		case l.Per < time.Millisecond:
			return invalidArgument(field+".Per", "must be at least 1ms, got %s", l.Per)
		case l.Burst < 1:
			return invalidArgument(field+".Burst", "must be at least 1 (0 means Limit), got %d", l.Burst)
		case delivery.Interval(l) < time.Microsecond:
			// PostgreSQL's timestamps resolve microseconds.
			return invalidArgument(field, "must allow at most one call per microsecond, got %d per %s", l.Limit, l.Per)
		case l.Per > maxRateLimitSpan || int64(l.Burst) > int64(maxRateLimitSpan/delivery.Interval(l)):
			// The burst's span is how far ahead the key's state may run.
			return invalidArgument(field+".Burst", "times Per/Limit must be at most %s, got %d × %s", maxRateLimitSpan, l.Burst, delivery.Interval(l))
		case len(l.Also) > maxRateLimitWindows:
			return invalidArgument(field+".Also", "must hold at most %d limits, got %d", maxRateLimitWindows, len(l.Also))
		}
		for i, w := range l.Also {
			wfield := fmt.Sprintf("%s.Also[%d]", field, i)
			switch {
			case w.Limit < 1 || w.Limit > maxRateLimitWindowCalls:
				return invalidArgument(wfield+".Limit", "must be between 1 and %d, got %d", maxRateLimitWindowCalls, w.Limit)
			case w.Per < time.Millisecond || w.Per > maxRateLimitSpan:
				return invalidArgument(wfield+".Per", "must be between 1ms and %s, got %s", maxRateLimitSpan, w.Per)
			case w.Burst != 0:
				return invalidArgument(wfield+".Burst", "must be 0: a further limit counts its Limit over any window of Per, with no burst beyond it, got %d", w.Burst)
			case len(w.Also) > 0:
				return invalidArgument(wfield+".Also", "must be empty: list every further limit in %s.Also", field)
			}
		}
	}
	return nil
}

const (
	// maxRateLimitSpan bounds a limit's period and its burst's span, so
	// that no time derived from them overflows, in Go or in PostgreSQL.
	maxRateLimitSpan = 10 * 365 * 24 * time.Hour
	// maxRateLimitWindows bounds a key's further limits.
	maxRateLimitWindows = 8
	// maxRateLimitWindowCalls bounds a further limit's Limit: the key keeps
	// the start of that many calls.
	maxRateLimitWindowCalls = 1_000_000
)

func containsNUL(s string) bool {
	for i := range len(s) {
		if s[i] == 0 {
			return true
		}
	}
	return false
}

// withBursts returns a copy of limits with every zero Burst set to its
// Limit; nil when there are none.
func withBursts(limits map[string]RateLimit) map[string]RateLimit {
	if len(limits) == 0 {
		return nil
	}
	out := make(map[string]RateLimit, len(limits))
	for key, l := range limits {
		if l.Burst == 0 {
			l.Burst = l.Limit
		}
		out[key] = l
	}
	return out
}

// invalidArgument returns an *InvalidArgumentError: the field, and what is
// wrong with it. It and the two helpers below make the errors of every
// validation in the library, Config's first, so they stand here, beneath
// every call. They name the leaf's types as outboundtype's, as River's code
// names rivertype's: the same types as the root's aliases.
func invalidArgument(field, format string, args ...any) error {
	return &outboundtype.InvalidArgumentError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// withFieldPrefix prefixes the field of an *InvalidArgumentError in err, as
// the options of the call name it; any other error is returned as is.
func withFieldPrefix(prefix string, err error) error {
	var argErr *outboundtype.InvalidArgumentError
	if errors.As(err, &argErr) {
		argErr.Field = prefix + argErr.Field
	}
	return err
}

// schemaMismatch returns an error matching ErrSchemaMismatch about one schema.
func schemaMismatch(schema, format string, args ...any) error {
	return fmt.Errorf("%w: schema %q %s", outboundtype.ErrSchemaMismatch, schema, fmt.Sprintf(format, args...))
}
