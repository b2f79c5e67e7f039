-- The rules of a reading (worker/consumption/readings.py) as constraints of `readings`, next
-- to the two it had (end after start, kWh finite and 0 or more). New readings of a file can
-- then go in by a plain INSERT (insert_incoming_readings): a row that breaks a rule stops it,
-- and the chunk is merged the checked way instead, which names the bad rows. Every stored
-- reading passed these checks on its way in, so adding them only reads the table.
SET LOCAL statement_timeout = 0;
ALTER TABLE readings
    ADD CONSTRAINT readings_resource_id_check
        CHECK (resource_id <> '' AND octet_length(resource_id) <= 200),
    ADD CONSTRAINT readings_location_id_check CHECK (octet_length(location_id) <= 200),
    ADD CONSTRAINT readings_reading_id_check CHECK (octet_length(reading_id) <= 200),
    ADD CONSTRAINT readings_span_check CHECK (end_at - start_at <= interval '31 days');
