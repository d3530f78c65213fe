"""Synthetic studies on the SCM and the vision pipeline."""
