"""Memory held by rotary (RoPE) tables: old code (one copy per attention module) vs new (one shared copy).

Each side runs in a fresh process: build sam2.1 tiny (random weights, 1024 px, CPU), run memory attention
once on a 64 x 64 grid (one memory frame and 4 object-pointer tokens), then hand freed memory back (malloc_trim) and report the bytes of the
distinct rotary tables the model's RoPE modules hold and the process's resident memory (VmRSS, VmHWM), also as
growth over the built model's RSS (the two trees may import different amounts of other code).
Sides alternate (old, new, old, new) in one run; ratios are new / old.

    python bench/bench_rope_memory.py --old /tmp/a2_old/src      # old tree from `git archive HEAD src`
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
from typing import Dict

REPO_SRC = pathlib.Path(__file__).resolve().parents[1] / "src"

CHILD = r"""
import ctypes, gc, hashlib, json, torch
import sam2_model
from sam2_model.build import build_model
from sam2_model.modeling.attention import RoPEAttention

def vm(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0

torch.manual_seed(0)
model = build_model("sam2.1_hiera_tiny", checkpoint="random", device="cpu", image_size=1024)
before = vm("VmRSS")
side, pointers = 64, 4
gen = torch.Generator().manual_seed(0)
curr = torch.randn(side * side, 1, 256, generator=gen)
memory = torch.randn(side * side + pointers, 1, 64, generator=gen)
with torch.no_grad():
    out = model.memory_attention(curr, memory, torch.randn_like(curr), torch.randn_like(memory),
                                 num_obj_ptr_tokens=pointers)
del curr, memory
gc.collect()
ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand freed working memory back, so RSS counts what is still held
modules = [m for m in model.modules() if isinstance(m, RoPEAttention)]
tensors = {}
for m in modules:
    held = getattr(m, "_rope_cache", None) or {}
    tables = [t for value in held.values() for t in value if t is not None]
    for value in (getattr(m, "_rope_tables", None) or {}).values():
        tables += [t for t in (value.cos, value.sin, value.unit) if t is not None]
    for t in tables:
        tensors[t.data_ptr()] = t.numel() * t.element_size()
print(json.dumps({"modules": len(modules), "table_bytes": sum(tensors.values()), "rss_before_forward": before,
                  "rss": vm("VmRSS"), "hwm": vm("VmHWM"), "checksum": hashlib.sha1(out.numpy().tobytes()).hexdigest()[:12]}))
"""


def run_side(src: str) -> Dict[str, float]:
    env = dict(os.environ, PYTHONPATH=src)
    done = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old", required=True, help="src folder of the old code (git archive HEAD src)")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    results: Dict[str, list] = {"old": [], "new": []}
    for _ in range(args.rounds):
        results["old"].append(run_side(args.old))
        results["new"].append(run_side(str(REPO_SRC)))
    mib = 1 << 20
    for side in ("old", "new"):
        for r in results[side]:
            print(f"{side}: {r['modules']} RoPE modules, tables {r['table_bytes'] / mib:6.1f} MiB, "
                  f"RSS {r['rss'] / mib:7.1f} MiB (before forward {r['rss_before_forward'] / mib:.1f}, "
                  f"peak {r['hwm'] / mib:.1f}), output sha1 {r['checksum']}")
    old = min(results["old"], key=lambda r: r["rss"])
    new = min(results["new"], key=lambda r: r["rss"])
    same = {r["checksum"] for r in results["old"] + results["new"]}
    print(f"tables: {old['table_bytes'] / mib:.1f} -> {new['table_bytes'] / mib:.1f} MiB "
          f"(new/old {new['table_bytes'] / old['table_bytes']:.3f})")
    grown = {side: min(r["rss"] - r["rss_before_forward"] for r in results[side]) for side in results}
    print(f"RSS after forward (lowest of {args.rounds}): {old['rss'] / mib:.1f} -> {new['rss'] / mib:.1f} MiB "
          f"(new/old {new['rss'] / old['rss']:.3f})")
    print(f"RSS held after the forward, over the built model: {grown['old'] / mib:.1f} -> {grown['new'] / mib:.1f} MiB "
          f"(new/old {grown['new'] / grown['old']:.3f})")
    print(f"outputs identical on both sides: {len(same) == 1}")


if __name__ == "__main__":
    main()
