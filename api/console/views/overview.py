"""The overview: expiring certificates, issuance and revocations per day, quota left."""

from __future__ import annotations

from flask.typing import ResponseReturnValue

from api.console.charts import bar_chart
from api.console.routing import page, render
from api.console.views.reading import fresh
from domain.model.tokens import Role
from projections.readmodels.overview import overview as read_overview


@page("/", role=Role.AUDITOR)
def overview() -> ResponseReturnValue:
    found = fresh()
    figures = read_overview(found.read_models, found.service.clock())
    charts = (
        bar_chart(
            "Certificates expiring within",
            [(f"{days} d", count) for days, count in figures.expiring.items()],
        ),
        bar_chart("Issued per day", [(day.strftime("%m-%d"), n) for day, n in figures.issued]),
        bar_chart("Revoked per day", [(day.strftime("%m-%d"), n) for day, n in figures.revoked]),
        bar_chart("Quota left per intermediate", [(q.name, q.remaining) for q in figures.quota]),
    )
    return render("overview.html", figures=figures, charts=charts)
