package outbound_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestNoFloatingComments checks that every top-level comment in the module's
// Go files is the doc comment of a declaration (or of the package): godoc
// drops any other, so a reader of the documentation would never see it.
func TestNoFloatingComments(t *testing.T) {
	t.Parallel()
	var floating []string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") {
			return nil
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
		if err != nil {
			return err
		}
		for _, cg := range floatingComments(f) {
			floating = append(floating, fset.Position(cg.Pos()).String()+": "+strings.SplitN(cg.Text(), "\n", 2)[0])
		}
		return nil
	})
	require.NoError(t, err)
	require.Empty(t, floating, "top-level comments attached to no declaration")
}

// floatingComments returns the comment groups of f that are outside every
// declaration and are neither a declaration's doc nor the package's, nor
// above the package clause (build constraints, licence headers).
func floatingComments(f *ast.File) []*ast.CommentGroup {
	docs := map[*ast.CommentGroup]bool{f.Doc: true}
	for _, decl := range f.Decls {
		switch d := decl.(type) {
		case *ast.FuncDecl:
			docs[d.Doc] = true
		case *ast.GenDecl:
			docs[d.Doc] = true
		}
	}
	var out []*ast.CommentGroup
	for _, cg := range f.Comments {
		if docs[cg] || cg.Pos() < f.Package || insideDecl(f, cg) {
			continue
		}
		out = append(out, cg)
	}
	return out
}

func insideDecl(f *ast.File, cg *ast.CommentGroup) bool {
	for _, decl := range f.Decls {
		if cg.Pos() >= decl.Pos() && cg.End() <= decl.End() {
			return true
		}
	}
	return false
}

// TestSharedTypesAreALeaf checks that package outboundtype imports nothing
// of the library's: it holds the types every other package shares, so any
// of them, internal ones included, can import it.
func TestSharedTypesAreALeaf(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join("outboundtype", "*.go"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, path := range files {
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		require.NoError(t, err)
		for _, imp := range f.Imports {
			require.False(t, strings.HasPrefix(strings.Trim(imp.Path.Value, `"`), "github.com/cairnloop/outbound"),
				"%s imports %s: the shared types must not depend on the rest of the library", path, imp.Path.Value)
		}
	}
}
