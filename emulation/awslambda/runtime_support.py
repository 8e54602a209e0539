"""Which runtime a function may be created or updated with, decided as Lambda's control plane does.

AWS retires a runtime in stages (the "Deprecated runtimes" table of the Lambda developer guide,
lambda-runtimes.html): from its block-create date CreateFunction refuses it, from its block-update
date UpdateFunctionConfiguration refuses it too; functions already on it keep running. Both refusals
are ``InvalidParameterValueException`` with the same sentence, naming the newest runtime of the same
language. A value that is no runtime at all is refused with the enum of the runtimes one can still
create with. The runtime identifiers are botocore's ``Runtime`` enum; only the dates are ours.
"""

from __future__ import annotations

import datetime as dt
import re

from emulation.protocol import AwsError, service_model

#: runtime -> (block function create, block function update), UTC dates from AWS's table and its
#: end-of-support notices. Runtimes AWS has retired without separate dates carry the same one twice.
BLOCK_DATES: dict[str, tuple[dt.date, dt.date]] = {
    "nodejs": (dt.date(2016, 10, 31), dt.date(2016, 10, 31)),
    "nodejs4.3": (dt.date(2020, 3, 5), dt.date(2020, 3, 5)),
    "nodejs4.3-edge": (dt.date(2019, 4, 30), dt.date(2019, 4, 30)),
    "nodejs6.10": (dt.date(2019, 8, 12), dt.date(2019, 8, 12)),
    "nodejs8.10": (dt.date(2020, 3, 6), dt.date(2020, 3, 6)),
    "nodejs10.x": (dt.date(2021, 7, 30), dt.date(2022, 2, 14)),
    "nodejs12.x": (dt.date(2023, 3, 31), dt.date(2023, 4, 30)),
    "nodejs14.x": (dt.date(2024, 1, 9), dt.date(2024, 2, 8)),
    "nodejs16.x": (dt.date(2027, 2, 1), dt.date(2027, 3, 3)),
    "nodejs18.x": (dt.date(2027, 2, 1), dt.date(2027, 3, 3)),
    "nodejs20.x": (dt.date(2027, 2, 1), dt.date(2027, 3, 3)),
    "python2.7": (dt.date(2021, 7, 15), dt.date(2022, 5, 30)),
    "python3.6": (dt.date(2022, 7, 18), dt.date(2022, 8, 17)),
    "python3.7": (dt.date(2024, 1, 9), dt.date(2024, 2, 8)),
    "python3.8": (dt.date(2027, 2, 1), dt.date(2027, 3, 3)),
    "python3.9": (dt.date(2027, 2, 1), dt.date(2027, 3, 3)),
    "java8": (dt.date(2024, 2, 8), dt.date(2024, 3, 12)),
    "dotnetcore1.0": (dt.date(2019, 7, 30), dt.date(2019, 7, 30)),
    "dotnetcore2.0": (dt.date(2019, 5, 30), dt.date(2019, 5, 30)),
    "dotnetcore2.1": (dt.date(2022, 1, 5), dt.date(2022, 4, 13)),
    "dotnetcore3.1": (dt.date(2023, 4, 3), dt.date(2023, 5, 3)),
    "go1.x": (dt.date(2024, 2, 8), dt.date(2024, 3, 12)),
    "ruby2.5": (dt.date(2021, 7, 30), dt.date(2022, 3, 31)),
    "ruby2.7": (dt.date(2024, 1, 9), dt.date(2024, 2, 8)),
    "provided": (dt.date(2024, 2, 8), dt.date(2024, 3, 12)),
}

#: Where a retired runtime's users are sent when its language family is named differently.
_FAMILY = {"dotnetcore": "dotnet", "go": "provided"}


def all_runtimes() -> list[str]:
    """Every runtime identifier Lambda's API knows, in botocore's order."""
    return list(service_model("lambda").shape_for("Runtime").enum)


def check(runtime: str, *, creating: bool, today: dt.date | None = None) -> None:
    """Raise the error AWS answers when ``runtime`` may not be used to create (or update) a function."""
    today = today or dt.datetime.now(dt.timezone.utc).date()
    if runtime not in all_runtimes():
        raise AwsError(
            "InvalidParameterValueException",
            f"Value {runtime} at 'runtime' failed to satisfy constraint: Member must satisfy enum value set: "
            f"[{', '.join(_creatable(today))}] or be a valid ARN",
        )
    if _blocked(runtime, today, creating=creating):
        raise AwsError(
            "InvalidParameterValueException",
            f"The runtime parameter of {runtime} is no longer supported for creating or updating AWS Lambda "
            f"functions. We recommend you use the new runtime ({_newest_of_family(runtime, today)}) while "
            "creating or updating functions.",
        )


def _blocked(runtime: str, today: dt.date, *, creating: bool) -> bool:
    dates = BLOCK_DATES.get(runtime)
    return dates is not None and today >= dates[0 if creating else 1]


def _creatable(today: dt.date) -> list[str]:
    return [runtime for runtime in all_runtimes() if not _blocked(runtime, today, creating=True)]


def _family(runtime: str) -> str:
    prefix = re.match(r"[a-z]+", runtime).group()
    return _FAMILY.get(prefix, prefix)


def _version(runtime: str) -> tuple[int, ...]:
    """``python3.14`` -> (3, 14), ``provided.al2023`` -> (2023,): comparable within a family."""
    return tuple(int(number) for number in re.findall(r"\d+", runtime))


def _newest_of_family(runtime: str, today: dt.date) -> str:
    family = [other for other in _creatable(today) if _family(other) == _family(runtime)]
    return max(family, key=_version) if family else runtime
