"""The ``qlumeter`` command line (the ``qlumeter`` console script)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any, NoReturn, TextIO, cast

from qlumeter.config import ConfigError, Subscription, load_subscription
from qlumeter.explain import explain
from qlumeter.explain import render as render_explanation
from qlumeter.metering import effective_as_of
from qlumeter.paths import PathError, parse_key
from qlumeter.reader import FileReport, collector_paused, iter_rejects
from qlumeter.rows import row_json_schema
from qlumeter.summary import json_schema

from .local import LocalInventory, meter_folder, read_days
from .report import render_html
from .sample import DEMO_DAYS, write_sample
from .terminal import Terminal


class UsageError(Exception):
    """A problem with the command's input, reported as one line."""


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def render_table(summary: dict[str, Any]) -> str:
    """The summary as a plain text table."""
    header = ("product", "window", "from", "to", "utilization", "ratio", "QLUs", "peak/covered")
    rows = [header]
    for p in summary["products"]:
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
    plan = summary.get("plan")
    if plan:
        shown = ", ".join(f"{m['measure']} {m['count']}/{m['cap']}" for m in plan["measures"])
        lines.append(f"plan {plan['plan']} ({plan['subscription_type']}): {shown or 'no caps'}")
    for alert in summary.get("alerts", []):
        lines.append("alert: " + ", ".join(f"{k}={v}" for k, v in alert.items()))
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


def _emit(
    document: dict[str, Any], sub: Subscription, args: argparse.Namespace, out: TextIO, err: TextIO
) -> None:
    """Write the JSON report (file or standard output), the HTML report, the table."""
    files = document["ingest"]["files"]
    note = (
        f"{len(files)} files, {sum(f['rejected'] for f in files)} rejected rows, "
        f"{sum(f['status'] != 'ok' for f in files)} unreadable files"
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


def _inputs(args: argparse.Namespace) -> tuple[Subscription, Path]:
    sub = load_subscription(args.subscription)
    root = Path(args.inventory)
    if not root.is_dir():
        raise UsageError(f"inventory folder not found: {root}")
    return sub, root


def cmd_meter(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    sub, root = _inputs(args)
    progress = None if args.quiet else (lambda line: print(line, file=err))
    document, _, _ = meter_folder(sub, root, args.as_of, progress)
    _emit(document, sub, args, out, err)
    return 0


def cmd_run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    sub, root = _inputs(args)
    effective_as_of(sub, args.as_of)  # fails early on a day before the start
    if args.endpoint_url or args.profile or args.stack_name:
        from .remote import run_remote  # the runtime dependencies only (no moto)

        document = run_remote(
            sub,
            root,
            min(args.as_of, sub.end_date or args.as_of),
            args.stack_name,
            args.profile,
            args.region,
            args.endpoint_url,
            _progress_printer(err, args.quiet),
        )
        _emit(document, sub, args, out, err)
        return 0
    try:
        from .embedded import run_embedded
    except ImportError as exc:
        raise UsageError(
            f"qlumeter run needs the local extras (pip install -e '.[dev]'): {exc}"
        ) from None
    template = Path(args.template) if args.template else None
    document = run_embedded(
        sub,
        root,
        min(args.as_of, sub.end_date or args.as_of),
        template,
        _progress_printer(err, args.quiet),
    )
    _emit(document, sub, args, out, err)
    return 0


def _inventory_paths(paths: Sequence[str]) -> list[Path]:
    found: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.is_file()))
        elif path.is_file():
            found.append(path)
        else:
            raise UsageError(f"no such file or folder: {name}")
    return found


def cmd_validate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    bad = 0
    for path in _inventory_paths(args.files):
        try:
            ref = parse_key(path.as_posix())
        except PathError as exc:
            print(f"{path}: unreadable: {exc.reason}", file=out)
            bad += 1
            continue
        report = FileReport(path=ref.key)
        with path.open("rb") as stream:
            for r in iter_rejects(ref, stream, report):  # streamed: no row is kept
                print(f"{path}:{r.line}: {r.field}: {r.reason}", file=out)
        if report.status != "ok":
            print(f"{path}: unreadable: {report.reason}", file=out)
            bad += 1
        bad += report.rejected
        print(
            f"{path}: {report.rows} rows, {report.accepted} accepted, {report.rejected} rejected",
            file=err,
        )
    return 1 if bad else 0


def cmd_sample(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    subscription, rows = write_sample(Path(args.out))
    print(
        f"sample tenant written: {rows} rows under {args.out}, subscription {subscription}",
        file=out,
    )
    return 0


class _Parser(argparse.ArgumentParser):
    """Reports bad arguments as one line through ``main``, not by exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def cmd_explain(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    sub, root = _inputs(args)
    with collector_paused():
        days = read_days(root, sub.subscription_id, args.day, LocalInventory())
        explanation = explain(sub, days, args.product.upper(), args.day, args.sample)
    print(render_explanation(explanation), file=out)
    return 0


def cmd_schema(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    schemas = {
        "row": row_json_schema(),
        "summary": json_schema(),
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
    return cmd_run(args, out, err)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="qlumeter", description="QLU metering")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, handler, text in (
        ("meter", cmd_meter, "meter a local inventory folder in memory (the engine alone)"),
        ("run", cmd_run, "run the whole pipeline (the stack's functions) on embedded moto"),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument("--subscription", required=True, help="subscription (YAML or JSON)")
        command.add_argument("--inventory", required=True, help="folder laid out like the bucket")
        command.add_argument("--as-of", required=True, type=_day, help="YYYY-MM-DD")
        command.add_argument("--out", help="write the JSON report here (default: standard output)")
        command.add_argument("--html", help="write the HTML report here")
        command.add_argument("--quiet", action="store_true", help="no progress output")
        command.set_defaults(handler=handler)
        if name == "run":
            command.add_argument("--template", help="the SAM template (default: the checkout's)")
            command.add_argument("--stack-name", help="a deployed stack (default qlumeter-dev)")
            command.add_argument("--profile", help="AWS profile of the deployed stack")
            command.add_argument("--region", help="AWS region of the deployed stack")
            command.add_argument("--endpoint-url", help="an AWS-compatible endpoint instead")
    validate = commands.add_parser("validate", help="check inventory files, list rejected rows")
    validate.add_argument("files", nargs="+", help="inventory files or folders")
    validate.set_defaults(handler=cmd_validate)
    explain_cmd = commands.add_parser("explain", help="why a product's number is what it is")
    explain_cmd.add_argument("--subscription", required=True, help="subscription (YAML or JSON)")
    explain_cmd.add_argument("--inventory", required=True, help="folder laid out like the bucket")
    explain_cmd.add_argument("--product", required=True, help="product code, e.g. VMDR")
    explain_cmd.add_argument("--day", required=True, type=_day, help="YYYY-MM-DD")
    explain_cmd.add_argument("--sample", type=int, default=10, help="entities listed (10)")
    explain_cmd.set_defaults(handler=cmd_explain)
    schema = commands.add_parser("schema", help="print the inventory row and summary schemas")
    schema.add_argument("which", nargs="?", choices=["all", "row", "summary"], default="all")
    schema.set_defaults(handler=cmd_schema)
    demo = commands.add_parser("demo", help="sample tenant -> run -> table and report.html")
    demo.add_argument("--out", default="out/demo", help="folder for the sample and reports")
    demo.add_argument("--days", type=int, default=DEMO_DAYS, help=f"days ({DEMO_DAYS})")
    demo.add_argument("--quiet", action="store_true", help="no progress output")
    demo.set_defaults(handler=cmd_demo)
    sample = commands.add_parser("sample", help="write a realistic sample tenant (90 days)")
    sample.add_argument("--out", required=True, help="folder to write it into")
    sample.set_defaults(handler=cmd_sample)
    return parser


def main(
    argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    # every line written is escaped: row values never drive the terminal
    out = cast(TextIO, Terminal(out or sys.stdout))
    err = cast(TextIO, Terminal(err or sys.stderr))
    try:
        args = build_parser().parse_args(argv)
        return int(args.handler(args, out, err))
    except (ConfigError, UsageError, ValueError, OSError) as exc:
        print(f"qlumeter: error: {exc}", file=err)
        return 2


if __name__ == "__main__":
    sys.exit(main())
