"""Image-encoder time, ours vs Meta's reference, same weights, same CPU, one run.

    python bench/bench_image_encoder.py --model sam2.1_hiera_tiny --image-size 1024 --repeats 3

Prints seconds per image for both and the ratio ours / reference (< 1 means we are faster).
"""

from __future__ import annotations

import argparse

import sam2_model  # noqa: F401,E402 (before torch: OpenMP's wait policy as our users get it, sam2_model/threads.py)
import torch

from _common import best_time, reference_model

from sam2_model import build_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="sam2.1_hiera_tiny")
    parser.add_argument("--image-size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    reference = reference_model(args.model, image_size=args.image_size)
    ours = build_model(args.model, device="cpu", image_size=args.image_size)
    ours.load_state_dict(reference.state_dict(), strict=True)
    image = torch.randn(1, 3, args.image_size, args.image_size)
    with torch.inference_mode():
        ref_s = best_time(lambda: reference.forward_image(image), args.repeats)
        our_s = best_time(lambda: ours.encode_image(image), args.repeats)
        diff = (ours.encode_image(image).image_embed - reference.forward_image(image)["vision_features"]).abs().max()
    print(f"{args.model} @ {args.image_size}px on CPU ({torch.get_num_threads()} threads), best of {args.repeats}")
    print(f"  reference: {ref_s:.3f} s/image")
    print(f"  ours:      {our_s:.3f} s/image")
    print(f"  ratio ours/reference: {our_s / ref_s:.3f}   (max |diff| of vision features {diff:.2e})")


if __name__ == "__main__":
    main()
