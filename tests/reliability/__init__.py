"""Reliability and security proofs; see docs/reliability.md."""
