package outboundui

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"net/http"
)

//go:embed static/outboundui.css
var staticFS embed.FS

// stylesheet is the dashboard's one asset.
var stylesheet = mustRead(staticFS, "static/outboundui.css")

func mustRead(fs embed.FS, name string) []byte {
	b, err := fs.ReadFile(name)
	if err != nil {
		panic(err)
	}
	return b
}

// assetVersion is a digest of the stylesheet, put in its link so that a
// browser may cache it for long and still fetch a new one after an upgrade.
func assetVersion() string {
	sum := sha256.Sum256(stylesheet)
	return hex.EncodeToString(sum[:6])
}

// static serves the stylesheet.
func (h *handler) static(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=86400")
	_, _ = w.Write(stylesheet)
}
