"""Pieces every service shares: gRPC server factory, errors, logging, settings, metrics."""
