"""A branch-scaling design written outside the package, with the same hooks as ablation.modern's.

``y = h(x) + tanh(a_l) F(x)``, ``a_l`` learnable and 0 at init (a bounded ReZero), whose last branch
convolution also starts at ``c / l`` of its init, ``l`` the unit's index: it reads the unit's index
through ``init_unit`` and zeroes the classifier's bias through ``init_net``.
"""

import torch

from ablation import register_shortcut
from ablation.nets.modern import BranchScale, convs


@register_shortcut("tanh-rezero", formula="y = h(x) + tanh(a) F(x), a init 0", paper="(test plugin)")
class TanhReZero(BranchScale):
    def __init__(self, in_channels, out_channels, stride=1, match="zero-pad", c: float = 1.0):
        super().__init__(in_channels, out_channels, stride, match)
        self.set_multiplier(0.0)
        self.c = float(c)
        self.seen_index = None

    def branch_term(self, fx):
        return torch.tanh(self.lam) * fx

    def init_unit(self, unit) -> None:
        self.seen_index = (unit.index, unit.num_units)
        with torch.no_grad():
            convs(unit.residual)[-1].weight.mul_(self.c / unit.index)

    @classmethod
    def init_net(cls, net) -> None:
        torch.nn.init.zeros_(net.fc.bias)
