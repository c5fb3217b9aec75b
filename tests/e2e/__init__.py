"""End-to-end tests: spawned processes (live `pca serve`, CLI subprocesses, the crash
harness, scale-out, PostgreSQL restarts) and slow interop with openssl and keytool."""
