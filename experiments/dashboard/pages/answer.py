"""A comparison's answer as the Compare page shows it."""

from __future__ import annotations

import solara
import solara.lab

from experiments.dashboard import service as svc
from experiments.dashboard.ui import escape, table_html
from sim import api


@solara.component
def AnswerView(answer: svc.Answer):
    solara.Text(f"{answer.config.scenario.name}: {len(answer.config.regimes)} regimes x "
                f"{api.replicates_text(answer.config)}, engine {answer.config.engine}; seeds from "
                f"{answer.config.seed}", classes=["tt-answer"])
    note = (f"; at equal spend: every regime capped at {answer.at_spend}'s yearly spend, "
            f"{answer.equal.budget:,.0f} yuan" if answer.equal is not None else "")
    solara.Markdown(f"#### Each regime against baseline, mean [95% interval]{note}")
    if len(answer.headline):
        table_html(answer.headline, "headline", index=False)
    else:
        solara.Text("(no regime besides baseline)")
    if answer.note:
        solara.Info(answer.note)
    solara.Image(answer.figure, format="png", width="100%")
    with solara.lab.Tabs():
        for label, tables in (("Comparison", answer.tables), ("At equal spend", answer.equal_tables)):
            if not tables:
                continue
            with solara.lab.Tab(label):
                for k, (title, df) in enumerate(tables):
                    solara.Markdown("#### " + title.replace("\n", "  \n"))
                    table_html(df, f"{'equal-' if label != 'Comparison' else ''}table-{k}")
    solara.Markdown("#### Reproduce on the command line")
    solara.HTML(tag="div", unsafe_innerHTML=escape(answer.command), classes=["tt-command"])
    with solara.Row(classes=["tt-downloads"], style={"flex-wrap": "wrap"}):
        for name, make in answer.files().items():
            solara.FileDownload(make, filename=name, label=name,
                                mime_type="text/csv" if name.endswith(".csv") else "application/octet-stream")
