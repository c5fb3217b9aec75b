"""Revocation publishing: CRLs and OCSP answers from the revocation index."""
