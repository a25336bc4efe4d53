package outbound_test

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairnloop/outbound"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// fuzzClient is one client on one schema for a whole fuzz target.
//
// The fuzz targets drive the public API with arbitrary input against the real
// database. Each input must either be refused with ErrInvalidArgument (or,
// for a bulk over the cap, ErrBatchTooLarge) having written nothing but what
// the refusal records, or be written exactly as given. `go test` runs the
// seeds below; RELIABILITY.md has the longer runs.
func fuzzClient(f *testing.F, config *outbound.Config) (*outbound.Client, string) {
	f.Helper()
	schema := migratedSchema(f)
	if config == nil {
		config = &outbound.Config{}
	}
	config.Schema = schema
	client, err := outbound.New(testPool, config)
	require.NoError(f, err)
	return client, schema
}

func FuzzTrigger(f *testing.F) {
	client, schema := fuzzClient(f, nil)
	f.Add(int64(42), "recovery", "", int64(0), "agent:7", false)
	f.Add(int64(1), "t", "Hello", int64(60_000), "", true)
	f.Add(int64(0), "recovery", "", int64(0), "", false)   // non-positive id
	f.Add(int64(-9), "recovery", "", int64(0), "", false)  // negative id
	f.Add(int64(5), "", "", int64(0), "", false)           // no template
	f.Add(int64(5), "bad\x00nul", "", int64(0), "", false) // NUL byte
	f.Add(int64(5), "t", "\xff\xfe", int64(0), "", false)  // invalid UTF-8
	f.Add(int64(5), "t", "", int64(-1), "", false)         // negative delay
	f.Add(int64(9_223_372_036_854_775_807), "t", "max", int64(0), "", false)
	f.Add(int64(7), "'; DROP TABLE messages; --", "\"quoted\"", int64(0), "x", true)

	f.Fuzz(func(t *testing.T, conversationID int64, templateID, content string, scheduleInMs int64, actor string, withEnvelope bool) {
		ctx := ctxT(t)
		opts := &outbound.TriggerOpts{
			TemplateID: templateID,
			Content:    content,
			ScheduleIn: time.Duration(scheduleInMs) * time.Millisecond,
			Actor:      actor,
		}
		if withEnvelope {
			opts.BulkEnvelopeID = uuid.Must(uuid.NewV7())
		}
		before := countAll(t, schema)
		res, err := client.Trigger(ctx, conversationID, opts)
		if err != nil {
			require.ErrorIs(t, err, outbound.ErrInvalidArgument, "a refusal that is not ErrInvalidArgument")
			require.Equal(t, before, countAll(t, schema), "a refused call wrote something")
			return
		}
		m := res.Message
		stored, err := client.Message(ctx, m.ID)
		require.NoError(t, err)
		require.Equal(t, m, stored, "the result is the row as stored")
		require.Equal(t, conversationID, m.ConversationID)
		require.Equal(t, templateID, m.TemplateID)
		require.Equal(t, opts.BulkEnvelopeID, m.BulkEnvelopeID)
		if !res.Duplicate {
			// An earlier input may hold this key with other content.
			if content != "" {
				require.Equal(t, content, m.Content)
			}
			require.Equal(t, before.Messages+1, countAll(t, schema).Messages)
		}
		again := mustTrigger(ctx, t, client, conversationID, opts)
		require.True(t, again.Duplicate, "the same key twice")
		require.Equal(t, m.ID, again.Message.ID)
	})
}

// conversationIDsFrom reads up to 30 int64s from b, eight bytes each.
func conversationIDsFrom(b []byte) []int64 {
	var ids []int64
	for len(b) >= 8 && len(ids) < 30 {
		ids = append(ids, int64(binary.LittleEndian.Uint64(b)))
		b = b[8:]
	}
	return ids
}

func conversationIDBytes(ids ...int64) []byte {
	var b []byte
	for _, id := range ids {
		b = binary.LittleEndian.AppendUint64(b, uint64(id))
	}
	return b
}

func FuzzBulkTrigger(f *testing.F) {
	const batchCap = 10
	client, schema := fuzzClient(f, &outbound.Config{MaxBatchSize: batchCap})
	f.Add(conversationIDBytes(1, 2, 3), "outage", "Back up.", "agent:7")
	f.Add(conversationIDBytes(), "outage", "Back up.", "")                             // no recipients
	f.Add(conversationIDBytes(4, 4), "outage", "Back up.", "")                         // repeated id
	f.Add(conversationIDBytes(5, 0), "outage", "Back up.", "")                         // non-positive id
	f.Add(conversationIDBytes(6), "", "Back up.", "")                                  // no template
	f.Add(conversationIDBytes(7), "outage", "", "")                                    // no body
	f.Add(conversationIDBytes(8), "outage", "a\x00b", "")                              // NUL byte
	f.Add(conversationIDBytes(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11), "outage", "big", "") // over the cap
	f.Add(conversationIDBytes(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 1), "outage", "big", "")  // over the cap, repeated
	f.Add(conversationIDBytes(12, 13), "'); DELETE FROM bulk_envelopes; --", "x", "\xff")

	f.Fuzz(func(t *testing.T, idBytes []byte, templateID, body, actor string) {
		ctx := ctxT(t)
		ids := conversationIDsFrom(idBytes)
		// Each bulk has a fresh envelope id, so inputs never share a key.
		before := countAll(t, schema)
		res, err := client.BulkTrigger(ctx, ids, &outbound.BulkTriggerOpts{TemplateID: templateID, RenderedBody: body, Actor: actor})
		after := countAll(t, schema)
		var tooLarge *outbound.BatchTooLargeError
		switch {
		case errors.As(err, &tooLarge):
			require.Greater(t, len(ids), batchCap)
			require.Equal(t, before.Envelopes+1, after.Envelopes, "a refusal records its envelope")
			require.Equal(t, before.Messages, after.Messages, "a refusal wrote messages")
			require.Equal(t, before.Jobs, after.Jobs, "a refusal wrote jobs")
			env, err := client.Envelope(ctx, tooLarge.EnvelopeID)
			require.NoError(t, err)
			require.Equal(t, outbound.EnvelopeStatusRefusedCapExceeded, env.Status)
			require.Equal(t, len(ids), env.Count)
			require.Equal(t, ids[:min(len(ids), outbound.MaxRefusedRecipientsKept)], env.RecipientConversationIDs)
			return
		case err != nil:
			require.ErrorIs(t, err, outbound.ErrInvalidArgument, "a refusal that is not ErrInvalidArgument")
			require.Equal(t, before, after, "a refused call wrote something")
			return
		}
		require.Equal(t, ids, res.Envelope.RecipientConversationIDs)
		require.Equal(t, templateID, res.Envelope.TemplateID)
		require.Equal(t, body, res.Envelope.RenderedBody)
		require.Equal(t, actor, res.Envelope.RequestedBy)
		require.Len(t, res.Messages, len(ids))
		for i, m := range res.Messages {
			require.Equal(t, ids[i], m.ConversationID)
			require.Equal(t, body, m.Content)
			stored, err := client.Message(ctx, m.ID)
			require.NoError(t, err)
			require.Equal(t, m, stored)
		}
		require.Equal(t, rowCounts{
			Envelopes: before.Envelopes + 1, Messages: before.Messages + len(ids), Jobs: before.Jobs + len(ids),
			AuditEvents: before.AuditEvents,
		}, after, "a bulk writes one envelope and one message and job per recipient")
	})
}

// acceptedSchemaName is the rule New and Migrate document for schema names,
// with the pg_ prefix, which PostgreSQL reserves, refused besides.
var acceptedSchemaName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,45}$`)

func FuzzSchemaName(f *testing.F) {
	for _, seed := range []string{
		"cairnloop", "_x", "Mixed_Case_9", "1abc", "a-b", "public.x", `a"b`, "a b", "x; DROP TABLE y",
		`x"; DROP SCHEMA public CASCADE; --`, "schéma", "", "s\x00", "pg_catalog\"", "abcdefghijabcdefghijabcdefghijabcdefghijabcdef",
		"pg_temp", "pg_toast", "PG_upper",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, name string) {
		ctx := ctxT(t)
		_, newErr := outbound.New(testPool, &outbound.Config{Schema: name})
		if name == "" {
			require.NoError(t, newErr, "an empty schema means the default")
			return
		}
		_, auditorErr := outbound.NewTableAuditor(testPool, name)
		if !acceptedSchemaName.MatchString(name) || strings.HasPrefix(name, "pg_") {
			require.ErrorIs(t, newErr, outbound.ErrInvalidArgument, "New accepted schema %q", name)
			require.ErrorIs(t, auditorErr, outbound.ErrInvalidArgument, "NewTableAuditor accepted schema %q", name)
			require.ErrorIs(t, outbound.Migrate(ctx, testPool, &outbound.MigrateOpts{Schema: name}), outbound.ErrInvalidArgument,
				"Migrate accepted schema %q", name)
			return
		}
		require.NoError(t, newErr)
		require.NoError(t, auditorErr)
		// An accepted name is used as exactly that schema, nothing more: a
		// fresh, unique variant of it is migrated and found by name.
		unique := name
		if len(unique) > 30 {
			unique = unique[:30]
		}
		// "x", not "_": name "pg" must not become the reserved "pg_...".
		unique += "x" + uuid.Must(uuid.NewV7()).String()[24:]
		require.NoError(t, outbound.Migrate(ctx, testPool, &outbound.MigrateOpts{Schema: unique}))
		defer dropSchema(unique)
		var tables int
		require.NoError(t, testPool.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = $1`, unique).Scan(&tables))
		require.Positive(t, tables)
		client, err := outbound.New(testPool, &outbound.Config{Schema: unique})
		require.NoError(t, err)
		mustTrigger(ctx, t, client, 1, &outbound.TriggerOpts{TemplateID: "t"})
		require.Equal(t, 1, countRows(t, unique, "messages"))
	})
}

// jsonNumber is JSON's grammar of a number.
var jsonNumber = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$`)

// FuzzDataNumber gives Trigger a number in host data, as JSON text: it is
// refused, or every read gives back the float64 the text parses to, never
// a json.Number. jsonb keeps numbers as numeric and prints them in a form of
// its own (1e300 in full), so this checks that the trigger's judgement and
// the read's agree.
func FuzzDataNumber(f *testing.F) {
	client, _ := fuzzClient(f, nil)
	for _, seed := range []string{
		"0", "-0", "0.1", "12.50", "1e300", "1.5e300", "-1e300", "1.7976931348623157e308", "1e308", "5e-324", "2.5e-324",
		"9007199254740992", "9007199254740993", "-9007199254740993", "1152921504606846976", "9223372036854775807",
		"18446744073709551616", "123456789012345678901234567890", "9007199254740992.5", "1e400", "1e-400", "0e400",
	} {
		f.Add(seed)
	}
	var conversation atomic.Int64
	f.Fuzz(func(t *testing.T, lit string) {
		if !jsonNumber.MatchString(lit) {
			return // not a JSON number
		}
		ctx := ctxT(t)
		res, err := client.Trigger(ctx, conversation.Add(1), &outbound.TriggerOpts{TemplateID: "t",
			Data: map[string]any{"v": json.Number(lit)}})
		if err != nil {
			require.ErrorIs(t, err, outbound.ErrInvalidArgument)
			require.ErrorContains(t, err, "send it as a string")
			return
		}
		want, err := strconv.ParseFloat(lit, 64)
		require.NoError(t, err, "accepted a number float64 cannot hold")
		msg, err := client.Message(ctx, res.Message.ID)
		require.NoError(t, err)
		require.Equal(t, want, msg.Data["v"], "%s read back as %v", lit, msg.Data["v"])
		require.Equal(t, want, res.Message.Data["v"])
	})
}
