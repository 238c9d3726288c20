"""What operators see: structured JSON logs and Prometheus metrics (keys never included)."""
