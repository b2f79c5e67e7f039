-- The kWh a reading used in a span of time, pro rata by overlap: what late data records as
-- a reading's kWh in a curve's event (shared/db/consumption.sql). The reading must overlap
-- the span.
--
-- Kept a single IMMUTABLE, non-STRICT SQL expression so that the planner inlines it: it
-- costs what the expression written out in the query costs.
CREATE FUNCTION kwh_in_span(
    kwh double precision,
    start_at timestamptz,
    end_at timestamptz,
    span_start timestamptz,
    span_end timestamptz
) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT kwh * extract(epoch FROM least(end_at, span_end) - greatest(start_at, span_start))
               / extract(epoch FROM end_at - start_at)
$$;
