"""gradcam: draw a class-activation heatmap over an image for a label, as a PNG."""
from __future__ import annotations

import sys

from vistarank.jobs.common import parser, start


def main(argv: list[str] | None = None) -> int:
    p = parser("gradcam", __doc__.splitlines()[0])
    p.add_argument("--image", required=True, help="an image file")
    p.add_argument("--label", default=None, help="the label to explain (default: the model's top label)")
    p.add_argument("--out", required=True, help="the PNG to write")
    args, cfg = start(p, argv)
    from vistarank.vision import models
    from vistarank.vision.explain import explain_file

    rm = models.resolve(cfg)
    if not models.model_available(rm):
        print(f"error: model {rm.model_version} not found at {rm.path}", file=sys.stderr)
        return 2
    with open(args.image, "rb") as fh:
        data = fh.read()
    try:
        label, prob = explain_file(rm, data, args.label, args.out)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.out}: Grad-CAM for '{label}' (probability {prob:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
