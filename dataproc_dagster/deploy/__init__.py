"""Helpers for running the stack beyond one process: a local PostgreSQL for the instance."""
