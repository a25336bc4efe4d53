package main

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestUIAccess(t *testing.T) {
	for _, tc := range []struct {
		addr  string
		creds credentials
		want  string // "" means allowed
	}{
		{"127.0.0.1:8080", credentials{}, ""},
		{"[::1]:8080", credentials{}, ""},
		{"localhost:8080", credentials{}, ""},
		{"127.0.0.1:0", credentials{}, ""},
		{":8080", credentials{}, "refusing to serve the API, River's UI and the outbound dashboard on :8080 without credentials"},
		{"0.0.0.0:8080", credentials{}, "Set UI_USERNAME and UI_PASSWORD, or listen on a loopback address"},
		{"10.1.2.3:8080", credentials{}, "without credentials"},
		{"example.com:8080", credentials{}, "without credentials"},
		{"[::]:8080", credentials{}, "without credentials"},
		{"0.0.0.0:8080", credentials{username: "ops", password: "s3cret"}, ""},
		{"0.0.0.0:8080", credentials{username: "ops"}, "set both UI_USERNAME and UI_PASSWORD"},
		{"127.0.0.1:8080", credentials{password: "s3cret"}, "set both UI_USERNAME and UI_PASSWORD"},
	} {
		err := checkUIAccess(tc.addr, tc.creds)
		if tc.want == "" {
			require.NoError(t, err, tc.addr)
		} else {
			require.ErrorContains(t, err, tc.want, tc.addr)
		}
	}

	// The service refuses to start, before it touches a database.
	err := run(context.Background(), &options{addr: "0.0.0.0:0"}, slog.New(slog.DiscardHandler), func(string) {
		t.Fatal("the service started")
	})
	require.ErrorContains(t, err, "refusing to serve")
}

func TestBasicAuth(t *testing.T) {
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	guarded := basicAuth(credentials{username: "ops", password: "s3cret"}, next)
	for _, tc := range []struct {
		name       string
		user, pass string
		set        bool
		status     int
	}{
		{"None", "", "", false, http.StatusUnauthorized},
		{"WrongPassword", "ops", "s3cre", true, http.StatusUnauthorized},
		{"WrongUser", "opz", "s3cret", true, http.StatusUnauthorized},
		{"Empty", "", "", true, http.StatusUnauthorized},
		{"Right", "ops", "s3cret", true, http.StatusTeapot},
	} {
		req := httptest.NewRequest("GET", "/riverui/", nil)
		if tc.set {
			req.SetBasicAuth(tc.user, tc.pass)
		}
		rec := httptest.NewRecorder()
		guarded.ServeHTTP(rec, req)
		require.Equal(t, tc.status, rec.Code, tc.name)
		if tc.status == http.StatusUnauthorized {
			require.Equal(t, `Basic realm="outbound", charset="UTF-8"`, rec.Header().Get("WWW-Authenticate"), tc.name)
		}
	}

	// Without credentials (loopback only) the UIs are served as they are.
	rec := httptest.NewRecorder()
	basicAuth(credentials{}, next).ServeHTTP(rec, httptest.NewRequest("GET", "/riverui/", nil))
	require.Equal(t, http.StatusTeapot, rec.Code)
}
