"""Pipeline modules. Each module defines ``pipeline = create_etl_pipeline(...)``; the registry
finds it, and the job and its schedule appear in the code location."""
