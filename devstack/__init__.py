"""The development stack: private Redis and PostgreSQL servers (`servers`) and `make run`
(`runstack`). Used by `make run`, the tests and the benchmarks; the partner's processes
never import it."""
