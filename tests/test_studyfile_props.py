"""Study files: the minimum useful AUC, and random files that parse or fail with one clear line."""

import hashlib
import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qapbo.errors import QapboError, StudyFileError
from qapbo.records import DEFAULT_MIN_AUC, constraint_values
from qapbo.study.file import SECTIONS, load_study_file, parse_study

QAP = '\nname = "m"\n[qap]\nhidden = [8]\nprecisions = [6]\nmodes = ["ft"]\nschedule = [0.0, 0.5]\n'
SEARCH = '\n[search]\nn_trials = 2\n[search.space]\nbits = { choices = [4, 6] }\n'


def test_min_auc_defaults_above_chance_and_is_part_of_the_study():
    s = parse_study(QAP)
    assert s.min_auc == DEFAULT_MIN_AUC and 0.5 < DEFAULT_MIN_AUC < 0.6
    assert s.canonical["qap"]["min_auc"] == DEFAULT_MIN_AUC  # a changed min_auc is a changed QAP study
    s = parse_study(QAP + "[objectives]\nmin_auc = 0.7\n")
    assert s.min_auc == 0.7 and s.canonical["qap"]["min_auc"] == 0.7
    both = parse_study(QAP + SEARCH + "[objectives]\nmin_auc = 0.6\n")
    assert both.min_auc == 0.6 and both.section("objectives")["objectives"]["min_auc"] == 0.6


@pytest.mark.parametrize("extra,match", [
    ("[objectives]\nmin_auc = 1.5\n", r"min_auc 1.5 must lie in \[0, 1\)"),
    ("[objectives]\nmin_auc = 'high'\n", "min_auc' must be a number"),
    ("[objectives]\nconstraints = ['auc >= 0.9']\n", "constraints only applies to a \\[search\\]"),
])
def test_bad_min_auc_is_one_clear_error(extra, match):
    with pytest.raises(StudyFileError, match=match):
        parse_study(QAP + extra)


def test_qap_levels_below_min_auc_are_stored_infeasible(tmp_path):
    from qapbo.compare.report import compare
    from qapbo.compare.results import load_results
    from qapbo.study.qap import run_qap

    path = tmp_path / "m.toml"
    path.write_text(QAP + "[data]\nn_rows = 1000\n[train]\nepochs = 1\nbatch_size = 256\n"
                    "[objectives]\nmin_auc = 0.999\n")
    url = f"sqlite:///{tmp_path}/m.db"
    ostudy = run_qap(load_study_file(path), storage=url, progress="none")
    assert len(ostudy.trials) == 2
    for t in ostudy.trials:
        assert constraint_values(t) == pytest.approx({"min_auc": 0.999 - t.values[0]}) and t.values[0] < 0.999
    assert ostudy.best_trials == []  # Optuna itself keeps them off the front
    (r,) = load_results(url)
    cmp = compare([r])
    assert cmp.rows[0]["front_size"] == 0 and cmp.rows[0]["infeasible"] == 2 and cmp.rows[0]["hypervolume"] == 0
    assert "| m-qap | qap | 2 | 0 | 0 | 2 |" in cmp.to_markdown(wide=True)  # trained, stopped early, front, below


# --------------------------------------------------------------------------- property-based


def _toml(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    return "{ " + ", ".join(f"{k} = {_toml(x)}" for k, x in v.items()) + " }"


_scalars = st.one_of(st.integers(-3, 300), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
                     st.sampled_from(["tpe", "ft", "lt", "affine", "synthetic-jets", "table", "", "x/y", "6"]))
_values = st.one_of(_scalars, st.lists(_scalars, max_size=4),
                    st.dictionaries(st.sampled_from(["low", "high", "log", "choices", "per_layer"]),
                                    st.one_of(_scalars, st.lists(_scalars, max_size=3)), max_size=3))
_known = sorted({k for sec in SECTIONS.values() for k in sec} | {"name", "seed", "width", "bits", "typo"})


@st.composite
def study_texts(draw):
    top = {"name": draw(st.one_of(st.just("s"), _scalars))} if draw(st.booleans()) else {}
    top |= draw(st.dictionaries(st.sampled_from(["seed", "storage", "description", "typo"]), _scalars, max_size=2))
    lines = [f"{k} = {_toml(v)}" for k, v in top.items()]
    for sec in draw(st.lists(st.sampled_from([*SECTIONS, "search.space", "bogus"]), unique=True, max_size=4)):
        lines.append(f"[{sec}]")
        body = draw(st.dictionaries(st.sampled_from(_known), _values, max_size=4))
        lines += [f"{k} = {_toml(v)}" for k, v in body.items()]
    text = "\n".join(lines) + "\n"
    if draw(st.integers(0, 9)) == 0:  # now and then, broken TOML
        cut = draw(st.integers(0, len(text)))
        text = text[:cut] + draw(st.sampled_from(["= =", "[", '"', "\x00"])) + text[cut:]
    return text


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=study_texts())
def test_random_study_files_parse_or_fail_with_one_line(tmp_path, text):
    path = tmp_path / "s.toml"
    path.write_text(text)
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    try:
        s = load_study_file(path)
    except QapboError as exc:
        assert str(exc) and "\n" not in str(exc) and "Traceback" not in str(exc)
    else:
        assert s.qap is not None or s.search is not None
        assert 0.0 <= s.min_auc < 1.0
        json.dumps(s.canonical)  # storable as the study's config
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.toml"]


def test_a_study_stored_before_min_auc_resumes_under_the_default(tmp_path):
    import optuna

    from qapbo.records import ATTR_CONFIG, ATTR_FILE, ATTR_KIND
    from qapbo.study.storage import open_storage, open_study

    study = parse_study(QAP)
    rdb = open_storage(f"sqlite:///{tmp_path}/old.db")
    sections = ("data", "train", "qap")
    # what qapbo stored before it had min_auc (and while it kept the study file in user attributes)
    created = optuna.create_study(study_name="m-qap", storage=rdb, directions=["maximize", "minimize"])
    old = json.loads(json.dumps(study.section(*sections)))
    del old["qap"]["min_auc"]
    created.set_user_attr(ATTR_KIND, "qap")
    created.set_user_attr(ATTR_FILE, study.text)
    created.set_user_attr(ATTR_CONFIG, old)
    again = open_study(rdb, study, "qap", sections, ("maximize", "minimize"), "m-qap")
    assert again.user_attrs["qapbo_min_auc"] == DEFAULT_MIN_AUC
    with pytest.raises(StudyFileError, match="qap.min_auc: 0.55 -> 0.7"):
        open_study(rdb, parse_study(QAP + "[objectives]\nmin_auc = 0.7\n"), "qap", sections,
                   ("maximize", "minimize"), "m-qap")
