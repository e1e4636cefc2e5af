"""Weight quantizers: round-to-nearest, a reconstruction-error scale search, and GPTQ.

All return the same canonical form, `QuantizedWeight`: integer codes, one scale per group of
`group_size` input channels (per output row), and optional integer zero points, with

    weight ≈ scale * (codes - zero)          (zero = 0 when symmetric)

Symmetric codes are signed (int4: -8..7, int8: -128..127); asymmetric codes are unsigned
(int4: 0..15, int8: 0..255) with integer zero points in the same range. Every exporter
re-packs these exact codes and scales; none re-quantizes.
"""

from __future__ import annotations

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
                    ratios: int = 24) -> QuantizedWeight:
    """Per group, pick the clipping ratio whose codes reconstruct the weights best (least
    squares), then refit the scale to those codes: an HQQ-style error-minimising search."""
    grouped = _groups(weight, group_size)
    lo, hi = code_range(bits, symmetric)
    best_err = torch.full(grouped.shape[:2], float("inf"))
    best_scale = torch.zeros(grouped.shape[:2])
    best_zero = torch.zeros(grouped.shape[:2]) if not symmetric else None
    for ratio in torch.linspace(0.5, 1.0, ratios):
        scale, zero = _affine_params(grouped, float(ratio), bits, symmetric)
        codes = _encode(grouped, scale, zero, lo, hi)
        if symmetric:
            # least-squares scale for these codes: argmin_s |w - s q|^2
            numerator = (grouped * codes).sum(-1)
            denominator = (codes * codes).sum(-1).clamp(min=1e-12)
            scale = torch.where(numerator > 0, numerator / denominator, scale)
            codes = _encode(grouped, scale, None, lo, hi)
        recon = (codes - (zero[..., None] if zero is not None else 0)) * scale[..., None]
        err = ((grouped - recon) ** 2).sum(-1)
        better = err < best_err
        best_err = torch.where(better, err, best_err)
        best_scale = torch.where(better, scale, best_scale)
        if best_zero is not None and zero is not None:
            best_zero = torch.where(better, zero, best_zero)
    codes = _encode(grouped, best_scale, best_zero, lo, hi)
    return _pack(codes, best_scale, best_zero, bits, group_size)


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
