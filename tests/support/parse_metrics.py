"""Parses an OpenMetrics exposition from stdin with the Prometheus
project's own parser (prometheus_client) and prints the samples as JSON:
[{"name": ..., "labels": {...}, "value": ...}, ...]. Exits non-zero (with
the parser's error) when the text is not valid OpenMetrics."""
import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families

out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        out.append({"name": s.name, "type": family.type, "labels": s.labels, "value": s.value})
json.dump(out, sys.stdout)
