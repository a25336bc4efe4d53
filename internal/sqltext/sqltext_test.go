package sqltext

import (
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"testing"
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
	collectStatements(reflect.ValueOf(*New("s", "rs")), "Queries", statements)
	collectStatements(reflect.ValueOf(NewInlineJobs("rs")), "InlineJobs", statements)
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
// embedded structs and maps of them), under their field names.
func collectStatements(v reflect.Value, name string, into map[string]string) {
	switch v.Kind() {
	case reflect.String:
		into[name] = v.String()
	case reflect.Struct:
		for i := range v.NumField() {
			collectStatements(v.Field(i), v.Type().Field(i).Name, into)
		}
	case reflect.Map:
		iter := v.MapRange()
		for iter.Next() {
			collectStatements(iter.Value(), fmt.Sprintf("%s[%v]", name, iter.Key().Interface()), into)
		}
	}
}
