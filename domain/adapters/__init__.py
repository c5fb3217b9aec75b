"""Infrastructure: the only package that touches sqlite3, psycopg or fcntl."""
