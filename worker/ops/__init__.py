"""Operations: marks of when things last happened, beat's heartbeat, queue ages, the checks
behind `spark-partner status`, and the Prometheus metrics."""
