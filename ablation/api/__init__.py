"""The Python face of the package: :class:`Study`, :func:`load` and :func:`train` (re-exported by ``ablation``).

``python -m ablation.run`` is a command line over the same calls (:mod:`ablation.api.session`), so a study
run from a notebook and from a shell are one code path. The names load on first use, as ``ablation``'s own.
"""
