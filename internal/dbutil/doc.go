// Package dbutil holds what the root package and its internal packages share
// about the database: how a value travels to and from a column, how a
// message row is scanned, which statuses the schema's rules name, and which
// errors are worth trying again.
package dbutil
