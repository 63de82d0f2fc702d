"""Writing chunks into ClickHouse: table introspection, schema checks, atomic write modes."""
