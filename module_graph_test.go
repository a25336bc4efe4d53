package outbound_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestUserModuleGraph builds, as a user would, a program in a module of its
// own that requires the library and uses outbound and outboundtest, and
// checks that its module graph holds none of what only the examples and the
// browser test need: those live in the examples module, so a user's go.sum
// and `go list -m all` never see them.
func TestUserModuleGraph(t *testing.T) {
	t.Parallel()
	repo, err := filepath.Abs(".")
	require.NoError(t, err)
	dir := t.TempDir()
	write := func(name, text string) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600))
	}
	write("go.mod", "module example.com/host\n\ngo 1.26.0\n\n"+
		"require github.com/cairnloop/outbound v0.0.0\n\n"+
		"replace github.com/cairnloop/outbound => "+repo+"\n")
	write("main.go", `package main

import (
	"fmt"

	"github.com/cairnloop/outbound"
	"github.com/cairnloop/outbound/outboundtest"
)

func main() {
	fmt.Println(outbound.DefaultMaxBatchSize, outboundtest.Expected{})
}
`)
	goCmd := func(args ...string) string {
		cmd := exec.Command("go", args...)
		cmd.Dir = dir
		// The host's module alone, not this repository's workspace.
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "go %s:\n%s", strings.Join(args, " "), out)
		return string(out)
	}
	goCmd("mod", "tidy")
	goCmd("build", "-o", os.DevNull, ".")
	modules := goCmd("list", "-m", "all")

	require.Contains(t, modules, "github.com/riverqueue/river ", "the graph is the library's")
	for _, examplesOnly := range []string{"chromedp", "prometheus", "riverui"} {
		require.NotContains(t, modules, examplesOnly, "a user's module graph lists a dependency only the examples use")
	}
}
