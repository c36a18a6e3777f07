"""A faster ESM-2 forward over fair-esm's own modules: fused QKV projection and PyTorch's
scaled_dot_product_attention (flash kernels on CPU and GPU) instead of fair-esm's hand-written attention.

It reads the weights of a loaded fair-esm ``ESM2`` (nothing is copied but the concatenated QKV weight) and is
tested equal to fair-esm's forward at fp32 tolerance. It returns hidden states only (no logits, no contacts).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class FastEsm2(nn.Module):
    """Same maths as ``esm.model.esm2.ESM2.forward`` for representations, in fewer, larger kernels."""

    def __init__(self, net):
        super().__init__()
        self.net = net
        self.num_layers = net.num_layers
        self.embed_dim = net.embed_dim
        self.heads = net.attention_heads
        self.head_dim = net.embed_dim // net.attention_heads
        self.qkv = nn.ModuleList()
        for layer in net.layers:
            attn = layer.self_attn
            fused = nn.Linear(self.embed_dim, 3 * self.embed_dim)
            with torch.no_grad():
                fused.weight.copy_(torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight]))
                fused.bias.copy_(torch.cat([attn.q_proj.bias, attn.k_proj.bias, attn.v_proj.bias]))
            self.qkv.append(fused.to(attn.q_proj.weight.device, attn.q_proj.weight.dtype))
        self.register_buffer("inv_freq", net.layers[0].self_attn.rot_emb.inv_freq.clone(), persistent=False)

    def _rotary(self, length: int, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        t = torch.arange(length, device=device, dtype=torch.float32)
        freqs = torch.outer(t, self.inv_freq.float())
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos().to(dtype), emb.sin().to(dtype)

    @staticmethod
    def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x1, x2 = x.chunk(2, dim=-1)
        return x * cos + torch.cat((-x2, x1), dim=-1) * sin

    def forward(self, tokens: torch.Tensor, layer: int, padded: bool | None = None) -> torch.Tensor:
        """Hidden states (B, T, D) after ``layer`` (0 = embeddings; the last gets the final layer norm).

        ``padded``: whether any token is padding, where the caller knows it (saves a GPU round trip)."""
        net = self.net
        padding = tokens.eq(net.padding_idx)
        x = net.embed_scale * net.embed_tokens(tokens)
        if net.token_dropout:
            masked = tokens == net.mask_idx
            x = x.masked_fill(masked.unsqueeze(-1), 0.0)
            observed = masked.sum(-1).to(x.dtype) / (~padding).sum(-1)
            x = x * (1 - 0.15 * 0.8) / (1 - observed)[:, None, None]
        x = x * (~padding).unsqueeze(-1).to(x.dtype)
        if layer == 0:
            return x
        batch, length, _ = x.shape
        cos, sin = self._rotary(length, x.dtype, x.device)
        # True where attention is allowed; None when nothing is padded (lets SDPA pick its fastest kernel)
        if padded is None:
            padded = bool(padding.any())
        allowed = (~padding)[:, None, None, :] if padded else None
        for index, (block, qkv) in enumerate(zip(net.layers, self.qkv)):
            h = block.self_attn_layer_norm(x)
            q, k, v = qkv(h).view(batch, length, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
            q, k = self._rotate(q, cos, sin), self._rotate(k, cos, sin)
            h = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
            h = block.self_attn.out_proj(h.transpose(1, 2).reshape(batch, length, self.embed_dim))
            x = x + h
            x = x + block.fc2(F.gelu(block.fc1(block.final_layer_norm(x))))
            if index + 1 == layer:
                return net.emb_layer_norm_after(x) if layer == self.num_layers else x
        raise ValueError(f"layer {layer} is out of range 0..{self.num_layers}")
