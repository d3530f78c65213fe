"""Shortcut benchmarks: data sets whose nuisance is tied to a task label in the source only."""
