"""Datasets of the vision pipeline: the LibMTL ``.npy`` layout and the rendered scenes."""
