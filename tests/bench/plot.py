#!/usr/bin/env python3
"""plot.py -- slay-bench JSON -> SVG and PNG plots, drawn by gnuplot (Debian:
gnuplot-nox). Python's standard library reads the JSON; gnuplot gets the data
inline.

  Every file name starts with the JSON file's name: OUTDIR/<run>_latency_vs_T_D32.svg, ...
  scaling JSON      latency_vs_T_D<D>.{svg,png}  log-log, one line per variant
                    memory_vs_T_D<D>.{svg,png}   log-log
  quality JSON      quality_vs_features_T<T>_D<D>.{svg,png}   rel L2 vs feature dim F (log-log)
  budget JSON       budget_error_vs_F.{svg,png}, budget_error_vs_latency.{svg,png} (Pareto front joined)

Usage: plot.py OUTDIR run1.json [run2.json ...]
"""
import json
import os
import subprocess
import sys

TERMINALS = {"svg": "svg size 900,560 dynamic noenhanced font 'Sans,12' background rgb 'white'",
             "png": "pngcairo size 900,560 noenhanced font 'Sans,11'"}


def gnuplot(outdir, name, title, xlabel, ylabel, series, logx=True, logy=True, points_only=False, extra=""):
    """series: [(label, [(x, y), ...], style or None)]; writes NAME.svg and NAME.png."""
    series = [(label, sorted(pts), style) for label, pts, style in series if pts]
    if not series:
        return []
    blocks, plots = [], []
    for i, (label, pts, style) in enumerate(series):
        blocks.append(f"$d{i} << EOD\n" + "\n".join(f"{x!r} {y!r}" for x, y in pts) + "\nEOD\n")
        style = style or ("points pt 7 ps 0.8" if points_only else "linespoints pt 7 ps 0.7 lw 2")
        plots.append(f"$d{i} using 1:2 with {style} title '{label}'")
    written = []
    for ext, terminal in TERMINALS.items():
        path = f"{outdir}{name}.{ext}"
        script = "".join(blocks) + "\n".join([
            f"set terminal {terminal}", f"set output '{path}'", f"set title '{title}'",
            f"set xlabel '{xlabel}'", f"set ylabel '{ylabel}'", "set grid", "set key outside right top",
            "set logscale x 2" if logx else "", "set logscale y" if logy else "", extra,
            "plot " + ", ".join(plots), "unset output", ""])
        subprocess.run(["gnuplot"], input=script, text=True, check=True)
        written.append(path)
    return written


def ok_rows(doc):
    return [r for r in doc["rows"] if r.get("status") == "ok" and r.get("role") != "reference"]


def subtitle(meta):
    return f"{meta['device']}, {meta['dtype']}, {meta['pass']}, B={meta['B']} H={meta['H']}"


def plot_scaling(doc, outdir):  # outdir: the file-name prefix
    meta, rows, out = doc["meta"], ok_rows(doc), []
    variants = list(dict.fromkeys(r["variant"] for r in doc["rows"]))
    for D in sorted({r["D"] for r in rows}):
        for key, name, ylabel in (("ms", "latency", "latency (ms, median)"), ("peak_mb", "memory", "memory (MB)")):
            series = [(v, [(r["T"], r[key]) for r in rows if r["variant"] == v and r["D"] == D], None) for v in variants]
            out += gnuplot(outdir, f"{name}_vs_T_D{D}", f"{name} vs T, D={D} ({subtitle(meta)})",
                           "sequence length T", ylabel, series)
    return out


def plot_quality(doc, outdir):
    meta, rows, out = doc["meta"], ok_rows(doc), []
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    for T, D in sorted({(r["T"], r["D"]) for r in rows}):
        series = [(v, [(max(r["feature_dim"], 1), r["rel_l2"]) for r in rows
                       if r["variant"] == v and r["T"] == T and r["D"] == D], None) for v in variants]
        out += gnuplot(outdir, f"quality_vs_features_T{T}_D{D}",
                       f"rel L2 vs yat_spherical, T={T} D={D} ({subtitle(meta)})", "feature dimension F",
                       "relative L2 error", series)
    return out


def plot_budget(doc, outdir):
    meta, rows = doc["meta"], ok_rows(doc)
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    out = gnuplot(outdir, "budget_error_vs_F", f"feature budget: rel L2 vs F ({subtitle(meta)}, T={meta['T']})",
                  "feature dimension F = R*M*P", "relative L2 error",
                  [(v, [(r["feature_dim"], r["rel_l2"]) for r in rows if r["variant"] == v], None) for v in variants],
                  points_only=True)
    front = [(r["ms"], r["rel_l2"]) for r in rows if r.get("pareto_latency")]
    series = [(v, [(r["ms"], r["rel_l2"]) for r in rows if r["variant"] == v], "points pt 7 ps 0.8")
              for v in variants] + [("Pareto front", front, "lines lw 2 dt 2 lc rgb 'black'")]
    out += gnuplot(outdir, "budget_error_vs_latency", f"feature budget: rel L2 vs latency ({subtitle(meta)})",
                   "latency (ms)", "relative L2 error", series)
    return out


def main(argv):
    if len(argv) < 3 or argv[1] in ("-h", "--help"):
        print(__doc__)
        return 0 if len(argv) > 1 and argv[1] in ("-h", "--help") else 2
    outdir = argv[1]
    os.makedirs(outdir, exist_ok=True)  # plotters get OUTDIR/<json name>_ as their prefix
    plotters = {"scaling": plot_scaling, "quality": plot_quality, "budget": plot_budget}
    for path in argv[2:]:
        with open(path) as f:
            doc = json.load(f)
        mode = doc.get("meta", {}).get("mode")  # compare_torch.py and max-context JSON have no plot
        plotter = plotters.get(mode)
        if plotter is None:
            print(f"plot.py: {path}: nothing to plot (mode {mode})")
            continue
        # Plot names start with the JSON's name, so several runs of one mode do not collide.
        prefix = os.path.join(outdir, os.path.splitext(os.path.basename(path))[0] + "_")
        for written in plotter(doc, prefix):
            print(f"plot.py: wrote {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
