"""The HTTP server: API, ingest, live stream, /metrics, the dashboard."""
