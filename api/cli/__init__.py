"""The `pca` command line face."""
