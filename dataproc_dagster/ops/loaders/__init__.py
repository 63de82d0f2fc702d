"""Loader factories."""
