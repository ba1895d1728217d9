"""The chart's README is generated from values.yaml's ``# --`` comments and the alert rules,
describes every value, is up to date, and holds the section each alert's runbook_url names."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from consensus_engine.devtools import chart_docs

from .conftest import CHART_DIR, Render, by_kind

README = CHART_DIR / "README.md"
VALUES = (CHART_DIR / "values.yaml").read_text(encoding="utf-8")

SAMPLE = """\
# A section note, not a description.
top:
  # Also a note.
  # -- The first line
  # and its continuation, with a | pipe and <placeholders> outside `<code>`.
  documented: 1
  plain: x
# -- A whole map, described once.
described:
  inner:
    leaf: true

# -- Not attached: a blank line comes before the key.

loose: []
"""


def test_the_readme_is_up_to_date() -> None:
    assert README.read_text(encoding="utf-8") == chart_docs.render(CHART_DIR), (
        "helm/consensus-engine/README.md is out of date: run "
        "python -m consensus_engine.devtools.chart_docs"
    )
    assert chart_docs.main(["--chart", str(CHART_DIR), "--check"]) == 0


def test_every_value_has_a_description() -> None:
    assert chart_docs.undocumented_values(VALUES) == []
    keys = [value.key for value in chart_docs.documented_values(VALUES)]
    assert len(keys) == len(set(keys))
    for key in ("image.digest", "api.ingress.enabled", "metrics.prometheusRule.runbookUrl"):
        assert f"| `{key}` |" in README.read_text(encoding="utf-8"), key


def test_descriptions_run_from_the_marker_to_the_key() -> None:
    found = {value.key: value for value in chart_docs.documented_values(SAMPLE)}
    assert set(found) == {"top.documented", "described"}
    assert found["top.documented"].description == (
        "The first line and its continuation, with a | pipe and <placeholders> outside `<code>`."
    )
    assert (found["top.documented"].type, found["top.documented"].default) == ("int", 1)
    assert found["described"].default == {"inner": {"leaf": True}}
    assert found["described"].type == "object"
    # A map described as a whole covers its values; a key without one is reported.
    assert chart_docs.undocumented_values(SAMPLE) == ["top.plain", "loose"]


def test_table_cells_escape_pipes_and_tags_outside_code(tmp_path: Path) -> None:
    chart = tmp_path / "chart"
    (chart / "files").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(
        "name: sample\ndescription: A sample.\nversion: 1.0.0\nappVersion: '1'\n"
        "kubeVersion: '>=1.25.0-0'\nhome: https://example.com/sample\n"
    )
    (chart / "values.yaml").write_text(SAMPLE)
    (chart / "files" / "alerts.yaml").write_text("groups: []\n")
    row = next(line for line in chart_docs.render(chart).splitlines() if "top.documented" in line)
    assert row == (
        "| `top.documented` | int | `1` | The first line and its continuation, with a \\| pipe"
        " and &lt;placeholders&gt; outside `<code>`. |"
    )
    assert chart_docs.main(["--chart", str(chart), "--check"]) == 1  # undocumented values


def test_check_fails_on_a_stale_readme(tmp_path: Path) -> None:
    chart = tmp_path / "chart"
    (chart / "files").mkdir(parents=True)
    for name in ("Chart.yaml", "values.yaml", "files/alerts.yaml"):
        (chart / name).write_text((CHART_DIR / name).read_text())
    assert chart_docs.main(["--chart", str(chart), "--check"]) == 1  # no README yet
    assert chart_docs.main(["--chart", str(chart)]) == 0
    assert chart_docs.main(["--chart", str(chart), "--check"]) == 0
    values = chart / "values.yaml"
    values.write_text(values.read_text().replace("# -- Image pull policy.", "# -- Pull policy."))
    assert chart_docs.main(["--chart", str(chart), "--check"]) == 1


def test_every_runbook_url_lands_on_its_alerts_section(render: Render) -> None:
    (rule,) = by_kind(render({"metrics": {"prometheusRule": {"enabled": True}}}), "PrometheusRule")
    headings = re.findall(r"^#+ (.+)$", README.read_text(encoding="utf-8"), re.MULTILINE)
    anchors = {chart_docs.anchor(heading) for heading in headings}
    urls = [
        alert["annotations"]["runbook_url"]
        for group in rule["spec"]["groups"]
        for alert in group["rules"]
    ]
    assert urls
    for url in urls:
        page, _, fragment = url.partition("#")
        assert page.endswith("/helm/consensus-engine/README.md"), url
        assert fragment in anchors, url


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("ConsensusEngineApiDown", "consensusengineapidown"),
        ("Installing and testing", "installing-and-testing"),
    ],
)
def test_anchors_follow_githubs_rule(heading: str, anchor: str) -> None:
    assert chart_docs.anchor(heading) == anchor
