"""Extractor factories: HTTP, ClickHouse, Metabase."""
