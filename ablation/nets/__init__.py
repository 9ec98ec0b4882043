"""What a network is: the convolution factory, the shortcut registry and its designs, the residual unit and the network builder.

The built-in designs register here, in one place, whenever any module of the package's networks is imported:
the papers' shortcuts (:mod:`.shortcuts`) and the designs after 2016 (:mod:`.modern`). A plugin's register
when it is loaded (:func:`ablation.nets.registry.load_plugin`, or an entry point of ``ablation.shortcuts``).
"""

# each registers its designs on import, in this order: the order of every listing
from . import shortcuts  # noqa: F401  (the papers')
from . import modern  # noqa: F401  (after 2016)
