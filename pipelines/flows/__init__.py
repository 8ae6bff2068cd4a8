"""Prefect flows of the LURE pipeline (one module per flow)."""
