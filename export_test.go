package outbound

// HoldsDedupKey exposes MessageStatus.holdsDedupKey to the tests, which check
// it against the database's own rule, the messages.holds_dedup_key column.
func HoldsDedupKey(s MessageStatus) bool { return s.holdsDedupKey() }
