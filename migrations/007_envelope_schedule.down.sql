ALTER TABLE bulk_envelopes DROP COLUMN schedule_in;
