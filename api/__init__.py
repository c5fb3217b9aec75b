"""The service's faces: the `pca` command line (and, later, the Flask HTTP API)."""
