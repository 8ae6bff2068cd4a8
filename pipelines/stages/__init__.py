"""Thin DVC stage entry points; the logic lives in ``lure`` and ``pipelines.flows``."""
