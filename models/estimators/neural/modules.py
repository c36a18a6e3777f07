"""Neural heads over a per-sequence embedding: the avGFP report's base MLP, its convolutional head, and MIMO."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

SPARSE_FRACTION = 1 / 16  # inputs whose densest row has fewer non-zeros than this share of columns go sparse


def sparse_enough(X: np.ndarray, max_fraction: float = SPARSE_FRACTION) -> bool:
    """Whether ``SparseRows.from_numpy`` takes ``X`` (its densest row under ``max_fraction`` of the columns)."""
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] < 64 or _dense_sample(X, max_fraction):
        return False
    return int(np.count_nonzero(X, axis=1).max(initial=0)) <= max_fraction * X.shape[1]


def _dense_sample(X: np.ndarray, max_fraction: float, rows: int = 64) -> bool:
    """Whether one of ``rows`` rows spread over ``X`` is too dense already (dense embeddings: at once, without
    counting every row's non-zeros)."""
    sample = X[np.linspace(0, len(X) - 1, min(rows, len(X))).astype(np.int64)] if len(X) else X
    return int(np.count_nonzero(sample, axis=1).max(initial=0)) > max_fraction * X.shape[1]


class SparseRows:
    """Standardised rows of a mostly-zero matrix (one-hot features) without building them: ``(x - mean) / std``
    is held as ``x / std`` at each row's non-zero columns (``index``, ``value``: (..., K), padded with value 0)
    minus the constant row ``shift = mean / std``. A linear layer of such rows is an embedding-bag sum of K
    weight rows minus ``shift @ weight``: the same numbers as the dense product, at K/D of its cost."""

    def __init__(self, index: torch.Tensor, value: torch.Tensor, shift: torch.Tensor):
        self.index, self.value, self.shift = index, value, shift

    @classmethod
    def from_numpy(cls, X: np.ndarray, mean: np.ndarray, std: np.ndarray,
                   max_fraction: float = SPARSE_FRACTION) -> "SparseRows | None":
        """The sparse form of ``(X - mean) / std``, or None when some row is too dense for it to pay off."""
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] < 64 or _dense_sample(X, max_fraction):
            return None
        rows, cols = np.nonzero(X)  # one pass; the densest row is judged from these
        counts = np.bincount(rows, minlength=len(X))
        if int(counts.max(initial=0)) > max_fraction * X.shape[1]:
            return None
        width = max(int(counts.max(initial=0)), 1)
        slot = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
        index = np.zeros((len(X), width), np.int64)
        value = np.zeros((len(X), width), np.float32)
        index[rows, slot] = cols
        value[rows, slot] = X[rows, cols] / std[cols]
        return cls(torch.from_numpy(index), torch.from_numpy(value), torch.from_numpy(mean / std).float())

    def __len__(self) -> int:
        return self.index.shape[0]

    def __getitem__(self, rows) -> "SparseRows":
        return SparseRows(self.index[rows], self.value[rows], self.shift)

    def to(self, device) -> "SparseRows":
        return SparseRows(self.index.to(device), self.value.to(device), self.shift.to(device))

    def linear(self, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """``rows @ weight + bias`` for ``weight`` (D, H): (..., H)."""
        lead, width = self.index.shape[:-1], self.index.shape[-1]
        out = nn.functional.embedding_bag(self.index.reshape(-1, width), weight, mode="sum",
                                          per_sample_weights=self.value.reshape(-1, width))
        return out.view(*lead, weight.shape[1]) + (bias - self.shift @ weight)

    def member_linear(self, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """Member k's rows (``index`` (M, B, K)) through member k's ``weight[k]`` (M, D, H): (M, B, H)."""
        members, dim, hidden = weight.shape
        offset = (torch.arange(members, device=self.index.device) * dim).view(members, *[1] * (self.index.dim() - 1))
        width = self.index.shape[-1]
        out = nn.functional.embedding_bag((self.index + offset).reshape(-1, width), weight.reshape(-1, hidden),
                                          mode="sum", per_sample_weights=self.value.reshape(-1, width))
        return out.view(*self.index.shape[:-1], hidden) + (bias - torch.einsum("d,mdh->mh", self.shift, weight)
                                                            ).unsqueeze(1)


def sparse_conv1d(x: SparseRows, conv: nn.Conv1d) -> torch.Tensor:
    """``conv`` (one input channel) over the standardised rows ``x`` as a signal, (B, C, L): each non-zero adds
    its value times the kernel at the outputs it reaches (a scatter of B x K x width terms, not a convolution
    over all D inputs), minus the convolution of the constant ``shift`` row (once), plus the bias. The same
    numbers as ``conv(dense.unsqueeze(1))``, zero padding included."""
    (stride,), (padding,), width = conv.stride, conv.padding, conv.kernel_size[0]
    weight = conv.weight[:, 0, :]  # (C, width)
    channels, dim = weight.shape[0], x.shift.shape[0]
    length = (dim + 2 * padding - width) // stride + 1
    rows, nonzeros = x.index.shape
    reach = x.index.unsqueeze(-1) + padding - torch.arange(width, device=x.index.device)  # (B, K, width)
    valid = (reach >= 0) & (reach % stride == 0) & (reach < length * stride)
    target = torch.where(valid, reach // stride, 0).view(rows, 1, nonzeros * width).expand(rows, channels, -1)
    terms = (x.value.unsqueeze(-1) * valid).unsqueeze(1) * weight.view(1, channels, 1, width)  # (B, C, K, width)
    out = torch.zeros(rows, channels, length, dtype=weight.dtype, device=weight.device)
    out = out.scatter_add(2, target, terms.reshape(rows, channels, nonzeros * width))
    constant = nn.functional.conv1d(x.shift.view(1, 1, dim), conv.weight, None, conv.stride, conv.padding)
    bias = 0 if conv.bias is None else conv.bias.view(1, channels, 1)
    return out - constant + bias


def input_major_(linear: nn.Linear) -> nn.Linear:
    """Lay the weight out in memory as (in, out), same values and shape: sparse rows read whole weight rows
    (an embedding bag) and the gradient comes back in that layout, with no transposed copy either way."""
    linear.weight = nn.Parameter(linear.weight.detach().t().contiguous().t())
    return linear


def sequential_after_first(net: nn.Sequential, x: "SparseRows") -> torch.Tensor:
    """``net(x)`` for a Sequential whose first layer is an ``nn.Linear``, with sparse rows."""
    first = net[0]
    h = x.linear(first.weight.t(), first.bias)
    for layer in list(net)[1:]:
        h = layer(h)
    return h


def mlp(sizes: list[int], dropout: float, last_activation: bool) -> nn.Sequential:
    """Linear layers with ReLU (and dropout) between them."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2 or last_activation:
            layers.append(nn.ReLU())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class MlpHead(nn.Module):
    """The avGFP report's base model: linear layers and ReLU over the embedding. (B, D) -> (B, 1)."""

    def __init__(self, in_dim: int, hidden: tuple[int, ...] = (256, 64), dropout: float = 0.1):
        super().__init__()
        self.net = mlp([in_dim, *hidden, 1], dropout, last_activation=False)

    def for_sparse_inputs(self) -> "MlpHead":
        """Lay the first layer out for ``SparseRows`` (dense inputs keep torch's layout, faster for them)."""
        input_major_(self.net[0])
        return self

    def forward(self, x: torch.Tensor | SparseRows) -> torch.Tensor:
        return sequential_after_first(self.net, x) if isinstance(x, SparseRows) else self.net(x)


class ConvHead(nn.Module):
    """The avGFP report's improved model: 1-D convolutions (ReLU, max-pool) over the embedding, then linear layers."""

    def __init__(self, in_dim: int, channels: tuple[int, ...] = (8, 16), kernel_size: int = 9, stride: int = 2,
                 pool: int = 4, hidden: tuple[int, ...] = (64,), dropout: float = 0.1):
        super().__init__()
        convs: list[nn.Module] = []
        width, c_in = in_dim, 1
        for c_out in channels:
            # Strided convolutions keep the head fast on 1,000+ wide embeddings. An input too narrow for the
            # pooling window (a few features) is pooled whole instead of refused.
            width = (width + 2 * (kernel_size // 2) - kernel_size) // stride + 1
            if width < 1:
                raise ValueError(f"embedding width {in_dim} is too small for {len(channels)} convolutions of "
                                 f"width {kernel_size}")
            window = min(pool, width)
            convs += [nn.Conv1d(c_in, c_out, kernel_size, stride=stride, padding=kernel_size // 2), nn.ReLU(),
                      nn.MaxPool1d(window)]
            width, c_in = width // window, c_out
        self.convs = nn.Sequential(*convs)
        self.head = mlp([c_in * width, *hidden, 1], dropout, last_activation=False)

    def forward(self, x: torch.Tensor | SparseRows) -> torch.Tensor:
        if isinstance(x, SparseRows):  # one-hot rows: the first convolution from their non-zeros
            h = sparse_conv1d(x, self.convs[0])
            for layer in list(self.convs)[1:]:
                h = layer(h)
            return self.head(h.flatten(1))
        return self.head(self.convs(x.unsqueeze(1)).flatten(1))


class MonotoneOutput(nn.Module):
    """A learned increasing map of each of ``columns`` scores: an offset plus a positive sum of ``components``
    sigmoids. (B, columns) -> (B, columns); every column has its own parameters."""

    def __init__(self, columns: int = 1, components: int = 3):
        super().__init__()
        self.offset = nn.Parameter(torch.full((columns,), -1.0))
        self.heights = nn.Parameter(torch.full((columns, components), 0.5))
        self.slopes = nn.Parameter(torch.ones(columns, components))
        self.centers = nn.Parameter(torch.linspace(-2.0, 2.0, components).repeat(columns, 1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        steps = torch.sigmoid(nn.functional.softplus(self.slopes) * (z.unsqueeze(-1) - self.centers))
        return self.offset + (nn.functional.softplus(self.heights) * steps).sum(-1)


class GlobalEpistasisHead(nn.Module):
    """Global epistasis (Otwinowski et al. 2018): an additive latent score through a learned monotone
    nonlinearity (``MonotoneOutput``). (B, D) -> (B, 1).

    GFP's brightness has a sharp threshold: additive effects hold in the latent, not in the measurement.
    """

    def __init__(self, in_dim: int, components: int = 3):
        super().__init__()
        self.latent = nn.Linear(in_dim, 1)
        nn.init.normal_(self.latent.weight, std=0.01)
        nn.init.zeros_(self.latent.bias)
        self.output = MonotoneOutput(1, components)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Runs saved before MonotoneOutput existed keep its parameters on the head itself, with one column.
        for name in ("offset", "heights", "slopes", "centers"):
            if prefix + name in state_dict:
                old = state_dict.pop(prefix + name)
                state_dict[prefix + "output." + name] = old.reshape(getattr(self.output, name).shape)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def score(self, x: torch.Tensor | SparseRows) -> torch.Tensor:
        """The additive latent score, (B, 1)."""
        if isinstance(x, SparseRows):
            return x.linear(self.latent.weight.t(), self.latent.bias)
        return self.latent(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.score(x))


class MimoHead(nn.Module):
    """MIMO (Havasi et al. 2020): M members with their own input and output layers and shared middle layers.

    Training input is member-major, (M, B, D): member k reads x[k]. The M input layers' outputs are
    concatenated, pass through the shared layers, and the last shared output is split into M parts, one per
    output layer. Output (B, M). ``forward_shared`` shows one (B, D) input to every member (test time).
    ``output="monotone"`` passes each member's output through its own ``MonotoneOutput`` (bounded, like GFP's
    brightness) instead of leaving it linear.
    """

    def __init__(self, in_dim: int, members: int = 3, input_hidden: int = 32, shared: tuple[int, ...] = (128,),
                 member_hidden: int = 32, dropout: float = 0.1, output: str = "linear", components: int = 3):
        super().__init__()
        if output not in ("linear", "monotone"):
            raise ValueError(f"output must be 'linear' or 'monotone', not {output!r}")
        self.members = members
        self.member_hidden = member_hidden
        # One batched weight tensor for the M input layers: one baddbmm instead of M small matmuls.
        self.in_weight = nn.Parameter(torch.empty(members, in_dim, input_hidden))
        self.in_bias = nn.Parameter(torch.zeros(members, input_hidden))
        bound = in_dim ** -0.5
        nn.init.uniform_(self.in_weight, -bound, bound)
        nn.init.uniform_(self.in_bias, -bound, bound)
        self.dropout = nn.Dropout(dropout)
        self.shared = mlp([members * input_hidden, *shared, members * member_hidden], dropout, last_activation=True)
        self.out_weight = nn.Parameter(torch.empty(members, member_hidden))
        self.out_bias = nn.Parameter(torch.zeros(members))
        nn.init.uniform_(self.out_weight, -member_hidden ** -0.5, member_hidden ** -0.5)
        self.monotone = MonotoneOutput(members, components) if output == "monotone" else None

    def forward(self, x: torch.Tensor | SparseRows) -> torch.Tensor:
        if isinstance(x, SparseRows):
            h = torch.relu(x.member_linear(self.in_weight, self.in_bias))
        else:
            h = torch.relu(torch.baddbmm(self.in_bias.unsqueeze(1), x, self.in_weight))  # (M, B, H)
        return self._tail(h.transpose(0, 1).flatten(1))

    def forward_shared(self, x: torch.Tensor | SparseRows) -> torch.Tensor:
        """Every member sees ``x`` (B, D): one matmul against all M input layers side by side."""
        weight = self.in_weight.permute(1, 0, 2).flatten(1)  # (D, M * H), member-major columns
        if isinstance(x, SparseRows):
            return self._tail(torch.relu(x.linear(weight, self.in_bias.flatten())))
        return self._tail(torch.relu(torch.addmm(self.in_bias.flatten(), x, weight)))

    def _tail(self, h: torch.Tensor) -> torch.Tensor:
        h = self.shared(self.dropout(h)).view(-1, self.members, self.member_hidden)
        z = (h * self.out_weight).sum(-1) + self.out_bias
        return z if self.monotone is None else self.monotone(z)
