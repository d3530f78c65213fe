"""Each statement of THEORY.md as a checked certificate with a verdict."""
