// Package outboundtype holds the types that every part of outbound shares:
// the message and envelope records with their statuses and outcomes, the
// final-outcome events, the errors and their detail types, the Notifier
// contract with the control errors a Notifier returns, RateLimit, the
// Auditor contract, and the River job args.
//
// It holds data and contracts only, as River's rivertype does, so that the
// library's internal packages can use them without importing package
// outbound, which re-exports every name here by alias: a host uses
// outbound.Message and outbound.Notifier, and never needs this package.
package outboundtype
