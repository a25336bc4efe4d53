package outbound

import (
	"bytes"
	"encoding/json"
	"maps"

	"github.com/cairnloop/outbound/internal/hostdata"
)

// encodeData encodes host data (TriggerOpts.Data, a bulk's data) as the JSON
// object the messages keep, or returns nil for none. Data that JSON cannot
// encode, that PostgreSQL's jsonb cannot store (a NUL character), that is
// longer than maxBytes once encoded, or that would not read back as given
// (see hostdata.CheckReadsBack) is ErrInvalidArgument naming field; the message never
// repeats the data, which may be personal.
func encodeData(field string, data map[string]any, maxBytes int) ([]byte, error) {
	if data == nil {
		return nil, nil
	}
	encoded, err := json.Marshal(data)
	if err != nil {
		return nil, invalidArgument(field, "must encode as a JSON object: %v", err)
	}
	if len(encoded) > maxBytes {
		return nil, invalidArgument(field, "must be at most %d bytes as JSON (Config.MaxDataBytes), got %d", maxBytes, len(encoded))
	}
	// encoding/json escapes a NUL as \u0000, which jsonb refuses.
	if bytes.Contains(encoded, []byte(`\u0000`)) {
		return nil, invalidArgument(field, "must not contain NUL characters")
	}
	if problem := hostdata.CheckReadsBack(encoded); problem != "" {
		return nil, invalidArgument(field, "%s", problem)
	}
	return encoded, nil
}

// mergeData is a recipient's data: the shared data with the recipient's own
// keys over it. Either may be nil.
func mergeData(shared, own map[string]any) map[string]any {
	if len(own) == 0 {
		return shared
	}
	if len(shared) == 0 {
		return own
	}
	merged := maps.Clone(shared)
	maps.Copy(merged, own)
	return merged
}

// MaxDataDepth is how deeply host data may nest, counting its own object as
// the first level: far deeper than an address, a channel or a locale needs,
// far inside the depth to which encoding/json decodes, so that what is
// accepted reads back.
const MaxDataDepth = hostdata.MaxDepth
