// Package hostdata holds what the library knows of host data's JSON: which
// of it reads back as written (CheckReadsBack, MaxDepth), and how every read
// decodes it (Decode), losslessly for rows stored before the check. It names
// nothing of the library's, so that every reader of a row can use it.
package hostdata

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxDepth is how deeply host data may nest, counting its own object as
// the first level. Host data is an address, a channel, a locale; this is far
// deeper than it needs, far inside the 10,000 levels to which encoding/json
// decodes (so that what is accepted reads back), and shallow enough for the
// dashboard to show indented.
const MaxDepth = 100

// Decode decodes host data as every read gives it in Message.Data and
// Envelope.Data, or returns nil for none. It never fails on a JSON object
// PostgreSQL kept: data that encodeData accepted decodes as encoding/json
// decodes into a map (numbers are float64); data stored before it checked
// (a number float64 cannot give back as written, nesting deeper than
// MaxDepth) decodes losslessly, such a number as a json.Number of its
// text, so that the row stays readable, cancellable and deliverable.
func Decode(encoded []byte) map[string]any {
	if encoded == nil {
		return nil
	}
	if CheckReadsBack(encoded) == "" {
		var data map[string]any
		if err := json.Unmarshal(encoded, &data); err == nil {
			return data
		}
	}
	return decodeLossless(encoded)
}

// decodeLossless decodes a JSON object token by token, without
// encoding/json's depth limit, with each number a float64 when that gives it
// back as written and a json.Number of its text when not.
func decodeLossless(encoded []byte) map[string]any {
	dec := json.NewDecoder(bytes.NewReader(encoded))
	dec.UseNumber()
	v, err := decodeValue(dec)
	data, ok := v.(map[string]any)
	if err != nil || !ok {
		// Not a JSON object: the messages table's check and jsonb make this
		// unreachable; keep the text rather than lose it.
		return map[string]any{"": json.RawMessage(bytes.Clone(encoded))}
	}
	return data
}

// decodeValue decodes the next value of dec, which uses json.Number.
func decodeValue(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch tok := tok.(type) {
	case json.Delim:
		if tok == '{' {
			obj := map[string]any{}
			for dec.More() {
				key, err := dec.Token()
				if err != nil {
					return nil, err
				}
				v, err := decodeValue(dec)
				if err != nil {
					return nil, err
				}
				obj[key.(string)] = v
			}
			_, err := dec.Token() // '}'
			return obj, err
		}
		arr := []any{}
		for dec.More() {
			v, err := decodeValue(dec)
			if err != nil {
				return nil, err
			}
			arr = append(arr, v)
		}
		_, err := dec.Token() // ']'
		return arr, err
	case json.Number:
		if numberProblem(string(tok)) != "" {
			return tok, nil
		}
		return strconv.ParseFloat(string(tok), 64)
	}
	return tok, nil // string, bool or nil
}

// dataFrame is one object or array that CheckReadsBack is inside.
type dataFrame struct {
	object bool
	// key is the span of the current member's quoted name, in an object.
	keyStart, keyEnd int
	wantKey          bool
	// index is the current element's, in an array.
	index int
}

// CheckReadsBack checks JSON text of host data in one pass, without
// decoding it: that it is valid UTF-8, holds no string whose invalid UTF-8
// json.Marshal replaced with U+FFFD (which it writes \ufffd, so that a
// Marshaler writing that escape for a real U+FFFD is refused too), nests no
// deeper than MaxDepth, and holds no number that a read, which decodes
// numbers as float64, would not give back as written. It returns what is
// wrong and where, naming the member by its keys and indexes, or "" when
// the data reads back.
func CheckReadsBack(encoded []byte) string {
	if !utf8.Valid(encoded) {
		return "must be valid UTF-8"
	}
	var buf [16]dataFrame
	stack := buf[:0]
	for i := 0; i < len(encoded); i++ {
		switch c := encoded[i]; {
		case c == '"':
			end, replaced := endOfString(encoded, i)
			if n := len(stack); n > 0 && stack[n-1].object && stack[n-1].wantKey {
				stack[n-1].keyStart, stack[n-1].keyEnd, stack[n-1].wantKey = i, end+1, false
			}
			if replaced {
				return "holds invalid UTF-8 at " + dataPath(encoded, stack) +
					" (encoding/json would send U+FFFD in its place, written \\ufffd): send valid UTF-8 text"
			}
			i = end
		case c == '{' || c == '[':
			if len(stack) == MaxDepth {
				return fmt.Sprintf("must nest objects and arrays at most %d deep (MaxDataDepth)", MaxDepth)
			}
			stack = append(stack, dataFrame{object: c == '{', wantKey: c == '{'})
		case c == '}' || c == ']':
			stack = stack[:len(stack)-1]
		case c == ',' && len(stack) > 0:
			if top := &stack[len(stack)-1]; top.object {
				top.wantKey = true
			} else {
				top.index++
			}
		case c == '-' || (c >= '0' && c <= '9'):
			end := i + 1
			for end < len(encoded) && strings.IndexByte("+-.0123456789eE", encoded[end]) >= 0 {
				end++
			}
			if problem := numberProblem(string(encoded[i:end])); problem != "" {
				return "holds at " + dataPath(encoded, stack) + " " + problem +
					" (reads decode numbers as float64): send it as a string"
			}
			i = end - 1
		}
	}
	return ""
}

// endOfString returns the index of the quote that ends the JSON string
// starting at encoded[start], and whether the string holds the escape
// \ufffd.
func endOfString(encoded []byte, start int) (int, bool) {
	replaced := false
	for j := start + 1; j < len(encoded); j++ {
		switch encoded[j] {
		case '\\':
			if bytes.HasPrefix(encoded[j+1:], []byte("ufffd")) {
				replaced = true
			}
			j++ // the escaped character; \uXXXX's digits are plain
		case '"':
			return j, replaced
		}
	}
	return len(encoded), replaced
}

// maxPathDepth bounds how much of a member's path an error names.
const maxPathDepth = 8

// dataPath names the member the stack is at, as Data["order"]["lines"][2].
func dataPath(encoded []byte, stack []dataFrame) string {
	var b strings.Builder
	b.WriteString("Data")
	for i, f := range stack {
		if i == maxPathDepth {
			b.WriteString("…")
			break
		}
		if f.object {
			if f.keyEnd > f.keyStart {
				b.WriteByte('[')
				b.Write(encoded[f.keyStart:f.keyEnd])
				b.WriteByte(']')
			}
			continue
		}
		b.WriteString("[" + strconv.Itoa(f.index) + "]")
	}
	return b.String()
}

// twoTo53 is the magnitude below which float64 holds every integer.
const twoTo53 = 1 << 53

// numberProblem says why a JSON number would not read back as written
// through float64, or returns "" when it would: beyond float64's range, too
// small for it yet not zero, or an integer beyond 2^53 that float64 would
// change. An integer that float64 holds exactly reads back, and so does one
// that is a float64's own shortest decimal (1e300, which jsonb prints in
// full); a fraction float64 rounds reads back rounded, as any float64 does.
// It judges the number's value, not its text, so that a number judged when
// triggered is judged the same when read back from jsonb, which keeps
// numbers as numeric and prints them in its own form.
func numberProblem(lit string) string {
	if !storableByJSONB(lit) {
		return "a number jsonb cannot store (more than 16383 digits after the decimal point, or an exponent beyond ±1073741822)"
	}
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil {
		return "a number beyond float64's range"
	}
	if f == 0 {
		if mantissa, _, _ := strings.Cut(strings.ToLower(lit), "e"); strings.ContainsAny(mantissa, "123456789") {
			return "a number too small for float64, which would read back as 0"
		}
		return ""
	}
	if f < twoTo53 && f > -twoTo53 {
		return ""
	}
	exact, ok := new(big.Rat).SetString(lit)
	if !ok || !exact.IsInt() {
		return ""
	}
	if held := new(big.Rat).SetFloat64(f); held.Cmp(exact) == 0 {
		return ""
	}
	if shortest, ok := new(big.Rat).SetString(strconv.FormatFloat(f, 'g', -1, 64)); ok && shortest.Cmp(exact) == 0 {
		return ""
	}
	return "an integer beyond 2^53 that float64 would change"
}

// jsonbMaxScale is the most digits after the decimal point that
// PostgreSQL's numeric, in which jsonb keeps a number, stores; and
// jsonbMaxExponent the largest exponent its input takes.
const (
	jsonbMaxScale    = 16383
	jsonbMaxExponent = 1<<30 - 2
)

// storableByJSONB reports whether jsonb stores a JSON number, rather than
// refusing it with "value overflows numeric format": a zero that float64
// reads fine, such as 0e-100000, can still be beyond numeric's scale.
func storableByJSONB(lit string) bool {
	mantissa, exponent, hasExponent := strings.Cut(strings.ToLower(lit), "e")
	exp := 0
	if hasExponent {
		n, err := strconv.Atoi(exponent)
		if err != nil || n > jsonbMaxExponent || n < -jsonbMaxExponent {
			return false
		}
		exp = n
	}
	fraction := 0
	if _, digits, ok := strings.Cut(mantissa, "."); ok {
		fraction = len(digits)
	}
	return fraction-exp <= jsonbMaxScale
}
