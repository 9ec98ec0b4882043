"""The Python face of the package: :class:`~ablation.api.study.Study`, :func:`~ablation.api.results.load` and
:func:`~ablation.api.one_run.train`, which ``ablation`` re-exports (loaded on first use, as its other names).

``python -m ablation.run`` is a command line over the same calls (:mod:`ablation.api.pipeline`), so a study
run from a notebook and from a shell are one code path.
"""
