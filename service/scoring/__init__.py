"""Batch scoring: `toyseq-score` (cli), the chunked scorer and its local/remote backends (engine), the
JSONL/CSV row formats (formats) and a small HTTP client for a running service (client)."""
