"""``python -m benchmarks [--quick]``: run every scenario, print the table, write benchmarks/results.md."""

from __future__ import annotations

import argparse
import datetime
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from benchmarks import hook_scenarios, postgres_scenarios, scenarios
from benchmarks.harness import LoadResult, Row, machine, markdown

RESULTS = Path(__file__).resolve().parent / "results.md"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short runs and smaller books (about a minute)")
    parser.add_argument(
        "--only", nargs="*", default=None, help="scenarios to run, e.g. S1 S5 O2k H1 (O: every open-loop rate)"
    )
    args = parser.parse_args()
    console = Console(width=200)
    wanted = {s.upper() for s in args.only} if args.only else None  # compared upper-cased
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="ordergate-bench-") as work:
        plan = scenarios.Plan(quick=args.quick, work=Path(work))
        with console.status("baselines: HTTP ceiling and naive gateway"):
            top, slow = scenarios.run_baselines(plan)
        rows += scenarios.baseline_rows(top, slow)
        s1_load: LoadResult | None = None
        steps = [
            ("S1", lambda: scenarios.s1(plan, top, slow)),
            ("S1g", lambda: scenarios.s1_granian(plan, top, slow)),
            ("S1w", lambda: scenarios.s1_wide(plan, top, slow)),
            ("S2", lambda: scenarios.s2(plan)),
            ("S3", lambda: scenarios.s3(plan)),
            ("S4", lambda: scenarios.s4(plan)),
            ("S5", lambda: scenarios.s5(plan)),
        ]
        for name, step in steps:
            if wanted and name.upper() not in wanted and not (name == "S1" and {"S6", "S1L"} & wanted):
                continue
            with console.status(f"{name} running"):
                result = step()
            if name == "S1":
                row, s1_load = result
                rows.append(row)
            else:
                rows.append(result)
        if (not wanted or "S1L" in wanted) and s1_load is not None:
            with console.status("S1L running (S1 with limits in force)"):
                rows.append(scenarios.s1_limits(plan, top, slow, s1_load))
        rates = [
            rate
            for rate in scenarios.OPEN_LOOP_TARGETS
            if not wanted or "O" in wanted or scenarios.open_loop_name(rate).upper() in wanted
        ]
        if rates:
            with console.status(f"{', '.join(map(scenarios.open_loop_name, rates))} running (open loop)"):
                rows += scenarios.open_loop_rows(plan, rates)
        if (not wanted or "S6" in wanted) and s1_load is not None:
            with console.status("S6 running (filling the log first)"):
                rows.append(scenarios.s6(plan, top, slow, s1_load))
        if not wanted or "S8" in wanted:
            with console.status("S8 running (a big log, then orders without and with a read storm)"):
                rows += scenarios.s8(plan)
        if not wanted or {"H1", "H1O"} & wanted:
            with console.status("H1 running (alert webhooks beside /v1/orders, open loop)"):
                rows += hook_scenarios.h1(plan)
        if not wanted or "F1" in wanted:
            with console.status("F1 running (FIX order entry, open loop)"):
                rows.append(scenarios.f1(plan))
        if not wanted or "S7" in wanted:
            with console.status("S7 running (two processes on one PostgreSQL database)"):
                rows.append(postgres_scenarios.s7(plan))
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    mode = "quick" if args.quick else "full"
    header = (
        f"Measured {when} ({mode} run) on {machine()}. Load generators (wrk, the Python client for S2-S4, "
        f"the open-loop client for O1k-O4k and S8) run on the same machine and share its cores with the server."
    )
    table = Table(title="ordergate benchmarks", caption=header)
    for column in ("Scenario", "What", "Throughput", "p50", "p99", "Errors", "Ratio", "Target", "Result"):
        table.add_column(column)
    for r in rows:
        table.add_row(r.scenario, r.what, r.throughput, r.p50, r.p99, r.errors, r.ratios, r.target, r.result)
    console.print(table)
    for r in rows:
        for note in r.notes:
            console.print(f"{r.scenario}: {note}", markup=False, highlight=False)
    if wanted:
        console.print(f"a partial run (--only): {RESULTS} keeps the last complete table")
        return
    RESULTS.write_text("# ordergate benchmark results\n\n" + markdown(rows, header))
    console.print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
