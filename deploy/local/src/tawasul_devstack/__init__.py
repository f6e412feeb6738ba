"""Local dev/test stack for Tawasul: real Kafka, MinIO, PostgreSQL and every service as processes."""
