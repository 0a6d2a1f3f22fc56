"""The Pareto plot recommends only gate-passed rows, reads at a glance, and the ISA is recorded."""

from __future__ import annotations

import itertools

import pytest

from device_bench.results import Results


def _row(artifact, ms, value, role="artifact", verify="pass", threads=1, device="hostA"):
    return {"artifact": artifact, "format": "onnx", "precision": "int8" if "int8" in artifact else "fp32",
            "role": role, "verify": verify, "status": "ok", "threads": threads, "device": device,
            "latency": {"median_ms": ms, "p90_ms": ms * 1.1},
            "metrics": {"balanced_accuracy": {"value": value, "low": value - 0.02, "high": value + 0.02}}}


def issue_rows():
    """The issue's case: onnx_int8 failed its gate yet would dominate; a peer is faster still."""
    return [_row("pytorch_cpu_fp32", 12.9, 0.80, role="original", verify=None),
            _row("onnx_fp32", 4.34, 0.80), _row("tflite_fp32", 5.27, 0.80),
            _row("tflite_int8", 2.74, 0.79), _row("onnx_int8", 2.2, 0.795, verify="fail"),
            _row("tflite_fp16", 5.1, 0.80, verify="skipped"), _row("peer_onnx_int8", 1.9, 0.79, role="peer", verify=None)]


def test_front_runs_only_through_gate_passed_rows():
    from edgederm.pareto import eligible, front_members
    from edgederm.report import pareto_front

    rows = issue_rows()
    points = [(r["latency"]["median_ms"], r["metrics"]["balanced_accuracy"]["value"]) for r in rows]
    names = {rows[i]["artifact"] for i in front_members(rows, points, pareto_front)}
    assert names == {"onnx_fp32", "tflite_int8"}  # onnx_fp32 dominates the original (same accuracy, faster)
    # the unfiltered front would have recommended the failed file and the ungated peer
    assert {"onnx_int8", "peer_onnx_int8"} <= {rows[i]["artifact"] for i in pareto_front(points)}
    for i in front_members(rows, points, pareto_front):
        assert rows[i]["verify"] in ("pass", None) and rows[i]["role"] != "peer"
    assert [eligible(r) for r in rows] == [True, True, True, True, False, False, False]


def test_latency_ticks_are_readable_numbers():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edgederm.pareto import latency_ticks

    fig, ax = plt.subplots()
    ax.set_xscale("log")
    for lo, hi, want in ((2.0, 13.0, [2, 3, 5, 7, 10]), (3.0, 7.0, None), (0.5, 120.0, None)):
        ax.set_xlim(lo, hi)
        ticks = latency_ticks(ax, lo, hi)
        assert len(ticks) >= 3 and all(lo <= t <= hi for t in ticks)
        labels = [ax.xaxis.get_major_formatter()(t, 0) for t in ticks]
        assert all("e" not in x and "^" not in x for x in labels)  # plain numbers, not 10^x
        if want:
            assert ticks == want
    plt.close(fig)


def test_labels_do_not_overlap_where_artifacts_cluster():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edgederm.pareto import place_labels

    fig, ax = plt.subplots(figsize=(7.5, 5.5), dpi=110)
    # eight artifacts in two tight clusters sharing one accuracy value: the layout that piled up
    points = [(4.3, 0.80), (4.4, 0.80), (4.5, 0.80), (5.2, 0.80), (5.3, 0.801), (2.7, 0.79), (2.75, 0.79), (12.9, 0.80)]
    for p in points:
        ax.plot(*p, "o")
    ax.set_xscale("log")
    ax.set_xlim(2, 15)
    ax.set_ylim(0.7, 0.9)
    texts = [f"artifact_{i}_fp32" for i in range(len(points))]
    boxes = place_labels(ax, points, texts)
    assert len(boxes) == len(points)
    frame = ax.get_window_extent(fig.canvas.get_renderer())
    for a, b in itertools.combinations(boxes, 2):
        assert not a.overlaps(b), (a, b)
    for b in boxes:
        assert frame.x0 <= b.x0 and b.x1 <= frame.x1 and frame.y0 <= b.y0 and b.y1 <= frame.y1
    assert len(ax.texts) == len(points)  # rejected candidates were removed
    plt.close(fig)


def test_report_plot_and_isa_grouping(tmp_path):
    from edgederm.report import device_columns, render

    rows = issue_rows() + [dict(r, device="hostB") for r in issue_rows()]
    res = Results(environments={"hostA": {"cpu_model": "A", "cpu_isa": {"label": "AVX2", "int8_dot": False}},
                                "hostB": {"cpu_model": "B", "cpu_isa": {"label": "AVX-512+VNNI", "int8_dot": True}}},
                  model={"name": "m", "task": "classification"}, data={"images": 10}, rows=rows)
    written = render(res, tmp_path)
    assert sorted(written["plotted"]) == sorted(r["artifact"] + " · " + r["device"] for r in rows)
    page = written["report.html"].read_text()
    assert "AVX2; no int8 dot product" in page and "AVX-512+VNNI; int8 dot products" in page
    devices, table = device_columns(res)
    assert devices == ["hostB", "hostA"]  # grouped by ISA label
    assert "ms · hostA [AVX2]" in table[0] and "ms · hostB [AVX-512+VNNI]" in table[0]


@pytest.mark.parametrize("flags,machine,label,dot", [
    ({"sse4_2", "avx", "avx2", "fma"}, "x86_64", "AVX2", False),
    ({"avx2", "avx512f", "avx512_vnni", "amx_int8", "amx_tile"}, "x86_64", "AVX-512+VNNI+AMX", True),
    ({"avx2", "avx_vnni"}, "x86_64", "AVX2+VNNI", True),
    ({"fp", "asimd"}, "aarch64", "NEON", False),
    ({"fp", "asimd", "asimddp", "i8mm"}, "aarch64", "NEON+dotprod+I8MM", True),
])
def test_isa_from_flags(flags, machine, label, dot):
    from device_bench.isa import from_flags

    isa = from_flags(flags, machine)
    assert isa["label"] == label and isa["int8_dot"] is dot


def test_isa_is_recorded_in_the_environment():
    from device_bench import environment

    text = open("/proc/cpuinfo").read() if __import__("os").path.exists("/proc/cpuinfo") else ""
    if "flags" not in text and "Features" not in text:
        pytest.skip("no /proc/cpuinfo flags on this machine")
    isa = environment.collect()["cpu_isa"]
    assert isa["label"] and isinstance(isa["int8_dot"], bool) and isa["features"]
