package main

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestServiceSecurity drives the running service as an attacker's page and a
// stranger would: without credentials, from another origin, by another host
// name.
func TestServiceSecurity(t *testing.T) {
	svc := startService(t, &options{addr: "127.0.0.1:0", creds: testCreds})
	defer func() { require.NoError(t, svc.stop()) }()
	c := &apiClient{t: t, base: svc.base, creds: testCreds}
	anonymous := &apiClient{t: t, base: svc.base}

	t.Run("APINeedsCredentials", func(t *testing.T) {
		c.t, anonymous.t = t, t
		for _, r := range []struct{ method, path string }{
			{"POST", "/conversations/42/outbound"},
			{"POST", "/outbound/bulk"},
			{"GET", "/outbound/envelopes"},
			{"GET", "/outbound/messages"},
			{"POST", "/outbound/messages/01a2420d-5a48-7e8d-9e7b-596a8c448b98/cancel"},
		} {
			anonymous.raw(r.method, r.path, http.StatusUnauthorized)
		}
		c.raw("GET", "/outbound/messages", http.StatusOK)
	})

	// A browser marks a request a page on another site makes; the
	// state-changing routes refuse it, and nothing is written.
	t.Run("CrossOrigin", func(t *testing.T) {
		c.t = t
		for name, header := range map[string]map[string]string{
			"SecFetchSite": {"Sec-Fetch-Site": "cross-site"},
			"Origin":       {"Origin": "https://evil.example"},
		} {
			c.expectError("POST", "/conversations/77/outbound", `{"template_id": "recovery"}`, header, http.StatusForbidden, "cross_origin", "another origin")
			c.expectError("POST", "/outbound/bulk", `{"template_id": "t", "rendered_body": "b", "conversation_ids": [77]}`, header, http.StatusForbidden, "cross_origin", "another origin")
			resp, body := c.send("POST", "/riverui/api/jobs/cancel", `{"ids": [1]}`, header)
			require.Equal(t, http.StatusForbidden, resp.StatusCode, "%s: River's UI: %s", name, body)
		}
		var page struct {
			Messages []*messageJSON `json:"messages"`
		}
		c.do("GET", "/outbound/messages?conversation_id=77", "", nil, http.StatusOK, &struct {
			Messages   *[]*messageJSON `json:"messages"`
			NextCursor any             `json:"next_cursor"`
		}{Messages: &page.Messages})
		require.Empty(t, page.Messages, "nothing was triggered")
		// The same request from the service's own origin, or from a client
		// that is not a browser, goes through.
		c.do("POST", "/conversations/77/outbound", `{"template_id": "recovery"}`, map[string]string{"Sec-Fetch-Site": "same-origin"}, http.StatusCreated, &triggerResponse{})
	})

	// A name pointed at 127.0.0.1 by another site (DNS rebinding) is not a
	// name the service answers to.
	t.Run("HostAllowList", func(t *testing.T) {
		for _, host := range []string{"evil.example", "evil.example:8080", "127.0.0.1.nip.io"} {
			req, err := http.NewRequest("GET", svc.base+"/outbound/ui/", nil)
			require.NoError(t, err)
			req.Host = host
			req.SetBasicAuth(testCreds.username, testCreds.password)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.Equal(t, http.StatusMisdirectedRequest, resp.StatusCode, host)
			require.Contains(t, string(body), "ALLOWED_HOSTS")
		}
		for _, host := range []string{"localhost", "127.0.0.1", "LOCALHOST:1234"} {
			req, err := http.NewRequest("GET", svc.base+"/outbound/messages", nil)
			require.NoError(t, err)
			req.Host = host
			req.SetBasicAuth(testCreds.username, testCreds.password)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode, host)
		}
	})
}

func TestAllowedHosts(t *testing.T) {
	require.Equal(t, []string{"localhost", "127.0.0.1", "::1"}, allowedHosts("", "127.0.0.1:8080"))
	require.Equal(t, []string{"localhost", "127.0.0.1", "::1"}, allowedHosts("", ":8080"))
	require.Equal(t, []string{"localhost", "127.0.0.1", "::1", "10.0.0.5"}, allowedHosts("", "10.0.0.5:8080"))
	require.Equal(t, []string{"outbound.internal", "ops.example.com"}, allowedHosts(" outbound.internal, OPS.example.com ,", ":8080"))
}

// TestServerTimeouts checks that each of the server's timeouts cuts off the
// client it is for. The timeouts are short here; each wait is bounded by the
// server closing the connection, with a generous limit only against a hang.
func TestServerTimeouts(t *testing.T) {
	t.Parallel()
	require.NotZero(t, defaultTimeouts.readHeader)
	require.NotZero(t, defaultTimeouts.read)
	require.NotZero(t, defaultTimeouts.write)
	require.NotZero(t, defaultTimeouts.idle)

	const short = 200 * time.Millisecond
	// start serves handler with only the timeout under test set short, the
	// others long, so that the cut-off is that timeout's. It returns the
	// address and the listener, which tells when the server accepted.
	start := func(t *testing.T, handler http.HandlerFunc, set func(*timeouts)) (string, *acceptClock) {
		long := time.Hour
		tt := timeouts{readHeader: long, read: long, write: long, idle: long}
		set(&tt)
		listener, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		clock := &acceptClock{Listener: listener, accepted: make(chan time.Time, 1)}
		server := newServer(handler, tt)
		go func() { _ = server.Serve(clock) }()
		t.Cleanup(func() { _ = server.Close() })
		return listener.Addr().String(), clock
	}
	ok := func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, "ok")
	}
	dial := func(t *testing.T, addr string) net.Conn {
		conn, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		t.Cleanup(func() { conn.Close() })
		// Only against a hang: the server's timeout ends each wait.
		require.NoError(t, conn.SetDeadline(time.Now().Add(time.Minute)))
		return conn
	}
	// requireClosed reads until the server closes the connection, and
	// returns what it read.
	requireClosed := func(t *testing.T, conn net.Conn) string {
		data, err := io.ReadAll(conn)
		var netErr net.Error
		require.False(t, errors.As(err, &netErr) && netErr.Timeout(), "the server did not close the connection")
		return string(data)
	}

	t.Run("ReadHeaderTimeout", func(t *testing.T) {
		t.Parallel()
		addr, clock := start(t, ok, func(tt *timeouts) { tt.readHeader = short })
		conn := dial(t, addr)
		_, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: localhost\r\n") // and never the blank line
		require.NoError(t, err)
		requireClosed(t, conn)
		// From the server's side: its clock starts when it accepts, which
		// on a busy machine can come before the client's dial returns.
		require.GreaterOrEqual(t, time.Since(<-clock.accepted), short)
	})

	t.Run("ReadTimeout", func(t *testing.T) {
		t.Parallel()
		addr, _ := start(t, ok, func(tt *timeouts) { tt.read = short })
		conn := dial(t, addr)
		// The headers promise a body that never comes.
		_, err := io.WriteString(conn, "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\nab")
		require.NoError(t, err)
		requireClosed(t, conn)
	})

	t.Run("WriteTimeout", func(t *testing.T) {
		t.Parallel()
		// An answer far larger than the sockets' buffers, to a client that
		// does not read it: the server's writes block until the timeout.
		endless := func(w http.ResponseWriter, r *http.Request) {
			chunk := []byte(strings.Repeat("x", 64<<10))
			for {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		}
		addr, _ := start(t, endless, func(tt *timeouts) { tt.write = short })
		conn := dial(t, addr)
		_, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
		require.NoError(t, err)
		// Wait past the timeout without reading, then read: the answer
		// ends, cut off, instead of going on for ever.
		time.Sleep(2 * short)
		requireClosed(t, conn)
	})

	t.Run("IdleTimeout", func(t *testing.T) {
		t.Parallel()
		addr, _ := start(t, ok, func(tt *timeouts) { tt.idle = short })
		conn := dial(t, addr)
		_, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
		require.NoError(t, err)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		// Kept alive, then idle: the server closes it.
		requireClosed(t, conn)
	})
}

// acceptClock is a listener that tells when it accepted its first
// connection, the moment an http.Server's timeouts count from.
type acceptClock struct {
	net.Listener
	accepted chan time.Time
}

// Accept implements net.Listener.
func (l *acceptClock) Accept() (net.Conn, error) {
	conn, err := l.Listener.Accept()
	if err == nil {
		select {
		case l.accepted <- time.Now():
		default:
		}
	}
	return conn, err
}
