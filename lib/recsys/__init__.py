"""Recommenders: similarity joins, engines, candidates."""
