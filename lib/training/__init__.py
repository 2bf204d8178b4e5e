"""Distributed transfer learning: heads, the EMD loss, the barrier-mode launcher."""
