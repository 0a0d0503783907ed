"""The hand-off measured as a user meets it: export stored trials with ``--check-hls4ml`` for both
hls4ml strategies, then run the README's recipe on the files as written, in a fresh process.

For each trial and strategy it prints the class agreement and the largest logit difference of
hls4ml's compiled emulation on every test row (the file as written, read back), the relative
precision p of the emitted formats, the class agreement of hls4ml's default configuration on the
same graph, qapbo's stored da4ml LUTs and the LUTs hls4ml's own distributed-arithmetic kernels
cost (matrix products and biases only).

    python benchmarks/hls4ml_handoff.py studies/quickstart.toml --trial quickstart-qap:5 \\
        --trial quickstart-search:12 --trial quickstart-refine:3 --out runs/handoff
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import torch

from qapbo.cost.fixedpoint import LOGIT_TOLERANCE
from qapbo.data.split import load_data
from qapbo.export.hls4ml_config import check_hls4ml
from qapbo.study.file import load_study_file
from qapbo.study.storage import artifact_dir, artifact_store, load_checkpoint, storage_url

RECIPE_RUNNER = """
import sys, numpy as np
text = open(sys.argv[1]).read()
section = text[text.index("## Taking a point of the front to hardware"):]
recipe = section[section.index("```python\\n") + len("```python\\n"):].split("```", 1)[0]
x_standardized = np.load(sys.argv[2])
ns = {"x_standardized": x_standardized}
exec(recipe.replace("front/t12", sys.argv[3]).replace("t12_prj", sys.argv[3] + "_prj"), ns)
np.save(sys.argv[3] + ".logits.npy", np.asarray(ns["logits"]).reshape(len(x_standardized), -1))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("study")
    ap.add_argument("--storage")
    ap.add_argument("--trial", action="append", required=True, help="STUDY:NUMBER, repeatable")
    ap.add_argument("--out", default="runs/handoff")
    args = ap.parse_args()
    study = load_study_file(args.study)
    url = storage_url(study, args.storage)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = load_data(study.data)
    np.save(out / "x.npy", data.x_test)
    (out / "recipe.py").write_text(RECIPE_RUNNER)
    readme = Path(__file__).parents[1] / "README.md"
    store = artifact_store(artifact_dir(study, url), create=False)
    n = len(data.x_test)
    print(f"data: {data.label}; {n} test rows; storage {url}")
    print("| trial | model | strategy | p | recipe on the written file: same class, max logit diff | "
          "default config: same class | luts (qapbo, da4ml) | hls4ml DA kernels (da4ml) |")
    print("|---|---|---|---|---|---|---|---|")
    for pick in args.trial:
        name, number = pick.rsplit(":", 1)
        frozen = optuna.load_study(study_name=name, storage=url).trials[int(number)]
        model, _ = load_checkpoint(store, frozen.user_attrs["checkpoint"])
        with torch.no_grad():
            want = model.eval()(torch.from_numpy(data.x_test)).double().numpy()
        default = None
        for strategy in ("da", "latency"):
            stem = out / f"{name}-{number}-{strategy}"
            p = subprocess.run([sys.executable, "-m", "qapbo.cli", "export", args.study, "--study", name, "--trial",
                                number, "--storage", url, "--out", f"{stem}.onnx", "--check-hls4ml", "--strategy",
                                strategy], capture_output=True, text=True)
            if p.returncode != 0:
                print(f"| {pick} | | {strategy} | export failed: {p.stderr.strip()} |")
                continue
            side = json.loads(Path(f"{stem}.json").read_text())
            r = subprocess.run([sys.executable, str(out / "recipe.py"), str(readme), str(out / "x.npy"), str(stem)],
                               capture_output=True, text=True)
            if r.returncode != 0:
                print(f"| {pick} | | {strategy} | recipe failed: {r.stderr.strip()[-300:]} |")
                continue
            got = np.load(f"{stem}.logits.npy")
            same, diff = int((got.argmax(1) == want.argmax(1)).sum()), float(np.abs(got - want).max())
            if default is None:
                c = check_hls4ml(f"{stem}.onnx", None, model, data.x_test, LOGIT_TOLERANCE)
                default = f"{c.same_class / c.rows:.1%}, {c.max_abs_diff:.2g}"
            kernels = side["hls4ml"]["hls4ml_check"]["da_kernel_luts"]
            print(f"| {pick} | {frozen.user_attrs.get('model_name')} ({frozen.user_attrs['sparsity']:.0%} pruned) | "
                  f"{side['hls4ml']['strategy']} | {side['hls4ml']['precision_bits']} | {same}/{n}, {diff:.2g} | "
                  f"{default} | {side.get('luts') or '—'} | {'—' if kernels is None else f'{kernels:.0f}'} |",
                  flush=True)


if __name__ == "__main__":
    main()
