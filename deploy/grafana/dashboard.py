#!/usr/bin/env python3
"""Generates the Grafana dashboard of the auth service, deploy/grafana/dashboards/auth.json.

    python3 deploy/grafana/dashboard.py > deploy/grafana/dashboards/auth.json

Built with the Grafana Foundation SDK (`grafana-foundation-sdk` on PyPI, pinned in
tests/requirements.txt), whose typed builders make a dashboard JSON that is valid by
construction. Edit this file, never the JSON: tests/e2e/prometheus.rs regenerates the
dashboard and fails when the committed JSON differs, and runs every panel's query against a
real Prometheus scraping the stack. The series are described in docs/operations.md
("Metrics"), the panels in "Dashboards and alerts".
"""

import json
import sys

from grafana_foundation_sdk.builders import common as common_builder
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus
from grafana_foundation_sdk.builders import stat
from grafana_foundation_sdk.builders import timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DataSourceRef,
    DynamicConfigValue,
    Threshold,
    ThresholdsMode,
)

# The provisioned data source (deploy/grafana/provisioning/datasources/prometheus.yml),
# selectable through the dashboard's `datasource` variable.
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
# The objective the revocation-lag alerts hold (deploy/prometheus/rules/alerts.yml).
LAG_OBJECTIVE_SECONDS = 0.005
RATE = "[$__rate_interval]"


def query(ref_id, expr, legend):
    return (
        prometheus.Dataquery()
        .ref_id(ref_id)
        .expr(expr)
        .legend_format(legend)
        .range()
        .datasource(DATASOURCE)
    )


def queries(targets):
    """Dataqueries A, B, ... of (expression, legend) pairs."""
    return [query(chr(ord("A") + i), expr, legend) for i, (expr, legend) in enumerate(targets)]


def framed(panel, title, description, unit, width):
    """What every panel has: title, description, data source, unit, 8 rows high."""
    return (
        panel.title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .height(8)
        .span(width)
    )


def series(title, description, unit, targets, width=12, highlight=()):
    """A time-series panel; series whose name matches a regular expression of `highlight`
    are drawn in red (what needs a look)."""
    panel = (
        framed(timeseries.Panel(), title, description, unit, width)
        .fill_opacity(10)
        .legend(
            common_builder.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.TABLE)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
            .calcs(["lastNotNull", "max"])
        )
        .targets(queries(targets))
    )
    for pattern in highlight:
        panel = panel.override_by_regexp(
            pattern,
            [
                DynamicConfigValue(
                    id_val="color", value={"mode": "fixed", "fixedColor": "red"}
                ),
                DynamicConfigValue(id_val="custom.lineWidth", value=3),
            ],
        )
    return panel


def with_objective(panel, seconds):
    """Draws `seconds` as a red threshold line on `panel`."""
    return panel.thresholds(
        dash.ThresholdsConfig()
        .mode(ThresholdsMode.ABSOLUTE)
        .steps(
            [
                Threshold(value=None, color="green"),
                Threshold(value=seconds, color="red"),
            ]
        )
    ).thresholds_style(
        common_builder.GraphThresholdsStyleConfig().mode(
            common.GraphThresholdsStyleMode.LINE
        )
    )


def single(title, description, expr, unit, red_below=None, width=6):
    """A stat panel of one number; red below `red_below` when given."""
    steps = [Threshold(value=None, color="green")]
    if red_below is not None:
        steps = [
            Threshold(value=None, color="red"),
            Threshold(value=red_below, color="green"),
        ]
    return (
        framed(stat.Panel(), title, description, unit, width)
        .graph_mode(common.BigValueGraphMode.AREA)
        .color_mode(common.BigValueColorMode.VALUE)
        .thresholds(dash.ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps(steps))
        .targets(queries([(expr, "{{job}}")]))
    )


class Section:
    """A row's title and its panels, laid out below an expanded row."""

    def __init__(self, title):
        self.title = title
        self.panels = []

    def with_panel(self, panel):
        self.panels.append(panel)
        return self


def rate_by(metric, labels):
    return f"sum by ({labels}) (rate({metric}{RATE}))"


def errors_by(errors, histogram, labels):
    """The rate of counter `errors` by `labels`, 0 for the calls of `histogram` that never
    failed (an error series appears with its first error)."""
    return f"{rate_by(errors, labels)} or {rate_by(histogram + '_count', labels)} * 0"


def per_second(title, description, metric, labels, width=12, highlight=()):
    """A time-series panel of counter `metric`'s rate by `labels` ("job, outcome")."""
    legend = " ".join("{{%s}}" % label.strip() for label in labels.split(","))
    return series(
        title,
        description,
        "ops",
        [(rate_by(metric, labels), legend)],
        width=width,
        highlight=highlight,
    )


def quantiles(metric, by, legend):
    """p50 and p99 of a histogram, by the labels `by`."""
    return [
        (
            f"histogram_quantile({q}, sum by ({by}, le) (rate({metric}_bucket{RATE})))",
            f"p{round(q * 100)} {legend}",
        )
        for q in (0.5, 0.99)
    ]


def build():
    http = (
        Section("HTTP")
        .with_panel(
            series(
                "Requests per second by route",
                "Every answered request, by service (job) and route template.",
                "reqps",
                [("job_route:http_requests:rate5m", "{{job}} {{route}}")],
            )
        )
        .with_panel(
            series(
                "Latency p50 / p99 by route",
                "Time to answer, from the http_request_duration_seconds histogram.",
                "s",
                [
                    ("job_route:http_request_duration_seconds:p50_5m", "p50 {{job}} {{route}}"),
                    ("job_route:http_request_duration_seconds:p99_5m", "p99 {{job}} {{route}}"),
                ],
            )
        )
        .with_panel(
            series(
                "5xx share of answers",
                "Server errors over all answers (alert Http5xxRateHigh above 5 %).",
                "percentunit",
                [("job:http_requests_5xx:ratio_rate5m", "{{job}}")],
            )
        )
        .with_panel(
            series(
                "Requests in flight",
                "Requests being answered now, by service.",
                "short",
                [("sum by (job) (http_requests_in_flight)", "{{job}}")],
            )
        )
    )
    sessions = (
        Section("Logins, refreshes and sessions")
        .with_panel(
            per_second(
                "Logins by outcome",
                "auth_logins_total: success, wrong_password, unknown_user, disabled, "
                "rate_limited, invalid_request.",
                "auth_logins_total",
                "outcome",
                width=8,
            )
        )
        .with_panel(
            per_second(
                "Refreshes by outcome",
                "auth_refreshes_total; reuse_detected (red) is a replayed refresh token, "
                "each one ends its session as a theft (alert RefreshReuseSpike).",
                "auth_refreshes_total",
                "outcome",
                width=8,
                highlight=("^reuse_detected$",),
            )
        )
        .with_panel(
            per_second(
                "Rate-limit refusals by rule",
                "auth_rate_limit_refusals_total.",
                "auth_rate_limit_refusals_total",
                "rule",
                width=8,
            )
        )
        .with_panel(
            per_second(
                "Sessions created by kind",
                "auth_sessions_created_total: login, client_credentials.",
                "auth_sessions_created_total",
                "kind",
            )
        )
        .with_panel(
            per_second(
                "Sessions ended by cause",
                "auth_sessions_ended_total; theft (red): reuse, another key's DPoP proof, "
                "a context change under `revoke`.",
                "auth_sessions_ended_total",
                "cause",
                highlight=("^theft$",),
            )
        )
    )
    passwords = (
        Section("Passwords (Argon2)")
        .with_panel(
            series(
                "Queue wait and hash duration",
                "Time a password check waited for a hashing slot (alert "
                "PasswordHashQueueSaturated above 0.5 s at p99) and one hash's time.",
                "s",
                quantiles("auth_password_hash_queue_wait_seconds", "job", "queue wait")
                + quantiles("auth_password_hash_duration_seconds", "job", "hash"),
            )
        )
        .with_panel(
            series(
                "Hashing slots and refusals",
                "Slots allowed at once, running now, the peak; refusals (503 "
                "overloaded) and abandoned checks per second.",
                "short",
                [
                    ("sum by (job) (auth_password_hash_slots)", "slots {{job}}"),
                    ("sum by (job) (auth_password_hashes_running)", "running {{job}}"),
                    ("max by (job) (auth_password_hashes_running_peak)", "peak {{job}}"),
                    (rate_by("auth_password_hash_refusals_total", "job"), "refused/s {{job}}"),
                    (rate_by("auth_password_hash_abandoned_total", "job"), "abandoned/s {{job}}"),
                ],
                highlight=("^refused/s ",),
            )
        )
    )
    stores = (
        Section("Redis and SQL")
        .with_panel(
            series(
                "auth-center Redis calls p99 by operation",
                "auth_redis_command_duration_seconds.",
                "s",
                [
                    (
                        "histogram_quantile(0.99, sum by (op, le) "
                        f"(rate(auth_redis_command_duration_seconds_bucket{RATE})))",
                        "{{op}}",
                    )
                ],
                width=6,
            )
        )
        .with_panel(
            series(
                "Redis errors",
                "Failed or timed-out calls: the auth-center's by operation "
                "(alert AuthRedisErrors), the verifiers' session checks (VerifierRedisErrors).",
                "ops",
                [
                    (
                        errors_by(
                            "auth_redis_errors_total", "auth_redis_command_duration_seconds", "op"
                        ),
                        "auth-center {{op}}",
                    ),
                    (rate_by("verifier_redis_errors_total", "job"), "verifier {{job}}"),
                ],
                width=6,
            )
        )
        .with_panel(
            series(
                "SQL queries p99 by operation",
                "auth_sql_query_duration_seconds.",
                "s",
                [
                    (
                        "histogram_quantile(0.99, sum by (op, le) "
                        f"(rate(auth_sql_query_duration_seconds_bucket{RATE})))",
                        "{{op}}",
                    )
                ],
                width=6,
            )
        )
        .with_panel(
            series(
                "SQL errors by operation",
                "auth_sql_errors_total (alert AuthSqlErrors).",
                "ops",
                [
                    (
                        errors_by(
                            "auth_sql_errors_total", "auth_sql_query_duration_seconds", "op"
                        ),
                        "{{op}}",
                    )
                ],
                width=6,
            )
        )
    )
    verifiers = (
        Section("Verifiers")
        .with_panel(
            per_second(
                "Tokens verified by outcome",
                "verifier_tokens_total in every service that embeds the verifier; revoked "
                "(red): a token whose session was deleted.",
                "verifier_tokens_total",
                "job, outcome",
                width=8,
                highlight=(" revoked$",),
            )
        )
        .with_panel(
            series(
                "Cache hit ratio",
                "Session cache (tracked mode) and signature cache hits over lookups.",
                "percentunit",
                [
                    ("job:verifier_session_cache_hit:ratio_rate5m", "session {{job}}"),
                    ("job:verifier_signature_cache_hit:ratio_rate5m", "signature {{job}}"),
                ],
                width=8,
            )
        )
        .with_panel(
            per_second(
                "Session checks sent to Redis",
                "verifier_redis_requests_total (EXISTS), what the session cache saves.",
                "verifier_redis_requests_total",
                "job",
                width=8,
            )
        )
        .with_panel(
            per_second(
                "Invalidation pushes",
                "verifier_invalidations_total: RESP3 pushes received from Redis.",
                "verifier_invalidations_total",
                "job",
                width=8,
            )
        )
        .with_panel(
            series(
                "Session-cache drops by cause",
                "verifier_cache_drops_total: disconnect, flush, heartbeat, replaced empty the "
                "cache (alert VerifierCacheDrops); staleness is one expired entry.",
                "short",
                [
                    (
                        f"sum by (job, cause) (increase(verifier_cache_drops_total{RATE}))",
                        "{{job}} {{cause}}",
                    )
                ],
                width=8,
            )
        )
        .with_panel(
            series(
                "Gateway decisions by outcome",
                "gateway_decisions_total, by dialect and outcome.",
                "ops",
                [
                    (
                        rate_by("gateway_decisions_total", "dialect, outcome"),
                        "{{dialect}} {{outcome}}",
                    )
                ],
                width=8,
            )
        )
    )
    revocation = (
        Section("Revocation")
        .with_panel(
            with_objective(
                series(
                    "Revocation lag p50 / p99",
                    "From a session's deletion in Redis to its refusal: the auth-center's "
                    "self-test and the verifiers' own measurement. Red line: the 5 ms "
                    "objective (alerts SelftestRevocationLagHigh, VerifierRevocationLagHigh).",
                    "s",
                    [
                        (f"job:{metric}:{q}_5m", f"{q} {source} {{{{job}}}}")
                        for source, metric in (
                            ("self-test", "auth_selftest_revocation_lag_seconds"),
                            ("verifier", "verifier_revocation_lag_seconds"),
                        )
                        for q in ("p50", "p99")
                    ],
                ),
                LAG_OBJECTIVE_SECONDS,
            )
        )
        .with_panel(
            series(
                "Self-test rounds by outcome",
                "auth_selftest_rounds_total, and missed acknowledgements (red, alert "
                "SelftestMissedAcks).",
                "short",
                [
                    (
                        f"sum by (outcome) (increase(auth_selftest_rounds_total{RATE}))",
                        "{{outcome}}",
                    ),
                    (
                        f"sum (increase(auth_selftest_missed_acks_total{RATE}))",
                        "missed acks",
                    ),
                ],
                width=6,
                highlight=("^missed acks$",),
            )
        )
        .with_panel(
            single(
                "Verifiers reporting in",
                "auth_selftest_verifiers: verifiers the self-test saw recently (alert "
                "SelftestNoVerifiers at 0).",
                "max by (job) (auth_selftest_verifiers)",
                "short",
                red_below=1,
            )
        )
    )
    board = (
        dash.Dashboard("Auth service")
        .uid("auth-service")
        .description(
            "The auth-center, its verifiers (demo-service, gateway) and revocation: "
            "generated by deploy/grafana/dashboard.py."
        )
        .tags(["auth"])
        .editable()
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .refresh("30s")
        .time("now-1h", "now")
        .timezone("browser")
        .with_variable(
            dash.DatasourceVariable("datasource").label("Data source").type("prometheus")
        )
    )
    ids = iter(range(1, 1000))
    for section in (http, sessions, passwords, stores, verifiers, revocation):
        board = board.with_row(dash.Row(section.title).id(next(ids)))
        for panel in section.panels:
            board = board.with_panel(panel.id(next(ids)))
    return board.build()


def main():
    json.dump(build(), sys.stdout, cls=JSONEncoder, sort_keys=True, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
