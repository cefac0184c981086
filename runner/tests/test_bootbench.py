"""boot-bench's summary: medians per phase and path, and the ratio of the totals."""
from ublkcheck.bootbench import render, summarize


def prof(total, setup):
    return {"firmware_and_setup": setup, "kernel_init": 3.0, "total": total}


def test_medians_and_the_ratio():
    bz = [(7.0, 1.7), (7.4, 1.8), (9.0, 1.7)]
    rows = [{"path": "bzimage", "boot": i, "profile": prof(t, s)} for i, (t, s) in enumerate(bz)]
    rows += [{"path": "pvh", "boot": i, "profile": prof(t, s)} for i, (t, s) in enumerate([(5.6, 0.4), (5.5, 0.3)])]
    rows.append({"path": "pvh", "boot": 3, "profile": None})  # a boot whose kernel printed nothing
    s = summarize(rows)
    assert s["paths"]["bzimage"] == {"boots": 3, "median": {"firmware_and_setup": 1.7, "kernel_init": 3.0,
                                                            "total": 7.4}, "min_total": 7.0, "max_total": 9.0}
    assert s["paths"]["pvh"]["boots"] == 2 and s["paths"]["pvh"]["median"]["total"] == 5.55
    assert s["ratio_to_bzimage"] == {"pvh": round(5.55 / 7.4, 3)}
    text = render(s)
    assert "firmware, the kernel's setup and decompression" in text and "pvh / bzimage" in text


def test_a_lost_boot_is_not_the_measured_one():
    from ublkcheck.bootbench import complete
    assert complete([{"firmware_and_setup": 1.5, "total": 1.5}, {"first_test": 0.1, "total": 5.9}]) == \
        {"first_test": 0.1, "total": 5.9}
    assert complete([None]) is None


def test_one_path_alone_has_no_ratio():
    s = summarize([{"path": "pvh", "boot": 1, "profile": prof(5.0, 0.4)}])
    assert "ratio_to_bzimage" not in s and "bzimage" not in s["paths"]
