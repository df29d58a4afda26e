"""Selector tests run against the real stack."""

from tests.stacks import make_stack

__all__ = ["make_stack"]
