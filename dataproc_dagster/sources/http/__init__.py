"""HTTP source building blocks: masking, retries, pagination, record conversion, the client."""
