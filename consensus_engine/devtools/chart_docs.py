"""The Helm chart's README, generated from the chart's own files so that it cannot drift.

helm-docs, the usual generator, reads the same ``# --`` comments but is a Go program, not a
package this project can install; this module does what the chart needs of it. A ``# --``
comment right above a key of ``values.yaml`` describes that key (the lines from ``# --`` down
to the key; the comment lines above it are section notes), and makes one row of the values
table, whose default is the whole value below the key. Every value must be described, by
itself or through a map holding it. Each alert of ``files/alerts.yaml`` gets a section, the
anchor its ``runbook_url`` points at.

    python -m consensus_engine.devtools.chart_docs          # rewrite the chart's README.md
    python -m consensus_engine.devtools.chart_docs --check  # fail when it is out of date
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

CHART_DIR = Path("helm/consensus-engine")
README = "README.md"
MARKER = "# --"
_TYPES = {bool: "bool", int: "int", float: "float", str: "string", list: "list", dict: "object"}


@dataclass(frozen=True)
class Value:
    """One documented key of values.yaml: its dotted path, default and description."""

    key: str
    default: Any
    description: str

    @property
    def type(self) -> str:
        return _TYPES.get(type(self.default), "null")


@dataclass(frozen=True)
class Alert:
    """One alerting rule, as its README section shows it."""

    name: str
    severity: str
    duration: str
    summary: str
    runbook: str
    expr: str


def _description(lines: Sequence[str], key_line: int) -> str | None:
    """The ``# --`` comment right above a key (no blank line between), joined into one line."""
    start = key_line
    while start > 0 and lines[start - 1].lstrip().startswith("#"):
        start -= 1
    block = [line.strip() for line in lines[start:key_line]]
    markers = [i for i, line in enumerate(block) if line.startswith(MARKER)]
    if not markers:
        return None
    first, *rest = block[markers[-1] :]
    words = [first.removeprefix(MARKER), *(line.removeprefix("#") for line in rest)]
    return " ".join(" ".join(words).split())


def _keys(node: Any, prefix: str = "") -> Iterator[tuple[str, Any, int]]:
    """``(dotted path, value node, line)`` of every mapping key, parents before children."""
    if not isinstance(node, yaml.MappingNode):
        return
    for key_node, value_node in node.value:
        path = f"{prefix}{key_node.value}"
        yield path, value_node, key_node.start_mark.line
        yield from _keys(value_node, f"{path}.")


def _lookup(data: Any, path: str) -> Any:
    for part in path.split("."):
        data = data[part]
    return data


def documented_values(values_text: str) -> list[Value]:
    """Every key with a ``# --`` description, in file order."""
    lines = values_text.splitlines()
    data = yaml.safe_load(values_text)
    found: list[Value] = []
    for path, _, line in _keys(yaml.compose(values_text)):
        description = _description(lines, line)
        if description is not None:
            found.append(Value(path, _lookup(data, path), description))
    return found


def undocumented_values(values_text: str) -> list[str]:
    """Keys holding a plain value (not a map) that no ``# --`` describes, nor any parent."""
    documented = {value.key for value in documented_values(values_text)}
    missing: list[str] = []
    for path, node, _ in _keys(yaml.compose(values_text)):
        if isinstance(node, yaml.MappingNode) and node.value:
            continue
        parts = path.split(".")
        if not any(".".join(parts[:n]) in documented for n in range(1, len(parts) + 1)):
            missing.append(path)
    return missing


def alerts(rules_text: str) -> list[Alert]:
    """The alerting rules of a Prometheus rule file, in file order."""
    return [
        Alert(
            name=rule["alert"],
            severity=rule["labels"]["severity"],
            duration=str(rule.get("for", "0m")),
            summary=rule["annotations"]["summary"],
            runbook=rule["annotations"]["runbook"],
            expr=rule["expr"].strip(),
        )
        for group in yaml.safe_load(rules_text)["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading made of letters, digits, spaces and dashes."""
    return "-".join(heading.lower().split())


def _prose(text: str) -> str:
    """Markdown for plain text: ``<`` and ``>`` outside code spans escaped (else HTML tags)."""
    parts = text.split("`")
    for i in range(0, len(parts), 2):
        parts[i] = parts[i].replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(parts)


def _cell(text: str) -> str:
    return text.replace("|", r"\|")


def _values_table(values: list[Value]) -> list[str]:
    rows = ["| Key | Type | Default | Description |", "| --- | --- | --- | --- |"]
    for value in values:
        default = _cell(json.dumps(value.default, ensure_ascii=False))
        rows.append(
            f"| `{value.key}` | {value.type} | `{default}` | {_cell(_prose(value.description))} |"
        )
    return rows


def _alert_sections(found: list[Alert]) -> list[str]:
    lines: list[str] = []
    for alert in found:
        lines += [
            f"### {alert.name}",
            "",
            f"Severity {alert.severity}, after {alert.duration}: {_prose(alert.summary)}",
            "",
            _prose(alert.runbook),
            "",
            "```promql",
            alert.expr,
            "```",
            "",
        ]
    return lines


def render(chart_dir: Path) -> str:
    """The README of the chart in ``chart_dir``."""
    chart = yaml.safe_load((chart_dir / "Chart.yaml").read_text(encoding="utf-8"))
    values_text = (chart_dir / "values.yaml").read_text(encoding="utf-8")
    rules_text = (chart_dir / "files" / "alerts.yaml").read_text(encoding="utf-8")
    name = chart["name"]
    sources = ", ".join(chart.get("sources", [])) or chart["home"]
    lines = [
        f"# {name}",
        "",
        "<!-- Generated by `python -m consensus_engine.devtools.chart_docs` from Chart.yaml, "
        "values.yaml and files/alerts.yaml: edit those, then run it again. -->",
        "",
        " ".join(chart["description"].split()),
        "",
        f"Chart version {chart['version']}, app version {chart['appVersion']}, "
        f"Kubernetes {chart['kubeVersion']}. Home: {chart['home']}. Sources: {sources}.",
        "",
        "## Installing and testing",
        "",
        "```sh",
        f"helm install ce ./helm/{name} --namespace consensus --values my-values.yaml",
        "helm test ce --namespace consensus   # the API's /ready and a worker's /readyz",
        "```",
        "",
        "## Values",
        "",
        *_values_table(documented_values(values_text)),
        "",
        "## Alerts",
        "",
        "With `metrics.prometheusRule.enabled` the chart installs these alerts; each one's "
        "`runbook_url` is `metrics.prometheusRule.runbookUrl` followed by its name in lower "
        "case, by default its section below. `metrics.prometheusRule.rules.<name>.enabled: "
        "false` leaves one out.",
        "",
        *_alert_sections(alerts(rules_text)),
    ]
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate the Helm chart's README.md.")
    parser.add_argument("--chart", type=Path, default=CHART_DIR, help="the chart's directory")
    parser.add_argument(
        "--check", action="store_true", help="only check that README.md is up to date"
    )
    args = parser.parse_args(argv)
    chart_dir: Path = args.chart
    values_text = (chart_dir / "values.yaml").read_text(encoding="utf-8")
    if missing := undocumented_values(values_text):
        sys.stderr.write(f"values without a `# --` description: {', '.join(missing)}\n")
        return 1
    readme = chart_dir / README
    expected = render(chart_dir)
    if args.check:
        if not readme.exists() or readme.read_text(encoding="utf-8") != expected:
            sys.stderr.write(
                f"{readme} is out of date: run python -m consensus_engine.devtools.chart_docs\n"
            )
            return 1
        return 0
    readme.write_text(expected, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
