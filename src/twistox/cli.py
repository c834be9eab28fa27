"""The ``twistox`` command (installed with the package).

    twistox config [--configfile FILE ...] [--config KEY=VALUE ...] [--check-software]
    twistox plan [--configfile FILE ...] [--config KEY=VALUE ...] [--device cpu|gpu]   (twistox.plan)

prints the configuration a ``snakemake`` run with the same ``--configfile`` / ``--config``
arguments would use -- schema defaults filled in, every check of `twistox.checks` passed -- as
YAML. Exit status 0 when valid; 2 with one message (the key and what is allowed) otherwise.
Config files are deep-merged in the order given; without any, config/config.yaml (the toy) is
used, exactly as the Snakefile does.
"""

from __future__ import annotations

import argparse
import sys

import yaml


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="twistox", description="twistox: twisted oxide membrane workflow tools")
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("config", help="print the effective, validated configuration as YAML")
    c.add_argument("--configfile", "--configfiles", nargs="+", default=[], metavar="FILE",
                   help="config files, merged in order (default: config/config.yaml)")
    c.add_argument("--config", "-C", nargs="+", default=[], metavar="KEY=VALUE",
                   help="overrides, parsed as snakemake --config parses them")
    c.add_argument("--check-software", action="store_true",
                   help="also check that the DFT calculator and its data are installed here")
    c.add_argument("--no-probe", action="store_true", help="do not open the analysis.experiment files")
    pl = sub.add_parser("plan", help="predict memory and wall time per job (CPU/GPU) and suggest a resources: block")
    pl.add_argument("--configfile", "--configfiles", nargs="+", default=[], metavar="FILE",
                    help="config files, merged in order (default: config/config.yaml)")
    pl.add_argument("--config", "-C", nargs="+", default=[], metavar="KEY=VALUE", help="overrides, as snakemake --config")
    pl.add_argument("--fits", default=None, help="scaling fits JSON (default: benchmarks/results/scaling_fits.json)")
    pl.add_argument("--device", choices=["cpu", "gpu"], default="cpu", help="which prediction the resources: block uses")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "plan":
        from twistox.plan import main as plan_main

        return plan_main(args.configfile, args.config, args.fits, args.device)
    from twistox.checks import check_all, load_config
    from twistox.core.config import ConfigError

    try:
        cfg = load_config(args.configfile, args.config)
        check_all(cfg, software=args.check_software, probe_files=not args.no_probe)
    except (ConfigError, ValueError) as exc:
        print(f"twistox: invalid configuration: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(yaml.safe_dump(cfg, sort_keys=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
