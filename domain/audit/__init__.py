"""Tamper evidence: the audit chain's maths, its verification and signed checkpoints."""
