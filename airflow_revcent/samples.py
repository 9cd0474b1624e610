"""Copy the sample DAGs that come with the package into a DAGs folder.

The wheel carries the repository's ``dags/`` as ``airflow_revcent/sample_dags/`` (data, never imported
from there: Airflow reads DAGs from its DAGs folder). Copy them once, then edit them as your own::

    python -m airflow_revcent.samples "$AIRFLOW_HOME/dags"

A file that exists with other content is left alone unless ``--overwrite`` is given (it may be yours).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from importlib import resources
from pathlib import Path

#: Where the sample DAGs are inside the installed package.
SAMPLES = "sample_dags"


def sample_dags_dir() -> Path:
    """The folder holding the sample DAG files: the installed package's, else the source checkout's ``dags/``.

    An editable install (``pip install -e .``) maps only the package, so there the files are read from
    the checkout they were installed from.

    :return: the folder.
    :raises FileNotFoundError: neither exists (a broken install).
    """
    packaged = Path(str(resources.files("airflow_revcent"))) / SAMPLES
    checkout = Path(__file__).resolve().parent.parent / "dags"
    for folder in (packaged, checkout):
        if any(folder.glob("*.py")):
            return folder
    raise FileNotFoundError(
        f"No sample DAGs in {packaged} or {checkout}: reinstall airflow-provider-revcent from its wheel "
        "or from a clone of its repository"
    )


def copy_sample_dags(target: Path, *, overwrite: bool = False) -> dict[str, list[Path]]:
    """Copy every sample DAG file into ``target`` (created if missing).

    :param target: the DAGs folder, e.g. ``$AIRFLOW_HOME/dags``.
    :param overwrite: replace files that exist with other content (otherwise they are kept and reported).
    :return: the files by outcome: ``copied``, ``unchanged`` (already identical), ``kept`` (differ, not replaced).
    """
    target.mkdir(parents=True, exist_ok=True)
    outcome: dict[str, list[Path]] = {"copied": [], "unchanged": [], "kept": []}
    for source in sorted(sample_dags_dir().glob("*.py")):
        destination = target / source.name
        if destination.exists() and destination.read_bytes() == source.read_bytes():
            outcome["unchanged"].append(destination)
        elif destination.exists() and not overwrite:
            outcome["kept"].append(destination)
        else:
            shutil.copyfile(source, destination)
            outcome["copied"].append(destination)
    return outcome


def main(argv: list[str] | None = None) -> int:
    """``python -m airflow_revcent.samples TARGET [--overwrite]``; exit 1 when a differing file was kept."""
    parser = argparse.ArgumentParser(prog="python -m airflow_revcent.samples", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", type=Path, help="the DAGs folder to copy into, e.g. $AIRFLOW_HOME/dags")
    parser.add_argument("--overwrite", action="store_true", help="replace files that differ from the samples")
    args = parser.parse_args(argv)
    outcome = copy_sample_dags(args.target, overwrite=args.overwrite)
    for state, files in outcome.items():
        for path in files:
            print(f"{state:9} {path}")
    if outcome["kept"]:
        print("Files that differ from the samples were kept; pass --overwrite to replace them.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
