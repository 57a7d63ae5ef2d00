"""The README's generated references match the code."""

from pathlib import Path

from monitor.docs import render

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_references_are_up_to_date():
    text = README.read_text()
    assert render(text) == text, "README.md is out of date: run `make docs`"


def test_every_declared_metric_follows_conventions():
    from collectors.registry import all_collector_classes
    from monitor.api_jobs import api_collector_classes
    from monitor.exposition import SELF_METRICS

    names = set()
    for specs in [SELF_METRICS] + [cls.METRICS for cls in all_collector_classes() + api_collector_classes()]:
        for spec in specs:
            assert spec.name.startswith("vecmon_"), spec.name
            assert spec.name not in names, f"{spec.name} declared twice"
            names.add(spec.name)
            assert spec.help and spec.help[0].isupper(), f"{spec.name}: HELP should be a sentence"
            assert "target" not in spec.labels
            if spec.kind == "counter":
                assert spec.name.endswith("_total")
            else:
                assert not spec.name.endswith("_total"), spec.name
