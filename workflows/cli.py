"""``sagelocal``: run the SageMaker workflows locally or on AWS, start the emulator, run the demo."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import time
from pathlib import Path

from workflows import plan as plans
from workflows import registry
from workflows.cleanup import LeftBehind
from workflows.target import (
    ENDPOINT_ENV,
    TARGET_ENV,
    TARGETS,
    TargetError,
    TargetSettings,
    open_target,
    quiet_sdk,
)

DEFAULT_OUTPUT = Path("sagelocal-output")

DESCRIPTION = """\
Run Amazon SageMaker workflows end to end on this machine -- train, tune, batch transform,
deploy an endpoint, a public API in front of it -- with no Docker and no AWS account, then run
the very same code on AWS with --target aws.

workflows: {workflows}
"""

EPILOG = """\
examples:
  sagelocal demo                              every workflow on the embedded emulator, with a summary
  sagelocal up                                emulator + sentiment app + web page (http://127.0.0.1:8080/)
  sagelocal run boston-high-level             one workflow, local (the default target)
  sagelocal run boston-low-level --target aws --region eu-west-1 --role-arn arn:aws:iam::123:role/SageMakerRole
  sagelocal run imdb-web-app --target aws --plan   what it would create on AWS, creating nothing
  sagelocal exec -- python train.py           any program, unchanged, against a fresh emulator
  sagelocal emulator --port 4566              the emulator alone; point any boto3 code at it with
                                              AWS_ENDPOINT_URL=http://127.0.0.1:4566 (keys test/test)
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sagelocal",
        description=DESCRIPTION.format(workflows=", ".join(registry.WORKFLOWS)),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="run one workflow",
        description="Run one workflow. Resources it creates are removed at the end, also on failure or Ctrl-C.",
    )
    run.add_argument(
        "workflow", choices=list(registry.WORKFLOWS), metavar="WORKFLOW", help=", ".join(registry.WORKFLOWS)
    )
    run.add_argument(
        "--target",
        choices=TARGETS,
        default=None,
        help=f"local (default): the embedded emulator; aws: real AWS. Same as ${TARGET_ENV}.",
    )
    run.add_argument("--region", help="AWS region (default: AWS_REGION; required for --target aws)")
    run.add_argument("--role-arn", help="execution role ARN (default: $SAGELOCAL_ROLE_ARN; required for aws)")
    run.add_argument("--bucket", help="S3 bucket for data and models (default: sagemaker-<region>-<account>)")
    run.add_argument(
        "--output", type=Path, default=DEFAULT_OUTPUT, help="where plots and data go (default: %(default)s)"
    )
    run.add_argument(
        "--instance-type",
        help=f"SageMaker instance type for training, transform and endpoints (default: {plans.DEFAULT_INSTANCE_TYPE}; "
        "same as $SAGELOCAL_INSTANCE_TYPE)",
    )
    run.add_argument(
        "--keep",
        action="store_true",
        help="do not remove the created resources at the end (on AWS an endpoint bills until you delete it)",
    )
    run.add_argument("--plan", action="store_true", help="print what the run would create, create nothing")

    up = commands.add_parser(
        "up",
        help="emulator + deployed sentiment app + web page, until Ctrl-C",
        description="Start the emulator, deploy workflow 2a (IMDB sentiment: endpoint, Lambda, REST API) on it "
        "and serve the web page on its own port; everything keeps running until Ctrl-C. Reviews come from "
        "the shipped sample unless $SAGELOCAL_IMDB names the full data set (directory or .tar.gz).",
    )
    up.add_argument("--host", default="127.0.0.1", help="address for both servers (default: %(default)s)")
    up.add_argument("--port", type=int, default=4566, help="emulator port (default: %(default)s)")
    up.add_argument("--web-port", type=int, default=8080, help="web page port (default: %(default)s)")
    up.add_argument(
        "--output", type=Path, default=DEFAULT_OUTPUT, help="where data goes (default: %(default)s)"
    )

    web = commands.add_parser(
        "web", help="serve only the web page", description="Serve web/ with config.json naming the API."
    )
    web.add_argument(
        "--api-url",
        default=os.environ.get("SAGELOCAL_API_URL", ""),
        help="the public API URL (default: $SAGELOCAL_API_URL)",
    )
    web.add_argument("--host", default="127.0.0.1", help="address (default: %(default)s)")
    web.add_argument("--port", type=int, default=8080, help="port (default: %(default)s)")

    demo = commands.add_parser(
        "demo",
        help="run every workflow locally and print a summary",
        description="Run every workflow on one embedded emulator.",
    )
    demo.add_argument(
        "--output", type=Path, default=DEFAULT_OUTPUT, help="where plots go (default: %(default)s)"
    )

    execute = commands.add_parser(
        "exec",
        help="run any command (script, pytest, jupyter execute, papermill) against the emulator",
        description="Run a command, unchanged, against an emulator started for it (or attached with --endpoint / "
        f"${ENDPOINT_ENV}). The command gets AWS_ENDPOINT_URL, keys test/test and the region; a SageMaker SDK "
        "config (SAGEMAKER_ADMIN_CONFIG_OVERRIDE: default bucket, telemetry off, the local role); and, in every "
        "Python interpreter it starts, get_execution_role() answering the local role and the SDK's 5-30 s poll "
        "sleeps shortened. With --target aws the command runs with the environment untouched.",
        epilog="example: sagelocal exec -- jupyter execute notebook.ipynb",
    )
    execute.add_argument(
        "--target",
        choices=TARGETS,
        default=None,
        help=f"local (default): the emulator; aws: real AWS, environment untouched. Same as ${TARGET_ENV}.",
    )
    execute.add_argument(
        "--endpoint",
        help=f"attach to a running emulator at this URL (default: ${ENDPOINT_ENV}; else start one)",
    )
    execute.add_argument(
        "--port", type=int, default=0, help="port for the started emulator (default: a free one)"
    )
    execute.add_argument(
        "--real-sleeps", action="store_true", help="keep the SageMaker SDK's poll sleeps at their real length"
    )
    execute.add_argument(
        "program", nargs=argparse.REMAINDER, metavar="-- COMMAND ...", help="the command to run, after --"
    )

    emulator = commands.add_parser(
        "emulator",
        help="run the emulator in the foreground",
        description="Serve S3, IAM, STS, CloudWatch Logs, SageMaker (jobs, endpoints, runtime), Lambda and API "
        "Gateway on one port, speaking the AWS wire protocols. Credentials: test / test, account 000000000000.",
    )
    emulator.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: %(default)s; 0.0.0.0 in containers)",
    )
    emulator.add_argument("--port", type=int, default=4566, help="port (default: %(default)s, LocalStack's)")
    emulator.add_argument(
        "--data-dir",
        type=Path,
        default=os.environ.get("SAGELOCAL_DATA_DIR") or None,
        help="keep everything you create here across restarts (default: $SAGELOCAL_DATA_DIR; "
        "neither given: a temporary directory, and the emulator starts empty each time)",
    )
    emulator.add_argument(
        "--runner",
        choices=("process", "docker", "auto"),
        default=os.environ.get("SAGELOCAL_RUNNER") or "process",
        help="what runs jobs and endpoints: process (default; no Docker needed), docker (the job's own "
        "image, e.g. from `sagelocal build-image`), auto (docker when a daemon answers); $SAGELOCAL_RUNNER",
    )

    build_image = commands.add_parser(
        "build-image",
        help="build Docker stand-ins for SageMaker's XGBoost images (for --runner docker)",
        description="Build images that follow the SageMaker container contract from this project's XGBoost "
        "container code, on each version's own XGBoost, tagged with the real ECR name (e.g. "
        "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1) so that requests naming "
        "the real image run it. Images already built from this checkout's code are kept unless --force.",
    )
    build_image.add_argument(
        "images", nargs="+", metavar="xgboost:VERSION", help="e.g. xgboost:1.7-1 xgboost:3.0-5"
    )
    build_image.add_argument(
        "--base",
        default=None,
        help="base image (default: debian:bookworm-slim; with --debootstrap-base, one made locally)",
    )
    build_image.add_argument(
        "--debootstrap-base",
        action="store_true",
        help="make the base from Debian's archive with debootstrap + docker import (no registry needed; root)",
    )
    build_image.add_argument("--force", action="store_true", help="rebuild images that already exist")
    return parser


def run_workflow(name: str, settings: TargetSettings, output: Path) -> tuple[registry.WorkflowResult, float]:
    module = registry.load(name)
    started = time.perf_counter()
    items = module.plan(settings.instance_type or plans.DEFAULT_INSTANCE_TYPE)
    with open_target(settings, plan=items) as target:
        print(f"== {name}: {module.SUMMARY} (target {target.name})")
        result = module.run(target, output / name)
    return result, time.perf_counter() - started


def _print_result(result: registry.WorkflowResult, seconds: float) -> None:
    figures = ", ".join(f"{k} {v:.4g}" for k, v in result.metrics.items())
    print(f"== {result.workflow} done in {seconds:.1f} s: {figures}")
    for plot in result.plots:
        print(f"   plot: {plot}")


def _demo(output: Path) -> int:
    from emulation import Emulator, EmulatorConfig

    rows = []
    with Emulator(EmulatorConfig(port=0)) as emulator:
        settings = TargetSettings(name="local", endpoint_url=emulator.url)
        print(f"sagelocal emulator at {emulator.url}")
        for name in registry.WORKFLOWS:
            try:
                result, seconds = run_workflow(name, settings, output)
            except Exception as error:  # the summary says which workflow failed and why
                print(f"== {name} FAILED: {error}", file=sys.stderr)
                rows.append((name, f"FAILED: {error}"[:60], "-", "-"))
                continue
            _print_result(result, seconds)
            metric = next(iter(result.metrics.items()))
            rows.append(
                (
                    name,
                    f"{metric[0]} {metric[1]:.3f}",
                    f"{seconds:.1f} s",
                    str(result.plots[0]) if result.plots else "-",
                )
            )
    headers = ("workflow", "metric", "wall time", "plot")
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(4)]
    print()
    for row in [headers, tuple("-" * w for w in widths), *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))
    return 1 if any(r[1].startswith("FAILED") for r in rows) else 0


def _build_images(args) -> int:
    from emulation.containers import build, runtimes

    versions = []
    for name in args.images:
        algorithm, _, version = name.partition(":")
        if algorithm != "xgboost" or version not in runtimes.RUNTIMES:
            print(
                f"unknown image {name!r}: known are xgboost:{', xgboost:'.join(runtimes.RUNTIMES)}",
                file=sys.stderr,
            )
            return 2
        versions.append(version)
    base = args.base or build.DEFAULT_BASE
    if args.debootstrap_base:
        base = args.base or build.DEBOOTSTRAP_BASE
        if not build.image_present(base):
            build.build_debootstrap_base(base)
    for version in versions:
        uri = build.xgboost_image_uri(version)
        if build.xgboost_image_current(version, base) and not args.force:
            print(f"{uri}: present and current (--force rebuilds it)")
            continue
        started = time.perf_counter()
        build.build_xgboost_image(version, base=base)
        print(f"{uri}: built in {time.perf_counter() - started:.0f} s")
    return 0


def _plan(name: str, settings: TargetSettings) -> int:
    """What the run would create; on AWS also the price per hour and the quotas it needs, read
    from the account where credentials allow (read-only calls: nothing is created)."""
    module = registry.load(name)
    instance_type = settings.instance_type or plans.DEFAULT_INSTANCE_TYPE
    items = module.plan(instance_type)
    aws = settings.name == "aws"
    where = f"AWS ({settings.region or 'region not set'})" if aws else "the local emulator"
    print(
        f"{name} on {where} would create (and remove at the end{', unless --keep' if settings.keep else ''}):"
    )
    session, why_not = _plan_session(settings) if aws else (None, None)
    prices: dict[str, float] = {}
    if session is not None:
        try:
            prices = plans.hourly_prices(session, settings.region, instance_type)
        except Exception as error:  # the plan still prints without prices
            why_not = f"the Price List API did not answer ({type(error).__name__}: {error})"
    for item in items:
        cost = ""
        if aws and item.usage:
            price = prices.get(item.usage)
            cost = (
                f"  ~${price * item.instances:.3f}/hour while it runs"
                if price is not None
                else "  billed per instance-hour (price: https://aws.amazon.com/sagemaker/pricing/)"
            )
        print(f"  - {item.kind}: {item.detail}{cost}")
    print(
        f"  - S3 objects: the data it uploads and what its jobs write (in {settings.bucket or 'the default bucket'})"
    )
    print("  - CloudWatch Logs: its jobs' log streams, its endpoint's and function's log groups")
    needs = plans.needed_quotas(items)
    if aws and needs:
        print("SageMaker quotas it needs (Service Quotas, per account and region):")
        values: dict[str, float] = {}
        if session is not None:
            try:
                values = plans.sagemaker_quotas(session, set(needs))
            except plans.QuotaUnavailable as error:
                why_not = f"Service Quotas did not answer ({error})"
        for quota, count in sorted(needs.items()):
            have = f" (this account: {values[quota]:g})" if quota in values else ""
            print(f"  - {quota} >= {count}{have}")
        problems = plans.quota_problems(needs, values) if values else []
        for problem in problems:
            print(f"  ! {problem}: request an increase at {plans.QUOTA_INCREASE_URL}")
    if why_not:
        print(f"(prices and quotas not read: {why_not})")
    print("nothing was created.")
    return 0


def _plan_session(settings: TargetSettings):
    """A session for the plan's read-only look-ups, or (None, why not)."""
    import boto3

    if not settings.region:
        return None, "no region"
    session = boto3.Session(region_name=settings.region)
    if session.get_credentials() is None:
        return None, "no AWS credentials"
    return session, None


def _up(args) -> int:
    from emulation import Emulator, EmulatorConfig
    from workflows import imdb_web_app
    from workflows.webpage import PageServer

    with Emulator(EmulatorConfig(host=args.host, port=args.port)) as emulator:
        settings = TargetSettings(name="local", endpoint_url=emulator.url, keep=True)
        with open_target(settings) as target:
            app, _, accuracy = imdb_web_app.deploy(target, args.output / imdb_web_app.NAME)
        with PageServer(app.api_url, host=args.host, port=args.web_port) as page:
            print(f"\nsentiment app is up (test accuracy {accuracy:.3f}):")
            print(f"  web page     {page.url}")
            print(f"  public API   {app.api_url}   (POST the review text)")
            print(f"  emulator     {emulator.url}   (AWS_ENDPOINT_URL; keys test/test)")
            print("Ctrl-C to stop.", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                threading.Event().wait()
    return 0


def warn_if_exposed(host: str) -> None:
    """Listening beyond loopback makes the emulator reachable from the network, with public keys."""
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"WARNING: listening on {host or 'all interfaces'}: anyone who can reach this port can call the "
            "emulator with its well-known keys (test / test) and run code through Lambda and SageMaker. "
            "Use --host 127.0.0.1 unless you mean it (in a container, publish the port on 127.0.0.1).",
            file=sys.stderr,
            flush=True,
        )


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _exec(args) -> int:
    from workflows import execute

    command = args.program[1:] if args.program[:1] == ["--"] else args.program
    if not command:
        print(
            "sagelocal exec: give the command after --, e.g. sagelocal exec -- python train.py",
            file=sys.stderr,
        )
        return 2
    try:
        settings = TargetSettings.from_environment(name=args.target, endpoint_url=args.endpoint)
        return execute.run(command, settings, port=args.port, virtual_clock=not args.real_sleeps)
    except TargetError as error:
        print(f"sagelocal: {error}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "exec":  # before quiet_sdk: the command's environment is the user's, not ours
        return _exec(args)
    quiet_sdk()
    # `docker stop`, systemd and `kill` send SIGTERM: treat it exactly as Ctrl-C (containers stopped,
    # created resources cleaned up). Also needed as PID 1, where an unhandled SIGTERM is ignored.
    signal.signal(signal.SIGTERM, _interrupt)
    if getattr(args, "host", None) is not None:
        warn_if_exposed(args.host)
    if args.command == "up":
        return _up(args)
    if args.command == "web":
        from workflows.webpage import PageServer

        page = PageServer(args.api_url, host=args.host, port=args.port)
        print(f"web page on {page.url} (API: {args.api_url or 'not set: use ?api=<url>'})", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            page.serve_forever()
        return 0
    if args.command == "emulator":
        from emulation import Emulator, EmulatorConfig
        from emulation.state import StateError

        persistent = {"data_dir": args.data_dir, "persist": True} if args.data_dir else {}
        try:
            config = EmulatorConfig(host=args.host, port=args.port, runner=args.runner, **persistent)
            emulator = Emulator(config).bind()
        except StateError as error:
            print(f"sagelocal: {error}", file=sys.stderr)
            return 2
        kept = f"state kept in {args.data_dir}" if args.data_dir else "nothing kept after it stops"
        print(f"sagelocal emulator listening on {emulator.url} ({kept}; Ctrl-C to stop)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            emulator.serve_forever()
        return 0
    if args.command == "demo":
        return _demo(args.output)
    if args.command == "build-image":
        return _build_images(args)
    try:
        settings = TargetSettings.from_environment(
            name=args.target,
            region=args.region,
            role_arn=args.role_arn,
            bucket=args.bucket,
            keep=args.keep,
            instance_type=args.instance_type,
        )
        if args.plan:
            return _plan(args.workflow, settings)
        result, seconds = run_workflow(args.workflow, settings, args.output)
    except TargetError as error:
        print(f"sagelocal: {error}", file=sys.stderr)
        return 2
    except LeftBehind as error:
        _report_left_behind(error)
        return 3
    except KeyboardInterrupt:
        print("sagelocal: interrupted; the resources it had created were removed", file=sys.stderr)
        return 130
    _print_result(result, seconds)
    return 0


def _report_left_behind(error: LeftBehind) -> None:
    lines = [
        "",
        "sagelocal: CLEANUP INCOMPLETE: these resources were left behind and may still cost money:",
        *(f"  - {problem}" for problem in error.problems),
        "Remove them in the AWS console or with the AWS CLI.",
    ]
    print("\n".join(lines), file=sys.stderr)
    if error.__context__ is not None and not isinstance(error.__context__, KeyboardInterrupt):
        print(f"(the run itself had failed first: {error.__context__})", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
