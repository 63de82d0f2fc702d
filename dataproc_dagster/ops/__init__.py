"""Op factories and the specs they build."""
