"""Our webhooks at Spark: management (the CLI), secret rotation, and the check of Spark's
delivery log that recovers what Spark failed to deliver."""
