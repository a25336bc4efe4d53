// Package outboundui is an operator's dashboard for outbound: an http.Handler
// that a service mounts under a prefix of its choosing, as it mounts River's
// riverui.
//
// Where riverui shows jobs, outboundui shows what a support operator thinks
// in: bulk envelopes newest first, each with its outcome (in progress,
// completed, completed with failures, partly cancelled, cancelled, refused)
// and a bar of its recipients' messages by status (sent, pending, in flight,
// failed, discarded, cancelled); an envelope's messages with their attempts
// and last error; one message; and buttons that cancel what is not yet
// delivered, recorded as the signed-in user's (HandlerOpts.Actor) and shown
// with who cancelled and when. A page shows at most the first 64 KiB of a
// body, and the lists read none.
//
// The pages are rendered on the server with html/template. There is no
// JavaScript, so there is no build step and every page works with JavaScript
// turned off. Cancels are HTML form POSTs, behind Go's
// http.CrossOriginProtection, so that another site cannot make an operator's
// browser cancel anything. Every response carries a Content-Security-Policy
// that allows no script and no foreign origin.
//
// # Mounting
//
//	ui, err := outboundui.NewHandler(&outboundui.HandlerOpts{
//		Client: client,
//		Prefix: "/outbound/ui",
//		// Who cancels: the user requireOperator signed in.
//		Actor: func(r *http.Request) string { user, _, _ := r.BasicAuth(); return user },
//	})
//	if err != nil {
//		return err
//	}
//	mux.Handle("/outbound/ui/", requireOperator(ui))
//
// # Authentication and authorisation
//
// The dashboard reads every message body and can cancel any delivery, so it
// must only be reachable by the people allowed to do that. It does not decide
// who they are: that is the host's middleware, wrapped around the handler as
// above, exactly as with riverui. A minimal one, HTTP basic auth against
// credentials from the environment:
//
//	func requireOperator(next http.Handler) http.Handler {
//		wantUser := sha256.Sum256([]byte(os.Getenv("UI_USERNAME")))
//		wantPass := sha256.Sum256([]byte(os.Getenv("UI_PASSWORD")))
//		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
//			user, pass, ok := r.BasicAuth()
//			gotUser, gotPass := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(pass))
//			// Compared in constant time, hashed so that lengths leak nothing.
//			if !ok || subtle.ConstantTimeCompare(gotUser[:], wantUser[:])&
//				subtle.ConstantTimeCompare(gotPass[:], wantPass[:]) != 1 {
//				w.Header().Set("WWW-Authenticate", `Basic realm="outbound", charset="UTF-8"`)
//				http.Error(w, "unauthorized", http.StatusUnauthorized)
//				return
//			}
//			next.ServeHTTP(w, r)
//		})
//	}
//
// A service with its own sign-in puts its session middleware there instead,
// and can let some operators read but not cancel by refusing POST requests
// for them. The example service (examples/httpservice) mounts the dashboard
// beside riverui, both behind basic auth.
package outboundui
