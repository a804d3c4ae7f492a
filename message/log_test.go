package message

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"
)

// TestKeysInJSONLogs: keys and ids are logged as their hex, as in text
// logs, not as 32 numbers (journald's JSON is read by people too).
func TestKeysInJSONLogs(t *testing.T) {
	var buf bytes.Buffer
	k := PublicKey{0xab, 0xcd}
	id := ID{0x01}
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "key", k, "id", id)
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatal(err)
	}
	if rec["key"] != k.String() || rec["id"] != id.String() {
		t.Fatalf("logged %s", buf.String())
	}
}
