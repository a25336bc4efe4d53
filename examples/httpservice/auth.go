package main

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net"
	"net/http"
)

// credentials are the user name and password that the API, River's UI and
// the outbound dashboard require, from UI_USERNAME and UI_PASSWORD.
type credentials struct {
	username, password string
}

func (c credentials) set() bool { return c.username != "" || c.password != "" }

// checkUIAccess refuses a configuration that would put the API and both UIs,
// which read every message and can cancel any delivery, unauthenticated where
// others can reach them: only a loopback address may go without credentials.
func checkUIAccess(addr string, creds credentials) error {
	if creds.set() && (creds.username == "" || creds.password == "") {
		return fmt.Errorf("set both UI_USERNAME and UI_PASSWORD, or neither (and listen on a loopback address)")
	}
	if creds.set() || isLoopback(addr) {
		return nil
	}
	return fmt.Errorf("refusing to serve the API, River's UI and the outbound dashboard on %s without credentials: "+
		"anyone who can reach it could read every message and cancel deliveries. "+
		"Set UI_USERNAME and UI_PASSWORD, or listen on a loopback address such as ADDR=127.0.0.1:8080", addr)
}

// isLoopback reports whether addr listens on a loopback address only. An
// empty host (":8080") listens on every interface, and a host name other than
// localhost may resolve anywhere, so neither is loopback.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// basicAuth requires creds on every request to next, compared in constant
// time (each side hashed first, so that their lengths leak nothing). With no
// credentials set, which checkUIAccess allows on loopback only, it is next.
func basicAuth(creds credentials, next http.Handler) http.Handler {
	if !creds.set() {
		return next
	}
	wantUser, wantPass := sha256.Sum256([]byte(creds.username)), sha256.Sum256([]byte(creds.password))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		gotUser, gotPass := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(pass))
		if !ok || subtle.ConstantTimeCompare(gotUser[:], wantUser[:])&subtle.ConstantTimeCompare(gotPass[:], wantPass[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="outbound", charset="UTF-8"`)
			http.Error(w, "401 unauthorized: this service needs the user name and password set in UI_USERNAME and UI_PASSWORD", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}
