"""The shortcut suite (study 9): every method of the library on shortcut benchmarks, with the
ablations and capacity controls that name the ingredient behind a gain.

- ``benchmarks``: what a benchmark provides and the laws of its splits;
- ``scenes``, ``digits``: the rendered-scenes and the real-digits benchmarks;
- ``methods``: the methods, ablations, controls and the calibration row;
- ``runs``: one run (train through ``coremtl.train``, score, probe);
- ``probes``, ``hard_probes``: what each representation holds;
- ``summary``: paired statistics, training-domain selection, attribution;
- ``predictions``: the registered predictions; ``finding``: the verdict; ``plot``: the figures;
- ``study``: the settings and ``STUDY``.
"""
