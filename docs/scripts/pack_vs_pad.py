"""Time a GATr on sets of different sizes: padded (key_padding_mask) vs packed (block-diagonal mask).

    python docs/scripts/pack_vs_pad.py                                  # CPU, 16 and 64 sets of 4..64 items
    python docs/scripts/pack_vs_pad.py --device cuda --sets 16 64 256   # GPU

Prints one row per (algebra, number of sets): items processed, the padded and packed times (median of
``--reps`` runs, forward only or forward + backward) and their ratio. The numbers on the "Your own data"
page come from this script.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from gatr import GATr
from gatr.packing import pack, pad


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn, device, reps: int) -> float:
    """Median seconds of ``fn()`` over ``reps`` runs, after two warm-up runs."""
    for _ in range(2):
        fn()
    times = []
    for _ in range(reps):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _runner(net, inputs: dict, backward: bool):
    def run():
        with torch.set_grad_enabled(backward):
            mv, s = net(**inputs)
            if backward:
                (mv.square().mean() + s.square().mean()).backward()
    return run


def compare(algebra: str, num_sets: int, args, device: torch.device) -> dict:
    """Padded and packed timings of one algebra and number of sets."""
    gen = torch.Generator().manual_seed(0)
    lengths = torch.randint(args.min_items, args.max_items + 1, (num_sets,), generator=gen).tolist()
    net = GATr(algebra, in_mv_channels=1, out_mv_channels=1, hidden_mv_channels=args.width, in_s_channels=1,
               out_s_channels=1, hidden_s_channels=2 * args.width, num_blocks=args.blocks, num_heads=8).to(device)
    dim = net.algebra.dim
    mvs = [torch.randn(n, 1, dim, generator=gen).to(device) for n in lengths]
    scalars = [torch.randn(n, 1, generator=gen).to(device) for n in lengths]
    padded, packed = pad(mvs, scalars), pack(mvs, scalars)
    pad_in = dict(mv=padded.mv, scalars=padded.scalars, key_padding_mask=padded.key_padding_mask)
    pack_in = dict(mv=packed.mv, scalars=packed.scalars, attention_mask=packed.attention_mask,
                   reference_mv=packed.reference_mv)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
        t_pad = _time(_runner(net, pad_in, args.backward), device, args.reps)
        t_pack = _time(_runner(net, pack_in, args.backward), device, args.reps)
    return {"algebra": algebra, "sets": num_sets, "items": sum(lengths), "padded_items": padded.mv.shape[0] *
            padded.mv.shape[1], "pad_ms": 1e3 * t_pad, "pack_ms": 1e3 * t_pack}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--algebras", nargs="+", default=["projective", "conformal"])
    p.add_argument("--sets", nargs="+", type=int, default=[16, 64])
    p.add_argument("--min-items", type=int, default=4)
    p.add_argument("--max-items", type=int, default=64)
    p.add_argument("--width", type=int, default=16, help="hidden multivector channels (scalars: twice)")
    p.add_argument("--blocks", type=int, default=4)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--backward", action="store_true", help="time forward + backward")
    p.add_argument("--bf16", action="store_true", help="under bfloat16 autocast")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    what = ("forward+backward" if args.backward else "forward") + (", bf16 autocast" if args.bf16 else "")
    print(f"# {device}, {what}; sets of {args.min_items}..{args.max_items} items; width {args.width}, "
          f"{args.blocks} blocks, 8 heads")
    print("| algebra | sets | items | padded items | padded [ms] | packed [ms] | packed / padded |")
    print("|---|---|---|---|---|---|---|")
    for algebra in args.algebras:
        for num_sets in args.sets:
            r = compare(algebra, num_sets, args, device)
            print(f"| {r['algebra']} | {r['sets']} | {r['items']} | {r['padded_items']} | {r['pad_ms']:.1f} | "
                  f"{r['pack_ms']:.1f} | {r['pack_ms'] / r['pad_ms']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
