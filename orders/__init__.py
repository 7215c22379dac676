"""Pooled buying rounds: catalogue, commitments, closing, purchase orders and receiving."""
