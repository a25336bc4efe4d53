DROP TABLE audit_events;
DROP TABLE messages;
DROP TABLE bulk_envelopes;
