package main

import (
	"net"
	"net/http"
	"slices"
	"strings"
	"time"
)

// timeouts are the HTTP server's, each cutting off a client that holds a
// connection without using it: a slow header or body, a slow reader of the
// answer, an idle keep-alive.
type timeouts struct {
	readHeader, read, write, idle time.Duration
}

// defaultTimeouts are the service's. A request's body is a JSON document of
// at most maxBodyBytes, and every answer is a page or a JSON
// document, so seconds are plenty; an idle connection is kept long enough to
// be reused by a client polling the API or a UI.
var defaultTimeouts = timeouts{
	readHeader: 5 * time.Second,
	read:       15 * time.Second,
	write:      30 * time.Second,
	idle:       60 * time.Second,
}

// newServer returns the HTTP server for handler with the given timeouts.
func newServer(handler http.Handler, t timeouts) *http.Server {
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: t.readHeader,
		ReadTimeout:       t.read,
		WriteTimeout:      t.write,
		IdleTimeout:       t.idle,
	}
}

// loopbackHosts are the host names the service answers to by default: a page
// on another site may point a name of its own at 127.0.0.1 (DNS rebinding),
// and its requests then carry that name as their Host, which is refused.
var loopbackHosts = []string{"localhost", "127.0.0.1", "::1"}

// allowedHosts are the Host names the service answers to: those of
// ALLOWED_HOSTS (comma-separated) when it is set, else the loopback names
// and the host of addr when it names one.
func allowedHosts(env, addr string) []string {
	if env != "" {
		var hosts []string
		for _, h := range strings.Split(env, ",") {
			if h = strings.TrimSpace(h); h != "" {
				hosts = append(hosts, strings.ToLower(h))
			}
		}
		return hosts
	}
	hosts := append([]string(nil), loopbackHosts...)
	if host, _, err := net.SplitHostPort(addr); err == nil && host != "" && !slices.Contains(hosts, host) {
		hosts = append(hosts, strings.ToLower(host))
	}
	return hosts
}

// hostAllowList answers 421 Misdirected Request to a request whose Host is
// not one of hosts, whatever its port.
func hostAllowList(hosts []string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
		if !slices.Contains(hosts, host) {
			http.Error(w, "421 misdirected request: this service does not answer to the host "+quoteHost(host)+"; set ALLOWED_HOSTS to the names it is reached by", http.StatusMisdirectedRequest)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// quoteHost quotes a host for an error text, bounded in length.
func quoteHost(host string) string {
	if len(host) > 100 {
		host = host[:100] + "…"
	}
	return `"` + host + `"`
}

// crossOriginProtection refuses a state-changing request (any method but
// GET, HEAD and OPTIONS) that a browser marks as coming from another origin,
// so that a page on another site cannot make a visitor's browser trigger or
// cancel. Clients that are not browsers (curl, a service) send no such marks
// and pass.
func crossOriginProtection(a *api) *http.CrossOriginProtection {
	protection := http.NewCrossOriginProtection()
	protection.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.fail(w, r, &apiError{http.StatusForbidden, "cross_origin", "this request came from another origin, so it was refused"})
	}))
	return protection
}

// actor is who the request is from, for a cancel's actor: the user name of
// its basic auth, which basicAuth checked, or "" without credentials.
func actor(r *http.Request) string {
	user, _, _ := r.BasicAuth()
	return user
}
