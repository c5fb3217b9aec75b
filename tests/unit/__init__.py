"""Unit tests: pure code, no database server, no processes, no network; seconds in all."""
