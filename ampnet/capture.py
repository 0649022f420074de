"""Write the reamp signal to record your gear with: ``python -m ampnet.capture -o reamp.wav``.

Play the file into the amp or pedal and record what comes back, from the first
sample to the last, at the same rate. See the README's "Recording a capture".
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ampnet.atomic import atomic_output
from ampnet.data.audio import DEFAULT_SAMPLE_RATE, write_audio
from ampnet.data.reamp import REAMP_VERSION, VERSIONS, reamp_signal
from ampnet.errors import AmpnetError, exit_on_user_error


@exit_on_user_error
def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m ampnet.capture", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "-o", "--output", required=True, help="where to write the reamp file (.wav)"
    )
    parser.add_argument(
        "--sr",
        type=int,
        default=DEFAULT_SAMPLE_RATE,
        help=f"sample rate: your session's (default {DEFAULT_SAMPLE_RATE})",
    )
    parser.add_argument("--minutes", type=float, default=3.0, help="length in minutes (default 3)")
    parser.add_argument(
        "--seed", type=int, default=0, help="another seed gives other music, same layout"
    )
    parser.add_argument(
        "--version",
        type=int,
        default=REAMP_VERSION,
        choices=VERSIONS,
        help=f"signal version (default {REAMP_VERSION}; every version stays available)",
    )
    parser.add_argument("--subtype", default="PCM_24", help="soundfile subtype (default PCM_24)")
    args = parser.parse_args(argv)
    if not 8000 <= args.sr <= 384000:
        raise AmpnetError(f"--sr {args.sr}: choose a sample rate between 8000 and 384000 Hz")
    if not 0.5 <= args.minutes <= 30:
        raise AmpnetError(f"--minutes {args.minutes}: choose between 0.5 and 30 minutes")
    audio, info = reamp_signal(args.sr, args.minutes, args.seed, args.version)
    out = Path(args.output)
    write_audio(out, audio, args.sr, subtype=args.subtype)
    sidecar = out.with_suffix(".json")
    with atomic_output(sidecar) as tmp:
        tmp.write_text(json.dumps(info, indent=2) + "\n")
    start, end = info["validation"]
    print(
        f"ampnet: wrote {out} ({info['seconds']:.1f} s at {args.sr} Hz) and {sidecar}\n"
        f"  validation region: {start:.2f} - {end:.2f} s (ampnet.train finds it in the recording "
        "by itself)"
    )


if __name__ == "__main__":
    main()
