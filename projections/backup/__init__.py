"""Backup and restore of a whole deployment."""
