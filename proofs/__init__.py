"""Each statement of docs/THEORY.md as a checked certificate with a verdict."""
