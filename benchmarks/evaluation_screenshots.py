"""Screenshots of the evaluation of case management on the demo population, in Debian's headless Chromium.

    .venv/bin/python -m benchmarks.evaluation_screenshots --out docs/screenshots

Generates the demo's population (`make demo`'s 20,000 people in four teams of two practices) with the synthetic
case-management service on (a planted 20% reduction, randomised at the margin), ingests it into a throwaway
home, freezes the shipped plan, runs `riskstrat evaluate`'s work (pipelines.evaluate) and saves two views of the
report: the estimates and balance (`evaluation_report.png`) and the outcome metrics with their control charts
(`evaluation_outcome_metrics.png`). Prints where the report is.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, default=None, help="Default: a new temporary folder.")
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    parser.add_argument("--people", type=int, default=20_000)
    parser.add_argument("--teams", type=int, default=4)
    parser.add_argument("--again", action="store_true", help="Reuse --home's warehouse: evaluate and shoot only.")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    from data_contracts.synthetic import generate_population
    from pipelines.evaluate import evaluate, freeze_plan
    from pipelines.ingest import ingest_batch
    from pipelines.settings import load_settings
    from pipelines.workspace.demo import demo_synth_overrides

    home = args.home or Path(tempfile.mkdtemp(prefix="riskstrat-evaluation-"))
    synth = {
        "people": args.people,
        **demo_synth_overrides(args.people, args.teams),
        "case_management": {"enabled": True, "effect": 0.2, "margin": 10},
    }
    settings = load_settings(None, {"home": str(home), "synth": synth})
    if not args.again:
        generated = generate_population(settings.home / "synthetic", settings.synth, settings.outcomes, settings.seed)
        for batch in generated.batch_dirs:
            ingest_batch(settings.db, batch)
        freeze_plan(settings)
    report = evaluate(settings, draws_file=settings.home / "synthetic" / "list_draws.parquet")
    page_path = report.folder / "index.html"
    args.out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            tempfile.mkdtemp(prefix="chromium-profile-"), executable_path=CHROMIUM, headless=True, args=FLAGS,
            viewport={"width": 1280, "height": 900},
        )  # fmt: skip
        page = context.new_page()
        page.goto(page_path.as_uri())

        def top_of(text: str) -> float:
            return page.locator("h2", has_text=text).first.bounding_box()["y"]  # type: ignore[index]

        height = page.evaluate("document.documentElement.scrollHeight")
        metrics = top_of("Outcome metrics")
        specials = top_of("Special causes")
        page.screenshot(path=str(args.out / "evaluation_report.png"), full_page=True,
                        clip={"x": 0, "y": 0, "width": 1280, "height": metrics - 10})  # fmt: skip
        section = {"x": 0, "y": metrics - 10, "width": 1280, "height": min(specials, height) - metrics}
        page.screenshot(path=str(args.out / "evaluation_outcome_metrics.png"), full_page=True, clip=section)
        context.close()
    print(f"report: {page_path}")
    print(f"screenshots: {args.out / 'evaluation_report.png'}, {args.out / 'evaluation_outcome_metrics.png'}")


if __name__ == "__main__":
    main()
