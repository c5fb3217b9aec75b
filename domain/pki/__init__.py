"""X.509 profile, CRL and OCSP encoding, DER and PEM, download encodings. Pure."""
