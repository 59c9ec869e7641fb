"""Access lines, Prometheus metrics, and the background flushing that keeps both off the request path."""
