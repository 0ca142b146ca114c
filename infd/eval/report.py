"""The evaluation report: ``results.md`` (Markdown tables), ``results.json`` and PNG line plots.

``results`` is the dict of ``run.evaluate`` (JSON-ready: string keys, floats). Plots are drawn with
Pillow (no plotting library needed): one line per method, x at the measured values.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from ..atomic import atomic_path

COLORS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (255, 127, 14), (148, 103, 189), (140, 86, 75)]
METRICS = {"psnr": "PSNR (dB, higher is better)", "ssim": "SSIM (higher is better)",
           "lpips": "LPIPS (lower is better)"}


def _fmt(metric: str, value: float) -> str:
    return f"{value:.2f}" if metric in ("psnr", "fid", "scale_consistency") else f"{value:.4f}"


def format_table(table: dict[int, dict[str, float]]) -> str:
    """A Markdown table of ``recon.evaluate_autoencoder``'s result: one row per size."""
    present = set().union(*table.values())
    cols = [c for c in ("psnr", "psnr_bicubic", "psnr_own_bicubic", "ssim", "ssim_bicubic", "lpips", "lpips_bicubic",
                        "lpips_own_bicubic", "colour_error", "edge_error_ratio", "scale_consistency") if c in present]
    lines = ["| size | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for s, row in table.items():
        lines.append(f"| {s} | " + " | ".join("-" if c not in row else f"{row[c]:.4f}" if "lpips" in c or "ssim" in c
                                              else f"{row[c]:.2f}" for c in cols) + " |")
    return "\n".join(lines)


def sr_tables(sr: dict) -> list[str]:
    """One Markdown table per metric: rows are scales, columns the methods."""
    first = next(iter(sr.values()))
    methods = list(first["methods"])
    lines = []
    for metric, title in METRICS.items():
        if metric not in first["methods"][methods[0]]:
            continue
        lines += [f"### {title}", "", "| scale | output | " + " | ".join(methods) + " |",
                  "|---" * (len(methods) + 2) + "|"]
        for scale, row in sr.items():
            cells = [_fmt(metric, row["methods"][m][metric]) for m in methods]
            lines.append(f"| {scale}x | {row['size']} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def _part(fid: dict, key: str) -> dict | None:
    """``fid[key]`` if it was measured: an absent part is ``None``, which ``_unnull`` reads back as ``inf``."""
    value = fid.get(key)
    return value if isinstance(value, dict) else None


def crops_text(fid: dict) -> str:
    """"P px crops", with the count per image when there are several (``--patch-crops``)."""
    crops = fid.get("patch_crops", 1)
    return f"{fid['patch']} px crops" + (f" ({crops} per image)" if crops > 1 else "")


def _sample_metrics(fid: dict) -> list[tuple[str, float | None]]:
    """``(name, value)`` of every sample metric of one ``evaluate_fid`` result, in table order."""
    rows = [(f"FID, whole images at {fid['full_size']}", fid["fid"]),
            (f"KID x 1000, whole images at {fid['full_size']}", None if fid.get("kid") is None else 1000 * fid["kid"])]
    for size, value in fid["patch_fid"].items():
        pk = fid.get("patch_kid", {}).get(size)
        rows += [(f"patch-FID, {crops_text(fid)} of {size} renders", value),
                 (f"patch-KID x 1000, {crops_text(fid)} of {size} renders", None if pk is None else 1000 * pk)]
    mem = _part(fid, "memorisation")
    rows.append(("memorisation ratio (1 = as far from training as held-out photos)", mem["ratio"] if mem else None))
    if mem and "ratio_within" in mem:
        rows.append(("memorisation ratio within the set (1 = as far as a training photo from the others)",
                     mem["ratio_within"]))
    rec = _part(fid, "memorisation_reconstructed")
    if rec:
        rows.append(("memorisation ratio among renders (vs reconstructed views; 1 = as far as held-out reconstructions)",
                     rec["ratio"]))
    refs = _part(fid, "references")
    if refs:
        kid = refs["kid"]
        rows += [("KID x 1000 of held-out images reconstructed by its autoencoder (reference)",
                  1000 * kid["heldout_reconstructed"]),
                 ("KID x 1000 of the real views reconstructed by its autoencoder (floor)",
                  1000 * kid["train_reconstructed"])]
        for size, value in kid.get("heldout_reconstructed_patch", {}).items():
            rows.append((f"patch-KID x 1000 of held-out crops reconstructed at {size} (reference)", 1000 * value))
    return rows


def fid_compare_lines(results: dict) -> list[str]:
    """The main bundle's sample metrics next to each compared bundle's (same seeds, real and held-out
    features), with the ratio main / other (below 1: the main bundle is better, except memorisation)."""
    others = results["fid_compare"]
    main = _sample_metrics(results["fid"])
    header = f"| metric | {results['fid_label']} |" + "".join(f" {label} | ratio |" for label in others)
    lines = [f"Same protocol for every bundle: {results['fid']['num_samples']} samples each (seeds "
             f"{results['fid']['seeds']}), the same real and held-out features; ratio = "
             f"{results['fid_label']} / the other.", "", header, "|---|---|" + "---|---|" * len(others)]

    def cell(value):
        return "-" if value is None else f"{value:.3f}" if abs(value) < 10 else f"{value:.2f}"

    columns = {label: dict(_sample_metrics(fid)) for label, fid in others.items()}
    for name, value in main:
        row = f"| {name} | {cell(value)} |"
        for label in others:
            other = columns[label].get(name)
            ratio = value / other if value is not None and other else None
            row += f" {cell(other)} | {cell(ratio)} |"
        lines.append(row)
    return lines + [""]


def sample_labels_text(fid: dict) -> str:
    """How the samples were labelled: per-label counts, one class, or unconditional (``None`` may read
    back as ``inf``, ``_unnull``)."""
    labels, label = fid.get("sample_labels"), fid.get("class_label")
    if isinstance(labels, dict) and labels:
        counts = ", ".join(f"{n} of label {k}" for k, n in labels.items())
        return f"labels of the training photos in turn: {counts}"
    if isinstance(label, int):
        return f"class {label}"
    return "unconditional"


def fid_lines(fid: dict) -> list[str]:
    views = fid.get("real_views", 0)
    real = (f"{fid.get('num_real_images', fid['num_real'])} real views ({views} per photo of {fid['num_real']})"
            if views else f"{fid['num_real']} real photos")
    lines = [f"{fid['num_samples']} samples (seeds {fid['seeds']}, {fid['sampler']}, {fid['steps']} steps, "
             f"{sample_labels_text(fid)}) vs {real}; features: {fid['extractor']}; matrix square root: {fid['sqrtm']}.", "",
             "| feature set | FID | KID x 1000 |", "|---|---|---|"]
    kid = fid.get("kid")
    kid_text = "-" if kid is None else f"{1000 * kid:.2f} +- {1000 * fid.get('kid_std', 0.0):.2f}"
    lines.append(f"| whole images at {fid['full_size']} | {fid['fid']:.2f} | {kid_text} |")
    for size, value in fid["patch_fid"].items():
        pk = fid.get("patch_kid", {}).get(size)
        lines.append(f"| {crops_text(fid)} of {size} renders | {value:.2f} | "
                     f"{'-' if pk is None else f'{1000 * pk:.2f}'} |")
    mem = _part(fid, "memorisation")
    if mem:
        lines += ["", f"Memorisation: median feature distance to the nearest training image {mem['sample_to_train']:.2f} "
                      f"for samples, {mem['heldout_to_train']:.2f} for {mem['num_heldout']} held-out real images: "
                      f"ratio {mem['ratio']:.3f} (well below 1 = samples copy training images)"]
        if "ratio_within" in mem:
            lines[-1] += (f"; a training image to the nearest image of another training photo "
                          f"{mem['train_to_other_photos']:.2f}: ratio {mem['ratio_within']:.3f}")
        rec = _part(fid, "memorisation_reconstructed")
        if rec:
            lines[-1] += (f". Among renders (samples and held-out images reconstructed by the autoencoder, both vs "
                          f"the real views' reconstructions): {rec['sample_to_train']:.2f} and "
                          f"{rec['heldout_to_train']:.2f}, ratio {rec['ratio']:.3f}")
            if "ratio_within" in rec:
                lines[-1] += f", within the set {rec['ratio_within']:.3f}"
        lines += nearest_lines(fid)
    if _part(fid, "references"):
        lines += [""] + reference_lines(fid)
    lines += ["", f"Scale consistency of the samples (PSNR of the {2 * fid['full_size']} render downsampled to "
                  f"{fid['full_size']} vs the {fid['full_size']} render): {fid['sample_scale_consistency']:.2f} dB", ""]
    if fid["num_samples"] < 2048 or fid["num_real"] < 2048:
        lines += ["Fewer than 2048 images per set: the covariances are rank-deficient and these FIDs are only "
                  "comparable with runs of the same sizes, not with published numbers.", ""]
    return lines


def nearest_lines(fid: dict) -> list[str]:
    """Where the picture of the nearest samples is and what its pairs are (``run.evaluate_fid``'s ``nearest``)."""
    near = _part(fid, "nearest")
    if not near:
        return []
    pairs = ", ".join(f"seed {seed} ~ photo {photo} view {view} ({ratio:.2f})" for seed, photo, view, ratio in
                      zip(near["seeds"], near["train_photo"], near["train_view"], near["ratio"]))
    return ["", f"`{near['file']}`: the {len(near['seeds'])} samples nearest to a training view, each beside that "
                f"view, nearest first (the distance over the held-out median): {pairs}."]


REFERENCE_SETS = {"heldout": "held-out real images", "heldout_reconstructed": "the same, reconstructed by the "
                  "autoencoder", "train_reconstructed": "the real views reconstructed by the autoencoder (floor)"}


def reference_lines(fid: dict) -> list[str]:
    """The samples' metrics next to those of the reference sets (``run.sample_references``), all vs the same
    real set; FID of the first N samples where N is the held-out count (FID's bias depends on N)."""
    refs, first = fid["references"], _part(fid, "fid_first_n")
    sizes = list(fid["patch_fid"])
    header = "| set | images | FID | KID x 1000 |" + "".join(f" patch-FID @{R} | patch-KID x 1000 @{R} |" for R in sizes)
    lines = [f"What these compare with (all vs the same real set; the whole images at {fid['full_size']}, "
             f"{crops_text(fid)} at each render size; a reconstructed crop is the photo's square encoded at the "
             "input size and rendered at the render size, as a sample is):", "", header,
             "|---|---|---|---|" + "---|---|" * len(sizes)]

    def cell(value, scale=1.0):
        return "-" if value is None else f"{scale * value:.2f}"

    lines.append(f"| samples | {fid['num_samples']} | {cell(fid['fid'])} | {cell(fid['kid'], 1000)} |" + "".join(
        f" {cell(fid['patch_fid'][R])} | {cell(fid['patch_kid'].get(R), 1000)} |" for R in sizes))
    if first:
        lines.append(f"| samples, the first {first['count']} | {first['count']} | {cell(first['fid'])} | - |" + "".join(
            f" {cell(first['patch_fid'].get(R))} | - |" for R in sizes))
    for name, text in REFERENCE_SETS.items():
        kid, fr = refs["kid"], refs["fid"]
        lines.append(f"| {text} | {refs['counts'][name]} | {cell(fr[name])} | {cell(kid[name], 1000)} |" + "".join(
            f" {cell(fr.get(name + '_patch', {}).get(R))} | {cell(kid.get(name + '_patch', {}).get(R), 1000)} |"
            for R in sizes))
    return lines + ["", "Held-out real images: what a prior that generalises rather than copies can reach; "
                        "reconstructed: the same through this autoencoder's decoder and renderer; the floor: what a "
                        "prior that had learnt the training latents exactly would reach."]


def sampling_curve_lines(curve: list[dict]) -> list[str]:
    """One row per way of sampling the same prior: quality against the sampler's time per sample."""
    sizes = list(curve[0]["patch_fid"])
    lines = [f"The same prior, {curve[0]['num_samples']} samples (seeds {curve[0]['seeds']}) per row, the same real "
             "sets; sampler time = the sampler's seconds per sample on this device (not the decoder or renders).", "",
             "| sampler | steps | cfg scale | sampler s / sample | KID x 1000 | FID |" +
             "".join(f" patch-KID x 1000 @{R} | patch-FID @{R} |" for R in sizes) + " memorisation ratio |",
             "|---|---|---|---|---|---|" + "---|---|" * len(sizes) + "---|"]
    for row in curve:
        mem = _part(row, "memorisation")
        eta = row.get("eta")  # None: the bundle's (DDIM's eta; the other samplers have none)
        sampler = row["sampler"] if eta is None else f"{row['sampler']} (eta {eta:g})"
        lines.append(f"| {sampler} | {row['steps']} | {row['cfg_scale']:g} | "
                     f"{row.get('sampler_seconds_per_sample', float('nan')):.3f} | {1000 * row['kid']:.2f} "
                     f"+- {1000 * row['kid_std']:.2f} | {row['fid']:.2f} |" + "".join(
                         f" {1000 * row['patch_kid'][R]:.2f} | {row['patch_fid'][R]:.2f} |" for R in sizes) +
                     f" {'-' if not mem else format(mem['ratio'], '.3f')} |")
    return lines + [""]


def _ratio(value) -> str:
    """A cell-border ratio: ``n/a`` when there is nothing to compare (``nan``, ``null`` in results.json)."""
    return "n/a" if value is None or value != value else f"{value:.2f}"


def zoom_lines(zoom: dict) -> list[str]:
    """The cell-border ratio per magnification and the frame figures (``infd.eval.zoom``)."""
    lines = [f"Latents: seed {zoom['seed']} ({zoom['sampler']}, {zoom['steps']} steps, for a model with a prior; "
             "N(0, I) otherwise). Cell-border ratio: mean |neighbour difference| across field-cell borders / "
             "inside cells, in a centred window (1.0: no visible cell structure; n/a at 1x, where every pair "
             "crosses a border). Cell-phase contrast: the largest / smallest mean |neighbour difference| over 8 "
             "positions in the cell (1.0: nothing repeats at the cell period; n/a below 2 px a cell).", ""]
    if zoom["ratio"]:
        lines += ["| magnification | virtual size | window | horizontal | vertical | mean | cell-phase contrast |",
                  "|---|---|---|---|---|---|---|"]
        for m, row in zoom["ratio"].items():
            (H, W), (h, w) = row["size"], row["window"]
            lines.append(f"| {m}x | {W}x{H} | {w}x{h} | {_ratio(row['horizontal'])} | {_ratio(row['vertical'])} | "
                         f"{_ratio(row['mean'])} | {_ratio(row.get('phase', math.nan))} |")
        lines.append("")
    if zoom["frame"]:
        lines += [f"Frame: {zoom['frame_samples']} samples (seeds from {zoom['seed']}); d01 / d12: mean |colour "
                  "difference| of the image sides' outermost 8 px ring vs the next ring / of the next two rings.", "",
                  "| size | d01 | d12 | no frame (d01 <= d12) |", "|---|---|---|---|"]
        for size, row in zoom["frame"].items():
            lines.append(f"| {size} | {row['d01']:.4f} | {row['d12']:.4f} | {'yes' if row['no_frame'] else 'no'} |")
        lines.append("")
    return lines


def _unnull(value):
    """JSON's ``null`` back to ``inf`` (the only non-finite metric value: PSNR of identical images)."""
    if isinstance(value, dict):
        return {k: _unnull(v) for k, v in value.items()}
    return math.inf if value is None else value


def format_markdown(results: dict) -> str:
    """The whole report as Markdown (from ``evaluate``'s dict, or from ``results.json`` read back)."""
    lines = ["# infd evaluation", "", *format_sections(results, "##")]
    plots = results.get("plots", [])
    if plots:
        lines += ["## Plots", ""] + [f"![{Path(p).stem}]({Path(p).name})" for p in plots] + [""]
    return "\n".join(lines)


def format_sections(results: dict, level: str = "##") -> list[str]:
    """The report's lines without its title and plots: what it measured on what, then one section per part
    (headings at ``level``)."""
    results = {**results, **{k: _unnull(results[k]) for k in ("reconstruction", "sr", "fid") if k in results}}
    n = results["num_photos"]
    lines = [f"Checkpoint `{results['checkpoint']}` ({results['kind']}, encoder input {results['encoder_size']}), "
             f"{n} held-out photo{'s' if n != 1 else ''} from `{results['data']}`, device {results['device']}.", ""]
    if "reconstruction" in results:
        lines += [f"{level} Reconstruction", "",
                  "Encoder input = photo resized to the input size; render at each size vs the photo resized to it. "
                  "`scale_consistency`: PSNR (dB) of the render at 2x the size downsampled to the size vs the "
                  "render at the size. `*_own_bicubic`: the model's own render at the encoder size, upsampled (bicubic). "
                  "`colour_error`: colour cast, |mean of a channel - its mean in the photo| in 8-bit levels, "
                  "averaged over the channels. `edge_error_ratio`: mean error on the outermost field cell of every "
                  "side / the same inside (1 = no frame).", "",
                  format_table({int(k): v for k, v in results["reconstruction"].items()}), ""]
    if "sr" in results:
        lines += [f"{level} Arbitrary-scale super-resolution", "",
                  "Ground truth = photo resized to scale x input size; input = ground truth downsampled to the "
                  "input size; each model encodes the input and renders at the ground truth's size.", ""]
        lines += sr_tables(results["sr"])
    if "fid" in results:
        lines += [f"{level} FID and patch-FID", ""] + fid_lines(results["fid"])
    if results.get("sampling_curve"):
        lines += [f"{level} Quality against sampling time", ""] + sampling_curve_lines(results["sampling_curve"])
    if results.get("fid_compare"):
        lines += [f"{level} Sample metrics against the compared bundles", ""] + fid_compare_lines(results)
    if "zoom" in results:
        lines += [f"{level} Continuity at every magnification and the frame", ""] + zoom_lines(results["zoom"])
    return lines


README_START, README_END = "<!-- eval-results:start -->", "<!-- eval-results:end -->"


def marked_section(text: str, path: str | Path = "the file") -> tuple[int, int]:
    """``(start, end)`` offsets of the text between the ``README_START`` and ``README_END`` markers;
    ``ValueError`` unless each is there exactly once, start first."""
    if text.count(README_START) != 1 or text.count(README_END) != 1 or text.index(README_START) > text.index(README_END):
        raise ValueError(f"{path} needs one '{README_START}' line and one '{README_END}' line after it "
                         "around the generated results")
    return text.index(README_START) + len(README_START), text.index(README_END)


def update_readme(path: str | Path, results: dict, command: str) -> Path:
    """Replace the marked section of ``path`` (e.g. README.md) with the report's tables and the command
    that made them; atomic, and everything outside the markers is kept byte for byte."""
    path = Path(path)
    text = path.read_text()
    start, end = marked_section(text, path)
    body = [f"Generated by `{command}`:", "", *format_sections(results, "####")]
    with atomic_path(path) as tmp:
        tmp.write_text(text[:start] + "\n" + "\n".join(body).rstrip("\n") + "\n" + text[end:])
    return path


def _ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values covering ``[lo, hi]``."""
    if hi <= lo:
        hi, lo = lo + 1, lo - 1
    raw = (hi - lo) / count
    step = 10 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 2.5, 5, 10) if m * step >= raw)
    first = math.floor(lo / step) * step
    return [first + i * step for i in range(int(math.ceil((hi - first) / step)) + 1)]


MAX_DATA_TICKS = 12


def line_plot(path: str | Path, series: dict[str, list[tuple[float, float]]], title: str, x_label: str,
              y_label: str, log_x: bool = False, size: tuple[int, int] = (720, 450)) -> Path:
    """A PNG line plot, one line with markers per series ``{name: [(x, y), ...]}``; x ticks at the data
    (on a log axis with ``log_x``, e.g. for sizes that double), or round ticks when there are more than
    ``MAX_DATA_TICKS`` distinct x (training curves). Non-finite values are left out."""
    points = [p for values in series.values() for p in values if math.isfinite(p[1])]
    if not points:
        raise ValueError(f"nothing to plot for {title!r}")
    font = ImageFont.load_default(size=14)
    W, H = size
    left, right, top, bottom = 70, 20, 40, 60
    warp = math.log if log_x else float
    xs = sorted({x for x, _ in points})
    y_ticks = _ticks(min(y for _, y in points), max(y for _, y in points))
    x_lo, x_hi = (warp(xs[0]) - 0.5, warp(xs[-1]) + 0.5) if len(xs) == 1 else (warp(xs[0]), warp(xs[-1]))
    x_ticks = xs
    if len(xs) > MAX_DATA_TICKS and not log_x:
        x_ticks = _ticks(xs[0], xs[-1], 6)
        x_lo, x_hi = x_ticks[0], x_ticks[-1]
    y_lo, y_hi = y_ticks[0], y_ticks[-1]

    def to_px(x, y):
        px = left + (warp(x) - x_lo) / (x_hi - x_lo) * (W - left - right)
        return px, top + (y_hi - y) / (y_hi - y_lo) * (H - top - bottom)

    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    draw.text((W / 2, 10), title, fill="black", font=font, anchor="mt")
    for y in y_ticks:
        py = to_px(xs[0], y)[1]
        draw.line([(left, py), (W - right, py)], fill=(225, 225, 225))
        draw.text((left - 6, py), f"{y:g}", fill="black", font=font, anchor="rm")
    for x in x_ticks:
        px = to_px(x, y_lo)[0]
        draw.line([(px, H - bottom), (px, H - bottom + 5)], fill="black")
        draw.text((px, H - bottom + 8), f"{x:g}", fill="black", font=font, anchor="mt")
    draw.rectangle([left, top, W - right, H - bottom], outline="black")
    draw.text(((left + W - right) / 2, H - 8), x_label, fill="black", font=font, anchor="mb")
    draw.text((8, top - 8), y_label, fill="black", font=font, anchor="lb")
    for k, (name, values) in enumerate(series.items()):
        color = COLORS[k % len(COLORS)]
        pixels = [to_px(x, y) for x, y in sorted(values) if math.isfinite(y)]
        if len(pixels) > 1:
            draw.line(pixels, fill=color, width=2)
        for px, py in pixels:
            draw.ellipse([px - 4, py - 4, px + 4, py + 4], fill=color)
        draw.line([(W - right - 150, top + 12 + 18 * k), (W - right - 125, top + 12 + 18 * k)], fill=color, width=3)
        draw.text((W - right - 120, top + 12 + 18 * k), name, fill="black", font=font, anchor="lm")
    path = Path(path)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
    return path


def make_plots(results: dict, out_dir: str | Path) -> list[Path]:
    """PNG plots of the results: reconstruction PSNR per size, SR metrics per scale, patch-FID per size."""
    out_dir = Path(out_dir)
    paths = []
    if "reconstruction" in results:
        rec = {int(k): v for k, v in results["reconstruction"].items()}
        series = {"model": [(s, r["psnr"]) for s, r in rec.items()],
                  "bicubic": [(s, r["psnr_bicubic"]) for s, r in rec.items()]}
        paths.append(line_plot(out_dir / "reconstruction_psnr.png", series, "Reconstruction vs output size",
                               "output size (px)", "PSNR (dB)", log_x=True))
    if "sr" in results:
        sr = results["sr"]
        first = next(iter(sr.values()))["methods"]
        for metric, label in METRICS.items():
            if metric not in next(iter(first.values())):
                continue
            series = {m: [(float(s), row["methods"][m][metric]) for s, row in sr.items()] for m in first}
            paths.append(line_plot(out_dir / f"sr_{metric}.png", series, f"Super-resolution: {label}",
                                   "scale", metric.upper()))
    if "fid" in results and results["fid"]["patch_fid"]:
        fid = results["fid"]
        series = {f"patch-FID ({fid['patch']} px)": [(int(s), v) for s, v in fid["patch_fid"].items()]}
        paths.append(line_plot(out_dir / "patch_fid.png", series, "patch-FID vs render size", "render size (px)",
                               "FID", log_x=True))
    return paths


def json_safe(value):
    """``value`` with non-finite floats (the PSNR of identical images is inf) as ``None`` (JSON null)."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_report(results: dict, out_dir: str | Path) -> dict[str, Path]:
    """Write ``results.json``, the plots and ``results.md`` into ``out_dir``; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = make_plots(results, out_dir)
    results = {**results, "plots": [p.name for p in plots]}
    paths = {"json": out_dir / "results.json", "markdown": out_dir / "results.md"}
    with atomic_path(paths["json"]) as tmp:
        tmp.write_text(json.dumps(json_safe(results), indent=2, allow_nan=False) + "\n")
    with atomic_path(paths["markdown"]) as tmp:
        tmp.write_text(format_markdown(results) + "\n")
    return {**paths, **{p.stem: p for p in plots}}
