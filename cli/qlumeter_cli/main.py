"""The ``qlumeter`` command line (the ``qlumeter`` console script)."""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, redirect_stdout
from datetime import date, timedelta
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, NoReturn, TextIO, cast

from qlumeter.config import (
    ConfigError,
    Subscription,
    load_subscription,
    parse_subscription,
    unknown_product,
)
from qlumeter.explain import explain
from qlumeter.explain import render as render_explanation
from qlumeter.metering import effective_as_of
from qlumeter.paths import DAY_PATTERN, PathError, parse_key
from qlumeter.reader import FileReport, collector_paused, iter_rejects
from qlumeter.rows import row_json_schema
from qlumeter.summary import json_schema
from qlumeter.vocabulary import PRODUCT_CODES

from .local import LAYOUT, LocalInventory, meter_folder, read_days
from .problems import crossing_lines, describe_alert, forecast_line, problems
from .report import render_html
from .sample import DEMO_DAYS, write_sample
from .terminal import Terminal
from .whatif import changed_terms, compare, render

#: What --inventory points at, for every command that takes it.
INVENTORY_HELP = (
    "the folder holding inventory/tenant=<subscription_id>/source=<source>/"
    "date=<YYYY-MM-DD>/<name>.csv|.jsonl|.json[.gz] (the folder above the tenant= folder; "
    "the tenant= name must equal the subscription_id, case included)"
)
REMOTE_HELP = (
    "--stack-name, --profile, --region and --endpoint-url switch the run to a deployed "
    "stack (default stack qlumeter-dev): the folder's files are uploaded to its bucket and "
    "its functions meter them; only the runtime dependencies are needed (pip install "
    "'.[aws]'). Without them the stack of template.yaml runs on embedded moto."
)
EXIT_CODES = "exit codes: 0 done, 1 findings (see above), 2 usage or input error"


class UsageError(Exception):
    """A problem with the command's input, reported as one line."""


def _day(text: str) -> date:
    """A day as every input writes it (YYYY-MM-DD, as in the ``date=`` folders)."""
    try:
        if DAY_PATTERN.fullmatch(text):
            return date.fromisoformat(text)
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"not a day: {text!r} (expected YYYY-MM-DD, e.g. 2026-03-31)")


def render_table(summary: dict[str, Any]) -> str:
    """The summary as a plain text table."""
    header = (
        "product",
        "window",
        "from",
        "to",
        "utilization",
        "ratio",
        "QLUs",
        "peak/covered",
        "projected QLUs (band)",
    )
    rows = [header]
    forecast = summary.get("forecast")
    ahead = {f["product"]: f for f in forecast["products"]} if forecast else {}
    for p in summary["products"]:
        projected = ""
        if (f := ahead.get(p["product"])) is not None:
            band = f["qlus"]
            projected = f"{band['mid']} on {f['day']} ({band['low']}-{band['high']})"
        basis = p.get("peak_day") or (
            f"{p['covered_days']} days" if p.get("covered_days") is not None else ""
        )
        qlus = p["qlus"] + (f" (with {p['included_with']})" if p.get("included_with") else "")
        rows.append(
            (
                p["product"],
                p["window"],
                p["window_start"],
                p["window_end"],
                p["utilization"],
                p["ratio"],
                qlus,
                basis,
                projected,
            )
        )
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(header))]
    lines = [
        "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("")
    lines.append(f"total QLUs as of {summary['as_of']}: {summary['total_qlus']}")
    if summary.get("entitlement_qlus") is not None:
        lines.append(f"entitlement: {summary['entitlement_qlus']} QLUs")
    if forecast:
        lines += [forecast_line(forecast), *crossing_lines(forecast)]
    plan = summary.get("plan")
    if plan:
        shown = ", ".join(f"{m['measure']} {m['count']}/{m['cap']}" for m in plan["measures"])
        lines.append(f"plan {plan['plan']} ({plan['subscription_type']}): {shown or 'no caps'}")
    for alert in summary.get("alerts", []):
        lines.append("alert: " + describe_alert(alert))
    return "\n".join(lines)


def _progress_printer(err: TextIO, quiet: bool) -> Callable[[str, int, int], None]:
    """A progress bar on a terminal, plain lines at every tenth otherwise."""

    def show(what: str, done: int, total: int) -> None:
        if quiet or total <= 0:
            return
        if err.isatty():
            filled = 30 * done // total
            end = "\n" if done == total else ""
            print(
                f"\r{what:<9} [{'#' * filled}{'.' * (30 - filled)}] {done}/{total}",
                end=end,
                file=getattr(err, "raw", err),  # its carriage return, not escaped
                flush=True,
            )
        elif done == total or done % max(1, total // 10) == 0:
            print(f"{what} {done}/{total}", file=err)

    return show


def _writable(name: str | None, option: str) -> None:
    """Refuse, before any work, an output file that cannot be written."""
    if name is None:
        return
    path = Path(name)
    folder = path.parent
    if path.is_dir():
        raise UsageError(f"{option} {name}: is a folder, not a file")
    if not folder.is_dir():
        raise UsageError(f"{option} {name}: the folder {folder} does not exist")
    if not os.access(path if path.exists() else folder, os.W_OK):
        raise UsageError(f"{option} {name}: not writable")


def _emit(
    document: dict[str, Any], sub: Subscription, args: argparse.Namespace, out: TextIO, err: TextIO
) -> int:
    """Say the data problems, then write the JSON report (file or standard output), the
    HTML report and the table. 1 when ``--strict`` and a file was unreadable."""
    found = problems(document)
    for line in found:
        print(line, file=err)
    files = document["ingest"]["files"]
    unreadable = sum(f["status"] != "ok" for f in files)
    note = (
        f"{len(files)} files, {sum(f['rejected'] for f in files)} rejected rows, "
        f"{unreadable} unreadable files"
    )
    if args.html:
        Path(args.html).write_text(render_html(document, sub), encoding="utf-8")
        note += f"; HTML report written to {args.html}"
    table = render_table(document["summary"])
    if args.out:
        Path(args.out).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        print(table, file=out)
        print(f"{note}; report written to {args.out}", file=out)
    else:
        print(json.dumps(document, indent=2), file=out)
        print(table, file=err)
        print(note, file=err)
    return 1 if args.strict and unreadable else 0


def _inputs(args: argparse.Namespace) -> tuple[Subscription, Path]:
    _writable(getattr(args, "out", None), "--out")
    _writable(getattr(args, "html", None), "--html")
    sub = load_subscription(args.subscription)
    root = Path(args.inventory)
    if not root.is_dir():
        raise UsageError(f"inventory folder not found: {root}")
    return sub, root


def cmd_meter(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    sub, root = _inputs(args)
    progress = None if args.quiet else (lambda line: print(line, file=err))
    document, _, _ = meter_folder(sub, root, args.as_of, progress, args.strict)
    return _emit(document, sub, args, out, err)


def cmd_whatif(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    with tempfile.TemporaryDirectory(prefix="qlumeter-whatif-") as folder:
        if _remote(args):
            if not args.subscription_id:
                raise UsageError("--subscription-id names the tenant of the deployed stack")
            from .remote import fetch_tenant  # the runtime dependencies only (no moto)

            with _deployed_stack():
                terms = fetch_tenant(
                    args.subscription_id,
                    args.as_of,
                    Path(folder),
                    args.stack_name,
                    args.profile,
                    args.region,
                    args.endpoint_url,
                )
            sub, root = parse_subscription(terms), Path(folder)
        elif args.subscription and args.inventory:
            sub, root = _inputs(args)
        else:
            raise UsageError(
                "--subscription and --inventory name a local tenant; with a deployed stack,"
                " --subscription-id"
            )
        changed = changed_terms(sub, args.set, args.add, args.remove)
        if changed == sub:
            raise UsageError("no change given: name one with --set, --add or --remove")
        progress = None if args.quiet else (lambda line: print(line, file=err))
        current, _, _ = meter_folder(sub, root, args.as_of, progress)
        then, _, _ = meter_folder(changed, root, args.as_of)
    added = [code for code in changed.products if code not in sub.products]
    comparison = compare(current["summary"], then["summary"], added)
    out.write(json.dumps(comparison, indent=2) + "\n" if args.json else render(comparison))
    return 0


class _Stray(io.TextIOBase):
    """What the functions of a run print on standard output: their log lines go to
    ``err``; their metric documents (EMF), which mean nothing off Lambda, are dropped."""

    def __init__(self, err: TextIO) -> None:
        self.err = err
        self.line = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.line += text
        *lines, self.line = self.line.split("\n")
        for line in lines:
            if not line.startswith('{"_aws"'):
                print(line, file=self.err)
        return len(text)


def cmd_run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    sub, root = _inputs(args)
    if args.strict:
        sub = sub.model_copy(update={"strict": True})
    as_of = effective_as_of(sub, args.as_of)  # fails early on a day before the start
    progress = _progress_printer(err, args.quiet)
    with redirect_stdout(_Stray(err)):  # standard output holds the report alone
        if _remote(args):
            document = _run_remote(args, sub, root, as_of, progress)
        else:
            try:
                from .embedded import run_embedded
            except ImportError as exc:
                raise UsageError(
                    f"qlumeter run needs the local extras (pip install -e '.[dev]'): {exc}"
                ) from None
            template = Path(args.template) if args.template else None
            document = run_embedded(sub, root, as_of, template, progress)
    return _emit(document, sub, args, out, err)


def _run_remote(
    args: argparse.Namespace,
    sub: Subscription,
    root: Path,
    as_of: date,
    progress: Callable[[str, int, int], None],
) -> dict[str, Any]:
    """``qlumeter run`` against a deployed stack."""
    from .remote import run_remote  # the runtime dependencies only (no moto)

    with _deployed_stack():
        return run_remote(
            sub,
            root,
            as_of,
            args.stack_name,
            args.profile,
            args.region,
            args.endpoint_url,
            progress,
        )


@contextmanager
def _deployed_stack() -> Iterator[None]:
    """AWS's refusals, when a deployed stack is driven, as one line."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        NoCredentialsError,
        NoRegionError,
    )

    try:
        yield
    except NoRegionError:
        raise UsageError(
            "no AWS region for the deployed stack: pass --region, or set AWS_REGION"
            " (or a region in the --profile)"
        ) from None
    except NoCredentialsError:
        raise UsageError(
            "no AWS credentials for the deployed stack: pass --profile, or set AWS_PROFILE"
            " (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
        ) from None
    except ClientError as exc:
        raise UsageError(f"the deployed stack: {exc}") from None
    except BotoCoreError as exc:
        raise UsageError(f"the deployed stack: {exc}") from None


def _validated_paths(names: Sequence[str]) -> tuple[list[Path], list[Path]]:
    """The files to judge and the files skipped: in a folder, those outside any
    ``tenant=`` folder (reports, subscriptions, notes) are not inventory files. A file
    named on its own is always judged."""
    judged: list[Path] = []
    skipped: list[Path] = []
    for name in names:
        path = Path(name)
        if path.is_dir():
            for found in sorted(p for p in path.rglob("*") if p.is_file()):
                inside = any(s.startswith("tenant=") for s in Path(os.path.abspath(found)).parts)
                (judged if inside else skipped).append(found)
        elif path.is_file():
            judged.append(path)
        else:
            raise UsageError(f"no such file or folder: {name}")
    return judged, skipped


def cmd_validate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    judged, skipped = _validated_paths(args.files)
    if skipped and not args.quiet:
        names = ", ".join(str(p) for p in skipped[:5]) + (", ..." if len(skipped) > 5 else "")
        print(f"note: skipped {len(skipped)} files outside tenant= folders: {names}", file=err)
    if not judged:
        print(f"no inventory files in {' '.join(args.files)}: expected {LAYOUT}", file=out)
        return 1
    rows = rejected = unreadable = warned = 0
    for path in judged:
        report = _validate_file(path, args.strict, out)
        rows, rejected = rows + report.rows, rejected + report.rejected
        unreadable += report.status != "ok"
        warned += bool(report.warnings)
        if not args.quiet:
            print(
                f"{path}: {report.rows} rows, {report.accepted} accepted, "
                f"{report.rejected} rejected",
                file=err,
            )
    if not args.quiet:
        print(
            f"{len(judged)} files, {rows} rows, {rejected} rejected, {unreadable} unreadable, "
            f"{warned} with warnings",
            file=out,
        )
    return 1 if rejected or unreadable or warned else 0


def _validate_file(path: Path, strict: bool, out: TextIO) -> FileReport:
    """Print one file's findings (rejected rows as they are read, warnings, why it is
    unreadable); the path is judged by its tenant=/source=/date= folders wherever the
    command was typed from."""
    try:
        ref = parse_key(Path(os.path.abspath(path)).as_posix())
    except PathError as exc:
        print(f"{path}: unreadable: {exc.reason}", file=out)
        return FileReport(path=str(path), status="unreadable", reason=exc.reason)
    report = FileReport(path=ref.key)
    with path.open("rb") as stream:
        for r in iter_rejects(ref, stream, report, strict=strict):  # streamed: none is kept
            print(f"{path}:{r.line}: {r.field}: {r.reason}", file=out)
    for warning in report.warnings:
        print(f"{path}: warning: {warning}", file=out)
    if report.status != "ok":
        print(f"{path}: unreadable: {report.reason}", file=out)
    return report


def cmd_sample(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    subscription, rows = write_sample(Path(args.out))
    print(
        f"sample tenant written: {rows} rows under {args.out}, subscription {subscription}",
        file=out,
    )
    return 0


def cmd_explain(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    code = args.product.upper()
    if code not in PRODUCT_CODES:
        raise UsageError(unknown_product(args.product))
    sub, root = _inputs(args)
    with collector_paused():
        days = read_days(root, sub.subscription_id, args.day, LocalInventory())
        explanation = explain(sub, days, code, args.day, args.sample)
    print(render_explanation(explanation), file=out)
    if args.forecast:
        document, _, _ = meter_folder(sub, root, args.day)
        print(forecast_inputs(document["summary"], code), file=out)
    return 0


def forecast_inputs(summary: dict[str, Any], code: str) -> str:
    """What the forecast of ``code`` was made from, and what it projects."""
    forecast = summary.get("forecast") or {}
    entry = next((p for p in forecast.get("products", []) if p["product"] == code), None)
    if entry is None:
        return f"forecast of {code}: none (the product is not in the summary)"
    trend, rate = entry["trend"], entry["trend"]["rate"]
    band = " ".join(f"{k} {entry['utilization'][k]}" for k in ("mid", "low", "high"))
    qlus = " ".join(f"{k} {entry['qlus'][k]}" for k in ("mid", "low", "high"))
    return "\n".join(
        [
            f"forecast of {code} (daily values of the last {forecast['lookback_days']} days):",
            f"  values: {trend['values']} from {trend['first_day']} to {trend['last_day']},"
            f" the last {trend['last_value']}",
            f"  change a day: mid {rate['mid']}, low {rate['low']}, high {rate['high']}",
            f"  projected for {entry['day']}: utilization {band}; QLUs {qlus}",
        ]
    )


def cmd_schema(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    schemas = {
        "row": row_json_schema(),
        "summary": json_schema(),
        "subscription": Subscription.model_json_schema(),
    }
    chosen = schemas if args.which == "all" else schemas[args.which]
    print(json.dumps(chosen, indent=2), file=out)
    return 0


def cmd_demo(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    root = Path(args.out)
    subscription, rows = write_sample(root, args.days)
    print(f"sample tenant: {rows} rows over {args.days} days under {root}", file=err)
    sub = load_subscription(subscription)
    as_of = sub.start_date + timedelta(days=args.days - 1)
    args.subscription, args.inventory, args.as_of = str(subscription), str(root), as_of
    args.out, args.html = str(root / "report.json"), str(root / "report.html")
    args.template = args.endpoint_url = args.profile = args.region = args.stack_name = None
    args.strict = False
    return cmd_run(args, out, err)


class _Parser(argparse.ArgumentParser):
    """Reports bad arguments as one line through ``main``, not by exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _command(
    commands: Any, name: str, handler: Callable[..., int], summary: str, text: str
) -> argparse.ArgumentParser:
    """A subcommand with its one-line summary, its description and examples."""
    command: argparse.ArgumentParser = commands.add_parser(
        name,
        help=summary,
        description=text,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    command.set_defaults(handler=handler)
    return command


def _metering_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--subscription", required=True, help="the subscription (YAML or JSON)")
    command.add_argument("--inventory", required=True, metavar="FOLDER", help=INVENTORY_HELP)
    command.add_argument(
        "--as-of", required=True, type=_day, metavar="YYYY-MM-DD", help="the day metered"
    )
    command.add_argument("--out", help="write the JSON report here (default: standard output)")
    command.add_argument("--html", help="write the HTML report here")
    command.add_argument("--quiet", action="store_true", help="no progress output")
    command.add_argument(
        "--strict",
        action="store_true",
        help="refuse a file with a warning (unknown columns or keys, unknown modules); "
        "exit 1 when a file was refused or unreadable",
    )


def _remote_options(command: argparse.ArgumentParser) -> None:
    remote = command.add_argument_group("a deployed stack (any of these switches to it)")
    remote.add_argument("--stack-name", help="the deployed stack's name (default qlumeter-dev)")
    remote.add_argument("--profile", help="the AWS profile of the deployed stack")
    remote.add_argument("--region", help="the AWS region of the deployed stack")
    remote.add_argument("--endpoint-url", help="an AWS-compatible endpoint instead of AWS")


def _remote(args: argparse.Namespace) -> bool:
    return bool(args.endpoint_url or args.profile or args.stack_name or args.region)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="qlumeter",
        description="Meter Qualys Units (QLUs) from asset inventory files.",
        epilog="'qlumeter COMMAND --help' describes a command, with examples.",
    )
    try:
        release = version("qlumeter")
    except PackageNotFoundError:  # run from a checkout that is not installed
        release = "unknown"
    parser.add_argument("--version", action="version", version=f"qlumeter {release}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    meter = _command(
        commands,
        "meter",
        cmd_meter,
        "meter a local inventory folder in memory (the engine alone)",
        f"""Meter a local inventory folder in memory with the engine alone: print the usage
table and write the report (summary, daily values, every file and rejected row).

--inventory: {INVENTORY_HELP}.

Unreadable files, files with warnings and sources that stopped delivering are
named on standard error before the table.

examples:
  qlumeter meter --subscription sub.yaml --inventory exports --as-of 2026-03-31
  qlumeter meter --subscription sub.yaml --inventory exports --as-of 2026-03-31 \\
      --out report.json --html report.html

{EXIT_CODES}""",
    )
    _metering_options(meter)
    run = _command(
        commands,
        "run",
        cmd_run,
        "run the whole pipeline (the stack's functions) on embedded moto or a deployed stack",
        f"""Run the whole pipeline on the folder: the stack of template.yaml is created on
embedded moto, the files uploaded and ingested by the ingest function, the meter
function run for every day, the published messages collected. The report is
'qlumeter meter''s plus the messages.

--inventory: {INVENTORY_HELP}.

{REMOTE_HELP}

examples:
  qlumeter run --subscription sub.yaml --inventory exports --as-of 2026-03-31 \\
      --out report.json --html report.html
  qlumeter run --subscription sub.yaml --inventory exports --as-of 2026-03-31 \\
      --stack-name qlumeter-dev --profile prod --region eu-west-1 --out report.json

{EXIT_CODES}""",
    )
    _metering_options(run)
    run.add_argument("--template", help="the SAM template (default: the checkout's)")
    _remote_options(run)
    validate = _command(
        commands,
        "validate",
        cmd_validate,
        "check inventory files: rejected rows, unreadable files, warnings",
        f"""Check inventory files without metering them. Findings go to standard output, one
per line: every rejected row (file:line: field: reason), every unreadable file and
why, every warning (unknown columns or keys, with the field each may mean); then one
line with the totals. Per-file counts and notes go to standard error.

A folder is searched for files: those under a tenant= folder are judged by their
tenant=/source=/date= folders (wherever the command is typed from); other files
(reports, subscriptions) are skipped with a note. Layout: {LAYOUT}

examples:
  qlumeter validate exports
  cd exports/inventory/tenant=acme && qlumeter validate .
  qlumeter validate --quiet exports/inventory/tenant=acme/source=scanner

exit codes: 0 clean, 1 findings (or no inventory file found), 2 usage error""",
    )
    validate.add_argument("files", nargs="+", metavar="PATH", help="inventory files or folders")
    validate.add_argument("--quiet", action="store_true", help="print only the findings")
    validate.add_argument(
        "--strict", action="store_true", help="a file with a warning is unreadable (refused)"
    )
    whatif = _command(
        commands,
        "whatif",
        cmd_whatif,
        "compare the usage under changed subscription terms",
        f"""Meter a local inventory folder (or a deployed stack's tenant: its stored
subscription and files, copied here) twice, under the subscription as it is and
under changed terms, and print both side by side per product and in total. A
product added that the inventory gives no usage for is named.

--inventory: {INVENTORY_HELP}.
--set CODE.key=value changes a product's term (ratio, active_from); --set key=value
a subscription key (entitlement_qlus, plan, ...); --add CODE:key=value[,key=value]
adds a product; --remove CODE drops one. Each may be given several times.

examples:
  qlumeter whatif --subscription sub.yaml --inventory exports --as-of 2026-03-31 \\
      --set VMDR.ratio=1.2 --add EDR:ratio=2.85 --remove PAF
  qlumeter whatif --subscription sub.yaml --inventory exports --as-of 2026-03-31 \\
      --set entitlement_qlus=5000 --json
  qlumeter whatif --stack-name qlumeter-dev --subscription-id acme --as-of 2026-03-31 \\
      --set VMDR.ratio=1.2   # a deployed tenant's stored terms and files, metered here

{EXIT_CODES}""",
    )
    whatif.add_argument("--subscription", help="the subscription (YAML or JSON)")
    whatif.add_argument("--inventory", metavar="FOLDER", help=INVENTORY_HELP)
    whatif.add_argument(
        "--as-of", required=True, type=_day, metavar="YYYY-MM-DD", help="the day metered"
    )
    for option, meta, text in (
        ("--set", "CODE.KEY=VALUE", "change a product's term, or KEY=VALUE a subscription key"),
        ("--add", "CODE:KEY=VALUE", "add a product with its terms (comma-separated)"),
        ("--remove", "CODE", "drop a product"),
    ):
        whatif.add_argument(option, action="append", default=[], metavar=meta, help=text)
    whatif.add_argument("--json", action="store_true", help="print the comparison as JSON")
    whatif.add_argument("--quiet", action="store_true", help="no progress output")
    _remote_options(whatif)
    whatif.add_argument(
        "--subscription-id", help="with a deployed stack: the tenant (its stored terms and files)"
    )
    explain_cmd = _command(
        commands,
        "explain",
        cmd_explain,
        "why a product's number is what it is",
        f"""Explain one product on one day: its window, peak day or covered days, components,
counts per source, counted and left-out entities (with the rule) and the files.

--inventory: {INVENTORY_HELP}.

examples:
  qlumeter explain --subscription sub.yaml --inventory exports --product VMDR \\
      --day 2026-03-31

product codes: {", ".join(PRODUCT_CODES)}""",
    )
    explain_cmd.add_argument("--subscription", required=True, help="the subscription (YAML/JSON)")
    explain_cmd.add_argument("--inventory", required=True, metavar="FOLDER", help=INVENTORY_HELP)
    explain_cmd.add_argument("--product", required=True, help="a product code, e.g. VMDR")
    explain_cmd.add_argument("--day", required=True, type=_day, metavar="YYYY-MM-DD")
    explain_cmd.add_argument("--sample", type=int, default=10, help="entities listed (10)")
    explain_cmd.add_argument(
        "--forecast", action="store_true", help="also the forecast's inputs and projection"
    )
    schema = _command(
        commands,
        "schema",
        cmd_schema,
        "print the JSON Schemas: inventory row, usage summary, subscription",
        """Print a JSON Schema: 'row' (one inventory row), 'summary' (the v1 usage summary
every consumer receives), 'subscription' (the subscription file), or all three.

examples:
  qlumeter schema row
  qlumeter schema subscription > subscription.schema.json""",
    )
    schema.add_argument(
        "which", nargs="?", choices=["all", "row", "summary", "subscription"], default="all"
    )
    demo = _command(
        commands,
        "demo",
        cmd_demo,
        "sample tenant -> run -> table and report.html",
        f"""Write a realistic sample tenant ({DEMO_DAYS} days by default) and run the whole
pipeline on it (qlumeter run): the table, report.json and report.html in --out.

examples:
  qlumeter demo
  qlumeter demo --out /tmp/demo --days 10""",
    )
    demo.add_argument("--out", default="out/demo", help="folder for the sample and reports")
    demo.add_argument("--days", type=int, default=DEMO_DAYS, help=f"days ({DEMO_DAYS})")
    demo.add_argument("--quiet", action="store_true", help="no progress output")
    sample = _command(
        commands,
        "sample",
        cmd_sample,
        "write a realistic sample tenant (90 days)",
        """Write a realistic sample tenant (90 days of files and its subscription).

examples:
  qlumeter sample --out /tmp/sample""",
    )
    sample.add_argument("--out", required=True, help="folder to write it into")
    return parser


def main(
    argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    # every line written is escaped: row values never drive the terminal
    out = cast(TextIO, Terminal(out or sys.stdout))
    err = cast(TextIO, Terminal(err or sys.stderr))
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help(err)
            return 2
        return int(args.handler(args, out, err))
    except (ConfigError, UsageError, ValueError, OSError) as exc:
        if isinstance(exc, BrokenPipeError):
            return _broken_pipe()
        print(f"qlumeter: error: {exc}", file=err)
        return 2
    except KeyboardInterrupt:
        print("qlumeter: interrupted", file=err)
        return 130
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else 0


def _broken_pipe() -> int:
    """The reader of standard output went away (``| head``): stop quietly, and keep the
    interpreter's last flush from failing again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # not a real file (tests)
        pass
    return 141


if __name__ == "__main__":
    sys.exit(main())
