"""`python -m simulator --url ... --enrollment TOKEN ...`: the simulator without Django (the
`mdm_simulate` management command can also create the enrollment); `python -m simulator
--make-attestation-ca DIR` writes the test attestation CA an ACME fleet attests with, and
`--make-device-ca DIR` the test device CA a Setup Assistant fleet signs MachineInfo with."""

import argparse
import sys

from .cli import DESCRIPTION, add_arguments, make_attestation_ca, make_device_ca, options_from
from .runner import SimulatorError, print_summary, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulator", description=DESCRIPTION)
    add_arguments(parser)
    values = vars(parser.parse_args(argv))
    try:
        if values.get("make_attestation_ca"):
            print(make_attestation_ca(values["make_attestation_ca"]))
            return 0
        if values.get("make_device_ca"):
            print(make_device_ca(values["make_device_ca"]))
            return 0
        stats = run(options_from(values))
    except SimulatorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print_summary(stats)
    return 1 if stats.failed else 0


if __name__ == "__main__":
    sys.exit(main())
