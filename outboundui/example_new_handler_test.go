package outboundui_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"regexp"

	"github.com/cairnloop/outbound"
	"github.com/cairnloop/outbound/outboundui"
)

// requireOperator is a host's authentication: HTTP basic auth, compared in
// constant time. A service with its own sign-in uses its session middleware.
func requireOperator(user, password string, next http.Handler) http.Handler {
	wantUser, wantPass := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(password))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		gotUser, gotPass := sha256.Sum256([]byte(u)), sha256.Sum256([]byte(p))
		if !ok || subtle.ConstantTimeCompare(gotUser[:], wantUser[:])&subtle.ConstantTimeCompare(gotPass[:], wantPass[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="outbound", charset="UTF-8"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// ExampleNewHandler mounts the dashboard under /outbound/ui/ behind the
// host's authentication, and reads its envelopes page.
func ExampleNewHandler() {
	ctx := context.Background()
	client, err := outbound.New(testPool, &outbound.Config{Schema: exampleSchema()})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := client.BulkTrigger(ctx, []int64{101, 102, 103}, &outbound.BulkTriggerOpts{
		TemplateID: "outage", RenderedBody: "We are back up.", Actor: "agent:7",
	}); err != nil {
		log.Fatal(err)
	}

	ui, err := outboundui.NewHandler(&outboundui.HandlerOpts{Client: client, Prefix: "/outbound/ui",
		// Cancels are recorded as the signed-in operator's.
		Actor: func(r *http.Request) string { user, _, _ := r.BasicAuth(); return user },
	})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/outbound/ui/", requireOperator("operator", "s3cret", ui))

	server := httptest.NewServer(mux)
	defer server.Close()
	for _, password := range []string{"wrong", "s3cret"} {
		req, _ := http.NewRequest("GET", server.URL+"/outbound/ui/", nil)
		req.SetBasicAuth("operator", password)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		page := new(bytes.Buffer)
		_, _ = page.ReadFrom(resp.Body)
		resp.Body.Close()
		fmt.Println(resp.Status)
		if m := regexp.MustCompile(`role="img" aria-label="([^"]+)"`).FindStringSubmatch(page.String()); m != nil {
			fmt.Println(m[1])
		}
	}
	// Output:
	// 401 Unauthorized
	// 200 OK
	// 0 sent, 3 pending, 0 in flight, 0 failed, 0 discarded, 0 cancelled, of 3 messages
}
