"""Local dev/test stack: real Kafka, MinIO, PostgreSQL and every service as processes."""
