"""Weight quantizers: round-to-nearest, a reconstruction-error scale search, and GPTQ.

All return the same canonical form, `QuantizedWeight`: integer codes, one scale per group of
`group_size` input channels (per output row), and optional integer zero points, with

    weight ≈ scale * (codes - zero)          (zero = 0 when symmetric)

Symmetric codes are signed (int4: -8..7, int8: -128..127); asymmetric codes are unsigned
(int4: 0..15, int8: 0..255) with integer zero points in the same range. Every exporter
re-packs these exact codes and scales; none re-quantizes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class QuantizedWeight:
    """Codes [out, in] (int16 holder), scales [out, groups] (fp32), zeros [out, groups] or None."""

    codes: torch.Tensor
    scales: torch.Tensor
    zeros: torch.Tensor | None
    bits: int
    group_size: int  # input channels per scale; equal to `in` for per-channel

    @property
    def nbytes(self) -> int:
        """Bytes as stored: packed codes, fp32 scales, and zero points at the codes' width."""
        codes = self.codes.numel() * self.bits // 8
        zeros = self.zeros.numel() * self.bits // 8 if self.zeros is not None else 0
        return codes + self.scales.numel() * 4 + zeros

    def dequantize(self) -> torch.Tensor:
        """The fp32 weight this plan stands for."""
        expand = self.scales.repeat_interleave(self.group_size, dim=1)
        codes = self.codes.float()
        if self.zeros is not None:
            codes = codes - self.zeros.float().repeat_interleave(self.group_size, dim=1)
        return codes * expand


def code_range(bits: int, symmetric: bool) -> tuple[int, int]:
    """The (min, max) integer code for `bits` bits."""
    if symmetric:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def _groups(weight: torch.Tensor, group_size: int) -> torch.Tensor:
    rows, cols = weight.shape
    if cols % group_size:
        raise ValueError(f"in_features {cols} is not a multiple of group size {group_size}")
    return weight.float().reshape(rows, cols // group_size, group_size)


def _encode(grouped: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor | None,
            lo: int, hi: int) -> torch.Tensor:
    shifted = grouped / scale[..., None]
    if zero is not None:
        shifted = shifted + zero[..., None]
    return torch.clamp(torch.round(shifted), lo, hi)


def _affine_params(grouped: torch.Tensor, ratio: torch.Tensor | float, bits: int,
                   symmetric: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    lo, hi = code_range(bits, symmetric)
    if symmetric:
        peak = grouped.abs().amax(-1) * ratio
        return torch.clamp(peak / (-lo), min=1e-12), None
    top = grouped.amax(-1).clamp(min=0) * ratio
    bottom = grouped.amin(-1).clamp(max=0) * ratio
    scale = torch.clamp((top - bottom) / (hi - lo), min=1e-12)
    zero = torch.clamp(torch.round(-bottom / scale), lo, hi)
    return scale, zero


def quantize_rtn(weight: torch.Tensor, bits: int, group_size: int,
                 symmetric: bool = True) -> QuantizedWeight:
    """Round to nearest with min/max scales per group: the anchors' default."""
    grouped = _groups(weight, group_size)
    scale, zero = _affine_params(grouped, 1.0, bits, symmetric)
    codes = _encode(grouped, scale, zero, *code_range(bits, symmetric))
    return _pack(codes, scale, zero, bits, group_size)


def quantize_search(weight: torch.Tensor, bits: int, group_size: int, symmetric: bool = True,
                    ratios: int = 24, hessian: torch.Tensor | None = None,
                    damp: float = 0.01) -> QuantizedWeight:
    """Per group, pick the clipping ratio whose codes reconstruct the weights best (least
    squares), then refit the scale to those codes: an HQQ-style error-minimising search.

    With the layer's input Hessian H = X^T X (calibration activations), "best" is the
    group's own output error e^T H_g e, H_g its diagonal block (damped by `damp` times its
    mean diagonal), instead of |e|^2: activation-aware, but one clip ratio per group, far
    fewer free choices than GPTQ's cross-column updates (on SmolLM2 it did not overfit the
    built-in corpus where GPTQ did; docs/benchmarks.md). All ratios are tried at once on
    chunks of rows (a few million values at a time)."""
    grouped = _groups(weight, group_size)
    blocks = None if hessian is None else _diagonal_blocks(hessian, group_size, damp)
    lo, hi = code_range(bits, symmetric)
    candidates = torch.linspace(0.5, 1.0, ratios)[:, None, None]
    per_row = ratios * grouped.shape[1] * grouped.shape[2]
    chunk = max(1, _SEARCH_CHUNK // per_row)
    scales, zeros = [], []
    for rows in grouped.split(chunk):
        scale, zero = _affine_params(rows[None], candidates, bits, symmetric)  # [R, r, g]
        codes = _encode(rows[None], scale, zero, lo, hi)
        if symmetric:
            # least-squares scale for these codes: argmin_s |w - s q|^2_H
            weighted = codes if blocks is None else _times(codes, blocks)
            numerator = (rows[None] * weighted).sum(-1)
            denominator = (codes * weighted).sum(-1).clamp(min=1e-12)
            scale = torch.where(numerator > 0, numerator / denominator, scale)
            codes = _encode(rows[None], scale, None, lo, hi)
        error = rows[None] - (codes - (zero[..., None] if zero is not None else 0)
                              ) * scale[..., None]
        loss = error if blocks is None else _times(error, blocks)
        best = (error * loss).sum(-1).argmin(0, keepdim=True)  # first on ties
        scales.append(scale.gather(0, best)[0])
        if zero is not None:
            zeros.append(zero.gather(0, best)[0])
    best_scale = torch.cat(scales)
    best_zero = torch.cat(zeros) if zeros else None
    codes = _encode(grouped, best_scale, best_zero, lo, hi)
    return _pack(codes, best_scale, best_zero, bits, group_size)


def _diagonal_blocks(hessian: torch.Tensor, group_size: int, damp: float) -> torch.Tensor:
    """[groups, g, g]: the Hessian's diagonal blocks, each damped by `damp` x its mean
    diagonal and normalised to mean diagonal 1."""
    groups = hessian.shape[0] // group_size
    h = hessian.float().reshape(groups, group_size, groups, group_size)
    blocks = h[torch.arange(groups), :, torch.arange(groups), :]  # [groups, g, g]
    mean = blocks.diagonal(dim1=1, dim2=2).mean(-1).clamp(min=1e-12)[:, None, None]
    eye = torch.eye(group_size)[None]
    return blocks / mean + damp * eye


def _times(values: torch.Tensor, blocks: torch.Tensor) -> torch.Tensor:
    """values [..., groups, g] times each group's block: [..., groups, g]."""
    return torch.einsum("...gi,gij->...gj", values, blocks)


_SEARCH_CHUNK = 1 << 23  # values per chunk of the ratio search (x ratios), ~32 MB of fp32


def quantize_gptq(weight: torch.Tensor, hessian: torch.Tensor, bits: int, group_size: int,
                  symmetric: bool = True, damp: float = 0.01, block: int = 128
                  ) -> QuantizedWeight:
    """GPTQ: quantize input channels in order, spreading each channel's rounding error onto
    the channels not yet quantized through the inverse Hessian of the layer's inputs
    (H = X^T X over calibration activations).

    Updates are applied lazily per `block` channels (one matrix product per block), as in
    the GPTQ paper. A group's scale is chosen with `quantize_search` on the error-updated
    weights when the group starts, so codes and scales keep the canonical form; with one
    group per row (per-channel) the scale is fitted once on the whole row.
    """
    with _one_thread():
        return _gptq(weight, hessian, bits, group_size, symmetric, damp, block)


@contextmanager
def _one_thread() -> Iterator[None]:
    """GPTQ is thousands of small sequential tensor ops: on one thread they run 10-40x
    faster than with torch's pool synchronising on every op (measured on a busy 2-core host:
    0.64 s vs 24 s for a 576 x 576 layer)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _gptq(weight: torch.Tensor, hessian: torch.Tensor, bits: int, group_size: int,
          symmetric: bool, damp: float, block: int) -> QuantizedWeight:
    w = weight.float().clone()
    rows, cols = w.shape
    h = hessian.double().clone()
    dead = torch.diag(h) == 0
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    h += torch.eye(cols, dtype=h.dtype) * damp * torch.diag(h).mean()
    h_inv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)
    h_inv = h_inv.float()
    lo, hi = code_range(bits, symmetric)
    block = max(block // group_size, 1) * group_size if group_size < cols else block
    codes = torch.zeros_like(w)
    scales = torch.zeros(rows, cols // group_size)
    zeros = torch.zeros(rows, cols // group_size) if not symmetric else None
    if group_size >= cols:
        _set_group(0, quantize_search(w, bits, cols, symmetric), scales, zeros)
    for start in range(0, cols, block):
        stop = min(start + block, cols)
        w_block = w[:, start:stop].clone()
        err_block = torch.zeros_like(w_block)
        h_block = h_inv[start:stop, start:stop]
        for i in range(stop - start):
            col = start + i
            group = col // group_size
            if col % group_size == 0 and group_size < cols:
                fitted = quantize_search(w_block[:, i:i + group_size], bits, group_size,
                                         symmetric)
                _set_group(group, fitted, scales, zeros)
            scale = scales[:, group]
            zero = zeros[:, group] if zeros is not None else 0.0
            q = torch.clamp(torch.round(w_block[:, i] / scale + zero), lo, hi)
            codes[:, col] = q
            err = (w_block[:, i] - (q - zero) * scale) / h_block[i, i]
            w_block[:, i:] -= err[:, None] * h_block[i, i:][None, :]
            err_block[:, i] = err
        w[:, stop:] -= err_block @ h_inv[start:stop, stop:]
    return _pack(codes.reshape(rows, -1, group_size), scales, zeros, bits, group_size)


def _set_group(group: int, fitted: QuantizedWeight, scales: torch.Tensor,
               zeros: torch.Tensor | None) -> None:
    scales[:, group] = fitted.scales[:, 0]
    if zeros is not None and fitted.zeros is not None:
        zeros[:, group] = fitted.zeros[:, 0].float()


def _pack(codes: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor | None, bits: int,
          group_size: int) -> QuantizedWeight:
    rows = codes.shape[0]
    return QuantizedWeight(
        codes=codes.reshape(rows, -1).to(torch.int16),
        scales=scale.float().contiguous(),
        zeros=zero.to(torch.int16).contiguous() if zero is not None else None,
        bits=bits,
        group_size=group_size,
    )
