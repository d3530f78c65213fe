"""The ``coremtl`` command line: the top layer, above ``experiments``, ``proofs``, ``coremtl`` and
``scm``; it is the only package that may import all of them."""
