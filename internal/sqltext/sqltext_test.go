package sqltext

import (
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
)

// maxPositionalParams is the most $n parameters a statement may take: past
// a handful, a statement names its arguments (pgx.NamedArgs), so that a
// reader need not count to know what $9 is.
const maxPositionalParams = 5

// TestStatementsTakeFewPositionalParams checks every statement of Queries,
// and InlineJobs, for its highest $n.
func TestStatementsTakeFewPositionalParams(t *testing.T) {
	t.Parallel()
	positional := regexp.MustCompile(`\$(\d+)`)
	statements := map[string]string{"SchemaTables": SchemaTables}
	named := map[string]Named{}
	collectStatements(reflect.ValueOf(*New("s", "rs")), "Queries", statements, named)
	collectStatements(reflect.ValueOf(NewInlineJobs("rs")), "InlineJobs", statements, named)
	if len(named) != 2 {
		t.Fatalf("found %d named statements, want InsertMessages and InsertEnvelope: %v", len(named), named)
	}
	if len(statements) < 40 {
		t.Fatalf("found %d statements; the walk over Queries missed some", len(statements))
	}
	for name, sql := range statements {
		highest := 0
		for _, m := range positional.FindAllStringSubmatch(sql, -1) {
			n, _ := strconv.Atoi(m[1])
			highest = max(highest, n)
		}
		if highest > maxPositionalParams {
			t.Errorf("%s takes $%d: past $%d, name its arguments with pgx.NamedArgs", name, highest, maxPositionalParams)
		}
	}
}

// collectStatements adds the statements of v, a struct of statements (with
// embedded structs and maps of them), under their field names: those whose
// text names their parameters to named, the others to into.
func collectStatements(v reflect.Value, name string, into map[string]string, named map[string]Named) {
	switch {
	case v.Type() == reflect.TypeFor[Named]():
		named[name] = v.Interface().(Named)
	case v.Kind() == reflect.String:
		into[name] = v.String()
	case v.Kind() == reflect.Struct:
		for i := range v.NumField() {
			collectStatements(v.Field(i), v.Type().Field(i).Name, into, named)
		}
	case v.Kind() == reflect.Map:
		iter := v.MapRange()
		for iter.Next() {
			collectStatements(iter.Value(), fmt.Sprintf("%s[%v]", name, iter.Key().Interface()), into, named)
		}
	}
}

// TestNamedStatementsTakeTheirArgsInOrder checks that each Args type lists
// every field at the position its tag's parameter was numbered, so that a
// call that names its values by field passes each to the right $n.
func TestNamedStatementsTakeTheirArgsInOrder(t *testing.T) {
	t.Parallel()
	q := New("s", "rs")
	for _, tc := range []struct {
		statement Named
		args      interface{ Args() []any }
	}{
		{q.InsertMessages, &InsertMessagesArgs{}},
		{q.InsertEnvelope, &InsertEnvelopeArgs{}},
	} {
		fields := reflect.ValueOf(tc.args).Elem()
		// A distinct value in each field: its index, in the field's type.
		for i := range fields.NumField() {
			fields.Field(i).Set(distinct(fields.Field(i).Type(), i))
		}
		got := tc.args.Args()
		if len(got) != len(tc.statement.Names) || len(got) != fields.NumField() {
			t.Fatalf("%T: Args has %d values for %d parameters and %d fields", tc.args, len(got), len(tc.statement.Names), fields.NumField())
		}
		for i := range fields.NumField() {
			field := fields.Type().Field(i)
			at := slices.Index(tc.statement.Names, field.Tag.Get("sql"))
			if at < 0 {
				t.Fatalf("%T.%s: tag %q names no parameter of %v", tc.args, field.Name, field.Tag.Get("sql"), tc.statement.Names)
			}
			if !reflect.DeepEqual(got[at], fields.Field(i).Interface()) {
				t.Errorf("%T: $%d (@%s) gets %v, not %s's value", tc.args, at+1, tc.statement.Names[at], got[at], field.Name)
			}
			if !strings.Contains(tc.statement.SQL, "$"+strconv.Itoa(at+1)) {
				t.Errorf("%T: $%d (@%s) is not in the statement", tc.args, at+1, tc.statement.Names[at])
			}
		}
	}
}

// distinct is a value of type typ that differs from the one made for any
// other i.
func distinct(typ reflect.Type, i int) reflect.Value {
	v := reflect.New(typ).Elem()
	switch typ.Kind() {
	case reflect.String:
		v.SetString(strconv.Itoa(i))
	case reflect.Int, reflect.Int64:
		v.SetInt(int64(i + 1))
	case reflect.Slice:
		v = reflect.MakeSlice(typ, 1, 1)
		v.Index(0).Set(distinct(typ.Elem(), i))
	case reflect.Pointer:
		v = reflect.New(typ.Elem())
		v.Elem().Set(distinct(typ.Elem(), i))
	case reflect.Uint8:
		v.SetUint(uint64(i + 1))
	case reflect.Struct, reflect.Array:
		// pgtype.UUID, uuid.UUID and time.Time: the first byte or field.
		switch val := v.Addr().Interface().(type) {
		case *time.Time:
			*val = time.Unix(int64(i), 0)
		case *uuid.UUID:
			val[0] = byte(i + 1)
		case *pgtype.UUID:
			val.Bytes[0], val.Valid = byte(i+1), true
		}
	}
	return v
}
