"""The report's drawings: utilisation.png (the resources used against the part) and layers.png
(each layer's latency, DSP and LUT), as matplotlib Figures drawn on an Agg canvas (no pyplot, so
no global backend state); a test double's figures are stamped as such (standin.py)."""

from .. import standin


def render_layers_png(report: dict) -> bytes:
    return standin.png(layers_figure(report), report.get("produced_by_test_double", False))


def layers_figure(report: dict):
    """Per-layer bars: worst-case latency, DSP and LUT of each instance of the top, as a Figure."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    layers = report.get("layers") or []
    # Long instance names (hls4ml's grp_dense_latency_0_0_..._1_fu_97) cut in the middle: their ends differ.
    names = [(n[:20] + "..." + n[-18:]) if len(n) > 41 else n for n in (layer["instance"] for layer in layers)]
    fig = Figure(figsize=(11, min(max(0.32 * len(layers) + 1.8, 3.0), 40)))
    FigureCanvasAgg(fig)
    panels = (("latency, worst (cycles)", [layer["latency_max"] for layer in layers]),
              ("DSP", [layer["resources"]["DSP"] for layer in layers]),
              ("LUT", [layer["resources"]["LUT"] for layer in layers]))
    if not layers:
        ax = fig.add_subplot()
        ax.text(0.5, 0.5, f"no instance of {report['top']} in the synthesis report", ha="center", va="center",
                transform=ax.transAxes)
        ax.set_axis_off()
    else:
        axes = fig.subplots(1, len(panels), sharey=True)
        for ax, (label, values) in zip(axes, panels):
            ax.barh(range(len(layers)), [v or 0 for v in values], color="tab:blue")
            for y, v in enumerate(values):
                ax.text(v or 0, y, " n/a" if v is None else f" {v:,}", va="center", fontsize=7)
            ax.set_xlabel(label)
            ax.set_xlim(0, max([v or 0 for v in values] + [1]) * 1.3)  # room for the figures' labels
            ax.xaxis.set_major_locator(MaxNLocator(3, integer=True))  # few ticks: each costs a text layout
        axes[0].set_yticks(range(len(layers)), names, fontsize=7)
        axes[0].invert_yaxis()
    height = fig.get_figheight()
    fig.suptitle(f"{report['project']} per layer on {report['part']} ({report['tool']} estimates"
                 + (", laid down by a test double)" if report.get("produced_by_test_double") else ")"),
                 y=1 - 0.45 / height - (standin.STAMP_HEIGHT if report.get("produced_by_test_double") else 0))
    # Margins in inches, whatever the number of layers: tight_layout measures every label, slowly.
    standin.lay_out(fig, report.get("produced_by_test_double", False),
                    margins={"left": 0.3, "right": 0.97, "wspace": 0.25, "top": 1 - 0.8 / height,
                             "bottom": 0.6 / height})
    return fig


def render_utilisation_png(report: dict) -> bytes:
    return standin.png(utilisation_figure(report), report.get("produced_by_test_double", False))


def utilisation_figure(report: dict):
    """The resources used against the part as a matplotlib Figure."""
    # Figure + Agg canvas directly: no pyplot, so no global backend state is touched.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = list(report["resources"])
    known = [report["resources"][n]["percent"] for n in names]
    percents = [p or 0.0 for p in known]
    colours = ["tab:red" if p > 100 else "tab:blue" for p in percents]

    fig = Figure(figsize=(7, 0.5 * len(names) + 1.6))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.barh(names, percents, color=colours)
    ax.axvline(100, color="black", linestyle="--", linewidth=1, zorder=3)
    ax.invert_yaxis()
    ax.set_xlim(0, max(110.0, max(percents, default=0) * 1.1))
    ax.set_xlabel(f"% of available ({report['tool']} estimate"
                  + (", laid down by a test double)" if report.get("produced_by_test_double") else ")"))
    for y, (p, k) in enumerate(zip(percents, known)):
        ax.text(p, y, " n/a" if k is None else f" {k:.2f}%", va="center")
    ax.set_title(f"{report['project']} on {report['part']}")
    standin.lay_out(fig, report.get("produced_by_test_double", False))  # the test double's: stamped
    return fig
