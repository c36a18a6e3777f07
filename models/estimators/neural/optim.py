"""The optimiser every neural head trains with: Adam with L2 weight decay, and StepLR's schedule."""
from __future__ import annotations

import math

import torch


class Adam:
    """Adam with L2 weight decay, the update of ``torch.optim.Adam`` (amsgrad off), tested equal to it.

    Why not torch.optim: constructing any torch optimizer imports torch._dynamo (measured 1.1-1.4 s on our
    2-core machines), a quarter of the 5-second budget of `mimo fit mimo`. The update runs as torch's fused
    kernel (``torch._fused_adam_``, the one behind ``Adam(fused=True)``: 20x faster than one op at a time on a
    1,879 x 256 layer), or op by op where a torch build lacks it.
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        self.params = [p for p in params if p.requires_grad]
        self.lr, self.betas, self.eps, self.weight_decay = lr, betas, eps, weight_decay
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        self.steps = 0
        self.step_tensors = [torch.zeros((), dtype=torch.float32, device=p.device) for p in self.params]
        self.fused = hasattr(torch, "_fused_adam_") and all(p.dtype == torch.float32 for p in self.params)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        self.steps += 1
        beta1, beta2 = self.betas
        if self.fused:
            live = [i for i, p in enumerate(self.params) if p.grad is not None]
            for i in live:  # the kernel reads the step count; the caller advances it (as torch.optim does)
                self.step_tensors[i] += 1
            try:
                torch._fused_adam_([self.params[i] for i in live], [self.params[i].grad for i in live],
                                   [self.exp_avg[i] for i in live], [self.exp_avg_sq[i] for i in live], [],
                                   [self.step_tensors[i] for i in live], lr=self.lr, beta1=beta1, beta2=beta2,
                                   weight_decay=self.weight_decay, eps=self.eps, amsgrad=False, maximize=False)
                return
            except (RuntimeError, NotImplementedError):  # no fused kernel for this device: op by op from now on
                self.fused = False
        bias1, bias2 = 1 - beta1 ** self.steps, 1 - beta2 ** self.steps
        for p, m, v in zip(self.params, self.exp_avg, self.exp_avg_sq):
            if p.grad is None:
                continue
            grad = p.grad if self.weight_decay == 0 else p.grad.add(p, alpha=self.weight_decay)
            m.lerp_(grad, 1 - beta1)
            v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            denominator = (v.sqrt() / math.sqrt(bias2)).add_(self.eps)
            p.addcdiv_(m, denominator, value=-self.lr / bias1)


def step_lr(base_lr: float, epoch: int, step_size: int, gamma: float) -> float:
    """StepLR: the learning rate of a 1-based epoch."""
    return base_lr * gamma ** ((epoch - 1) // step_size)
