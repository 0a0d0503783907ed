"""The command line: ``qapbo run``, ``search``, ``refine``, ``qap``, ``compare``, ``plot``, ``export``,
``costs``, ``train`` and ``data generate``.

The CLI only parses, calls one library function and prints; each command imports what it needs
when it runs, so ``--help`` and argument errors answer at once. User errors become one line on
stderr and exit status 2; Ctrl-C exits with 130 after a one-line notice.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import warnings
from typing import Any, Sequence

from qapbo.errors import QapboError, TrainingError

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage dump) and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _Renamed(argparse.Action):
    """An old option name that still works for one release, with a note naming the new one."""

    def __init__(self, *args: Any, new: str, **kwargs: Any):
        self.new = new
        super().__init__(*args, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(f"note: {option_string} is now {self.new}; the old name goes in the next release", file=sys.stderr)
        setattr(namespace, self.dest, values)


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.replace(" ", "").split(",") if v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None
    if not values:
        raise argparse.ArgumentTypeError("empty list")
    return values


def _int_at_least(low: int):
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if v < low:
            raise argparse.ArgumentTypeError(f"{v} must be at least {low}")
        return v

    return parse


_positive_int = _int_at_least(1)
_nonnegative_int = _int_at_least(0)


def _float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return v


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="qapbo", description="Quantization-aware pruning versus Bayesian optimization "
                                                 "for ultra-low-latency jet taggers.")
    from qapbo._version import __version__
    from qapbo.nn.spec import BN_MODES, DEFAULT_BITS_LR, DEFAULT_INIT_BITS, PRECISIONS
    from qapbo.train.config import TrainConfig

    tc = TrainConfig()  # the command line's training defaults are the library's

    parser.add_argument("--version", action="version", version=f"qapbo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    t = sub.add_parser("train", help="train one (quantized) network and measure it",
                       description="Train one network to early stop and print its test metrics and BOPs.")
    d = t.add_argument_group("data")
    _data_args(d)
    d.add_argument("--test-path", help="separate test file/directory (e.g. the Zenodo 'val' release)")
    d.add_argument("--label-column", default="class", help="label column of a table (default: class)")
    m = t.add_argument_group("model")
    m.add_argument("--hidden", type=_int_list, default=(64, 32, 32), help="hidden widths (default: 64,32,32)")
    m.add_argument("--bits", type=_int_list, default=(32,),
                   help="weight bits: one value or one per linear layer; 32 = float (default: 32)")
    m.add_argument("--act-bits", type=_int_list, default=None,
                   help="hidden activation bits: one value or one per hidden layer (default: as --bits)")
    m.add_argument("--input-bits", type=int, default=32, help="input quantization bits (default: 32 = float)")
    m.add_argument("--bn", default=None, choices=list(BN_MODES),
                   help="BatchNorm mode (default: affine; a learned-precision net has none)")
    m.add_argument("--precision", default="fixed", choices=list(PRECISIONS),
                   help="fixed: the bit widths above (Brevitas); learned: every weight, bias, input feature and "
                        "neuron learns its own fixed-point format under a beta x EBOPs penalty (default: fixed)")
    m.add_argument("--beta", type=_float, default=None,
                   help="learned precision: the weight of EBOPs in the loss, e.g. 1e-5 (default: 0)")
    m.add_argument("--init-bits", type=_nonnegative_int, default=None,
                   help=f"learned precision: initial fractional bits of every format (default: {DEFAULT_INIT_BITS})")
    m.add_argument("--bits-lr", type=_float, default=None,
                   help=f"learned precision: Adam learning rate of the bits (default: {DEFAULT_BITS_LR:g})")
    r = t.add_argument_group("training")
    r.add_argument("--epochs", type=_positive_int, default=tc.epochs, help=f"maximum epochs (default: {tc.epochs})")
    r.add_argument("--patience", type=_positive_int, default=tc.patience,
                   help=f"early-stopping patience (default: {tc.patience})")
    r.add_argument("--lr", type=_float, default=tc.lr, help=f"Adam learning rate (default: {tc.lr:g})")
    r.add_argument("--batch-size", type=_positive_int, default=tc.batch_size,
                   help=f"batch size (default: {tc.batch_size})")
    r.add_argument("--l1", type=_float, default=None,
                   help=f"L1 factor on weights (default: {tc.l1:g}; a learned-precision net has none)")
    r.add_argument("--seed", type=int, default=tc.seed,
                   help=f"seed for data split, init and batches (default: {tc.seed})")
    r.add_argument("--threads", type=_positive_int, default=tc.threads, help=f"torch threads (default: {tc.threads})")
    o = t.add_argument_group("output")
    o.add_argument("--json", action="store_true", help="print the full record as JSON on stdout")
    _progress_arg(o, "a bar over epochs on a terminal, else a summary line every 10 epochs")
    t.set_defaults(func=cmd_train)

    q = _study_command(sub, "qap", "run (or resume) the quantization-aware pruning fronts of a study file",
                       "Run the [qap] section of a study file: for each precision and mode (FT, LT), train, "
                       "measure and prune level by level, storing one trial per level. Rerunning the same "
                       "command resumes where a stopped run left off.")
    _workers_arg(q, "each training whole chains (one precision and mode)")
    q.set_defaults(func=cmd_qap)

    rf = _study_command(sub, "refine", "refine the search's front: QAP (fine-tune) from each front member",
                        "Run the [refine] section of a study file: take the stored search's front (all of it, or "
                        "the k members spread best along it), reload each member from its checkpoint and prune "
                        "it further along the schedule, fine-tuning at its own precision; one trial per member "
                        "and level in the study NAME-refine. Rerunning the same command resumes.")
    _workers_arg(rf, "each refining whole members")
    rf.set_defaults(func=cmd_refine)

    hg = _study_command(sub, "hgq", "run (or resume) the HGQ2 contender of a study file (per-weight learned bits)",
                        "Run the [hgq] section of a study file: HGQ2 (Keras 3 on JAX) learns every weight's and "
                        "activation's bit width under an EBOPs penalty whose weight beta ramps up (or one run per "
                        "fixed beta), on the study's own data split; every checkpoint of its Pareto front is "
                        "costed with da4ml and stored as one trial of the study NAME-hgq. Rerunning the same "
                        "command resumes from the last epoch. Needs pip install 'qapbo[hgq]'.")
    hg.set_defaults(func=cmd_hgq)

    lc = _study_command(sub, "learned", "run (or resume) the learned-precision chain of a study file (qapbo's own "
                        "per-weight learned bits)",
                        "Run the [learned] section of a study file: qapbo's learned precision (every weight's, input "
                        "feature's and neuron's fixed-point format trained under an EBOPs penalty) in one training "
                        "whose weight beta ramps up (or one run per fixed beta), on the study's own data split, "
                        "keeping a Pareto front of checkpoints on validation AUC and EBOPs as HGQ2 does; every "
                        "checkpoint of that front is costed (da4ml's LUTs with qapbo[hw]) and stored as one trial "
                        "of the study NAME-learned. Rerunning the same command resumes from the last epoch.")
    lc.set_defaults(func=cmd_learned)

    s = _study_command(sub, "search", "run (or resume) the multi-objective search of a study file",
                       "Run the [search] section of a study file: Optuna proposes architectures and precisions, "
                       "each trial trains and measures one network (AUC up, BOPs down). Rerunning the same "
                       "command resumes the study up to its budget.")
    _workers_arg(s, "sharing the study")
    s.set_defaults(func=cmd_search)

    w = _study_command(sub, "worker", "one search worker joining a shared study (e.g. on another machine)",
                       "Join the search of a study file on a shared storage (any Optuna RDB URL, e.g. "
                       "postgresql://user:password@host/db; or set QAPBO_STORAGE to keep the password off the "
                       "command line) and run trials until the study holds its budget. Start one per machine "
                       "or core; they share the budget.")
    w.set_defaults(func=cmd_search)

    c = sub.add_parser("compare", help="compare stored fronts: table (Markdown or JSON) and figures",
                       description="Load studies from a storage, extract their AUC-BOPs fronts and compare them: "
                                   "hypervolume, coverage, BOPs at target AUCs, AUC within BOPs budgets, compute spent "
                                   "(stopped-early trials and a refined study's searches included) and every pair's "
                                   "hypervolume at equal compute (the seconds and epochs the cheaper one spent).")
    _comparison_args(c)
    c.add_argument("--out", help=f"directory for the figures (default: {FIGURES_RULE}; with --json, figures are "
                                 "written only when --out is given)")
    c.add_argument("--json", action="store_true", help="print the comparison as JSON instead of Markdown (every "
                                                       "number; no figures unless --out)")
    c.add_argument("--wide", action="store_true", help="every AUC target and budget and the counts behind each front "
                                                       "in the table (default: the middle target and budget)")
    c.set_defaults(func=cmd_compare)

    pl = sub.add_parser("plot", help="write one figure from stored studies",
                        description="Write one kind of figure (PNG and PDF) from stored studies.")
    pl.add_argument("kind", choices=["fronts", "hypervolume", "bkg-eff", "efficiency", "costs", "attainment",
                                     "features"],
                    help="figure kind (costs: BOPs against da4ml LUTs of every stored network; attainment: the "
                         "25/50/75 %% attainment surfaces of replicated methods; features: every "
                         "input feature's distribution per class, from data rather than storage)")
    _comparison_args(pl)
    pl.add_argument("--out", help=f"directory for the figure (default: {FIGURES_RULE})")
    fd = pl.add_argument_group("data (features only)")
    _data_args(fd, default="pythia-jets")
    fd.add_argument("--seed", type=int, default=0, help="data seed (default: 0)")
    pl.set_defaults(func=cmd_plot)

    e = sub.add_parser("export", help="export a stored trial's network to QONNX (an HGQ2 trial: Keras) for hls4ml",
                       description="Write one stored trial's network as a cleaned QONNX graph (for hls4ml or "
                                   "FINN), run test rows through it with qonnx's executor to check it against the "
                                   "stored model, and write a JSON file beside it with the input standardization, "
                                   "feature and class names, AUC and BOPs. Needs pip install 'qapbo[export]'. A trial of "
                                   "an hgq study (HGQ2) is written as its Keras model (NAME.keras) with the hls4ml "
                                   "configuration for hls4ml's Keras frontend instead.")
    e.add_argument("study", help="the study file the trial was run from, e.g. studies/quickstart.toml")
    e.add_argument("--trial", type=_nonnegative_int, required=True, help="trial number (as `qapbo compare` and "
                   "`optuna trials` show it)")
    e.add_argument("--study", dest="study_name", help="which of the file's studies (needed when it has several, "
                   "e.g. quickstart-search and quickstart-qap)")
    e.add_argument("--out", help="QONNX file to write (default: runs/STUDY-trialN.onnx, for an HGQ2 trial "
                   "runs/STUDY-trialN.keras; the JSON goes beside it)")
    _storage_arg(e)
    e.add_argument("--precision", type=_positive_int, help="relative precision in bits of the fixed-point formats in "
                   "NAME.hls4ml.json (default: the least that reproduces the stored model on every test row)")
    e.add_argument("--check-hls4ml", action="store_true", help="also convert with hls4ml, compile its C++ emulation "
                   "and keep nothing unless it gives the stored model's class on every test row (needs "
                   "pip install 'qapbo[hls4ml]' and g++); the file checked is the file written")
    from qapbo.export.hls4ml_config import DEFAULT_STRATEGY, STRATEGIES

    e.add_argument("--strategy", choices=list(STRATEGIES), default=DEFAULT_STRATEGY,
                   help="hls4ml strategy written in NAME.hls4ml.json: da (default), hls4ml's distributed arithmetic, "
                        "the shift-and-add logic qapbo's luts cost counts (hls4ml needs da4ml for it); latency, "
                        "hls4ml's multiplier (DSP) design")
    _synthetic_args(e)
    e.set_defaults(func=cmd_export)

    co = sub.add_parser("costs", help="measure missing costs (EBOPs, LUTs, latency) of stored trials from checkpoints",
                        description="For every finished trial of a study file's stored studies that lacks a cost "
                                    "(stored before qapbo measured it), load its checkpoint and measure it; the "
                                    "values are kept on the study (Optuna never changes a finished trial) and "
                                    "`qapbo compare --cost` uses them. Rerunning measures only what is missing. "
                                    "Needs pip install 'qapbo[hw]'.")
    co.add_argument("study", help="the study file the trials were run from, e.g. studies/quickstart.toml")
    _storage_arg(co)
    _synthetic_args(co)
    co.set_defaults(func=cmd_costs)

    dg = sub.add_parser("data", help="make physics-generated jets ahead of time (pythia-jets)",
                        description="Data sets that qapbo makes itself.")
    dsub = dg.add_subparsers(dest="data_command", metavar="ACTION", parser_class=_Parser, required=True)
    gen = dsub.add_parser("generate", help="generate Pythia 8 + FastJet jets with the 16 hls4ml features",
                          description="Generate ROWS jets (even over the classes) with Pythia 8 and FastJet, "
                                      "in worker processes, chunk by chunk: a stopped run resumes with the same "
                                      "command and the set is the same for any number of workers. Particle level, "
                                      "no detector simulation. Needs pip install 'qapbo[physics]'.")
    gen.add_argument("--rows", type=_int_at_least(-2**62), required=True, help="number of jets")
    gen.add_argument("--seed", type=_nonnegative_int, default=0, help="generation seed (default: 0)")
    gen.add_argument("--workers", type=_positive_int, default=1, help="worker processes (default: 1)")
    gen.add_argument("--out", help="directory of the set (default: the cache a study with [data] source = "
                                   "\"pythia-jets\" reads: $QAPBO_DATA_HOME or ~/.cache/qapbo, one directory per "
                                   "settings key)")
    gen.add_argument("--classes", type=lambda t: tuple(x for x in t.replace(" ", "").split(",") if x),
                     default=None, help="comma-separated classes (default: g,q,w,z,t)")
    gen.add_argument("--chunk-size", type=_positive_int, default=None,
                     help="jets per chunk file (default: 1000, or ROWS/classes when smaller; part of the "
                          "set's key, so a study finds the set generated with the default)")
    gen.add_argument("--detector", choices=["none", "release"], default=None,
                     help="none: particles as generated (default); release: the hls4ml release's simplified "
                          "detector (tracks, ECAL/HCAL cells, smearing)")
    gen.add_argument("--selection", choices=["matched", "leading"], default=None,
                     help="leading: the leading jet of each event, as the release (default); matched: jets "
                          "matched to the hard object, pT 0.8-1.6 TeV (the earlier default)")
    gen.add_argument("--radius", type=_float, default=None, help="anti-kT radius (default: 0.8)")
    gen.add_argument("--zlogz", choices=["pt", "energy"], default=None,
                     help="zlogz fractions: energy (the release; default) or pt")
    gen.add_argument("--undefined", choices=["fill", "drop"], default=None,
                     help="jets with undefined ratio features: drop and count them (the release; default) or fill")
    _progress_arg(gen, "bars on a terminal, else one line per finished chunk")
    gen.set_defaults(func=cmd_data_generate)

    r = sub.add_parser("run", help="the main job: run a study file's search and QAP baseline, then compare",
                       description="Run (or resume) the [search], [refine], [qap], [hgq] and [learned] sections of a study file, in "
                                   "that order, then write the comparison table and figures.")
    r.add_argument("study", help="study file (TOML), e.g. studies/quickstart.toml")
    _storage_arg(r)
    r.add_argument("--out", help=f"directory for the figures (default: {FIGURES_RULE})")
    _workers_arg(r, "for the search, the refine members and the QAP chains")
    _synthetic_args(r)
    r.add_argument("--wide", action="store_true", help="every AUC target and budget in the comparison table")
    r.add_argument("--replicates", type=_positive_int, help="run every method this many times with other training "
                   "and sampler seeds on the same data split (overrides the file's replicates)")
    _progress_arg(r, "bars on a terminal, else one line per trial and per level")
    r.set_defaults(func=cmd_run)
    return parser


#: Where figures go unless --out says otherwise (one rule for run, compare and plot).
FIGURES_RULE = ("runs/NAME-compare, NAME the study file's name, or for compare and plot the SQLite file's "
                "stem (runs/compare for another storage)")


def _study_command(sub: Any, name: str, help: str, description: str) -> argparse.ArgumentParser:
    """A subcommand that runs a study file: the file, its storage, the synthetic switch, a budget."""
    p = sub.add_parser(name, help=help, description=description)
    p.add_argument("study", help="study file (TOML), e.g. studies/quickstart.toml")
    _storage_arg(p)
    if name not in ("qap", "refine", "hgq", "learned"):
        p.add_argument("--n-trials", type=_positive_int,
                       help="budget: trials evaluated (COMPLETE or stopped early) in the study (overrides the file)")
        p.add_argument("--timeout", type=_float, help="budget: seconds for this invocation (overrides the file)")
    _synthetic_args(p)
    _progress_arg(p, "bars on a terminal, else one line per trial or level")
    return p


def _storage_arg(p: Any) -> None:
    p.add_argument("--storage", help="Optuna storage URL (default: the file's storage, else "
                                     "sqlite:///runs/NAME.db; or set QAPBO_STORAGE)")


def _workers_arg(p: Any, what: str) -> None:
    p.add_argument("--workers", type=_positive_int, default=1,
                   help=f"worker processes on this machine, {what} (default: 1); one torch thread each")


def _data_args(d: Any, default: str = "synthetic-jets") -> None:
    from qapbo.data.config import SOURCES

    d.add_argument("--data", default=default, choices=list(SOURCES),
                   help=f"data source (default: {default}; synthetic-jets is a seeded toy for tests, "
                        "pythia-jets physics-generated jets without detector simulation)")
    d.add_argument("--data-path", help="file or directory for hdf5/table sources, or a set made by "
                                       "`qapbo data generate --out DIR` for pythia-jets")
    d.add_argument("--data-home", help="cache directory for the openml and pythia-jets sources")
    d.add_argument("--rows", type=_positive_int, default=None,
                   help="synthetic-jets / pythia-jets: number of jets (default 100000; plot features: 5000); "
                        "other data: stratified subsample")


def _data_config(args: argparse.Namespace, **extra: Any) -> Any:
    from qapbo.data.config import GENERATED, DataConfig

    generated = args.data in GENERATED
    return DataConfig(source=args.data, path=args.data_path, data_home=args.data_home, seed=args.seed,
                      **({"n_rows": args.rows} if generated and args.rows else {}),
                      **({"max_rows": args.rows} if not generated and args.rows else {}), **extra)


def _progress_arg(p: Any, auto: str) -> None:
    from qapbo.progress import MODES

    p.add_argument("--progress", choices=MODES, default=None,
                   help=f"progress output: bars, lines, none, or auto (default: {auto})")
    p.add_argument("--quiet", action="store_true",
                   help="plain lines instead of progress bars, for logs (same as --progress lines)")


def _progress(args: argparse.Namespace) -> str:
    """The progress mode the options ask for, the same for every command: --progress wins, --quiet
    means lines, else auto."""
    from qapbo.progress import resolve

    return resolve(args.progress or ("lines" if args.quiet else "auto"))


def _synthetic_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--synthetic", action="store_true",
                   help="run on the synthetic jets instead of the file's data (study name gets '-synthetic')")
    p.add_argument("--rows", type=_positive_int, help="with --synthetic: number of synthetic jets")


def _load_study(args: argparse.Namespace):
    from qapbo.study.file import load_study_file

    if getattr(args, "storage", None) is None and os.environ.get("QAPBO_STORAGE"):
        args.storage = os.environ["QAPBO_STORAGE"]
    if args.rows and not args.synthetic:
        raise QapboError("--rows only goes with --synthetic; set n_rows or max_rows in the study file instead")
    return load_study_file(args.study, synthetic=args.synthetic, rows=args.rows,
                           replicates=getattr(args, "replicates", None))


def _comparison_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--storage", help="Optuna storage URL, e.g. sqlite:///runs/quickstart.db (or set QAPBO_STORAGE)")
    p.add_argument("--studies", type=lambda t: [x for x in t.split(",") if x],
                   help="comma-separated study names (default: every two-objective study in the storage)")
    p.add_argument("--auc-targets", type=lambda t: [_float(x) for x in t.split(",") if x],
                   help="AUCs to reach, e.g. 0.9,0.92 (default: just below the best AUC)")
    floats = lambda t: [_float(x) for x in t.split(",") if x]  # noqa: E731
    p.add_argument("--budgets", type=floats,
                   help="cost budgets, e.g. 1e5,1e6 (in the --cost; default: powers of ten across the fronts)")
    p.add_argument("--bops-budgets", type=floats, dest="budgets", action=_Renamed, new="--budgets",
                   help="old name of --budgets (any cost, not only BOPs); kept for one release")
    from qapbo.cost.definitions import COSTS

    p.add_argument("--cost", default="bops", choices=list(COSTS),
                   help="the cost the fronts, hypervolume, coverage and targets are drawn in (default: bops; "
                        "luts and latency: da4ml's estimates, recorded when qapbo[hw] is installed)")


def _comparison(args: argparse.Namespace) -> Any:
    from qapbo.compare.report import compare_stored
    from qapbo.study.storage import open_storage

    url = args.storage or os.environ.get("QAPBO_STORAGE")
    if not url:
        raise QapboError("no storage given: pass --storage URL (e.g. sqlite:///runs/quickstart.db) or set "
                         "QAPBO_STORAGE")
    args.out = args.out or _figures_of(url)
    # compare and plot never create or change storage
    return compare_stored(open_storage(url, read_only=True), args.studies, cost=args.cost,
                          auc_targets=args.auc_targets, budgets=args.budgets)


def _figures_of(url: str) -> str:
    from pathlib import Path

    stem = Path(url[len("sqlite:///"):]).stem if url.startswith("sqlite:///") else ""
    return f"runs/{stem}-compare" if stem else "runs/compare"


def cmd_compare(args: argparse.Namespace) -> int:
    from pathlib import Path

    from qapbo.compare.figures import plot_all

    wants_figures = not args.json or args.out is not None  # JSON is for scripts: no files unless asked for
    cmp = _comparison(args)
    paths = plot_all(cmp, Path(args.out)) if wants_figures else []
    if args.json:
        print(json.dumps(cmp.to_dict() | {"figures": [str(p) for p in paths]}, indent=2))
    else:
        print(cmp.to_markdown(wide=args.wide))
        print(f"\nfigures written to {args.out}/: " + ", ".join(p.name for p in paths))
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from pathlib import Path

    from qapbo.compare.figures import plot

    if args.kind == "features":
        from qapbo.compare.figures import plot_features
        from qapbo.data.config import GENERATED
        from qapbo.data.split import load_data

        if args.data in GENERATED and not args.rows:
            args.rows = 5000
        data = load_data(_data_config(args))
        paths = plot_features(data, Path(args.out or "runs/features"))
        print("wrote " + ", ".join(str(p) for p in paths) + f" ({data.label})")
        return 0
    paths = plot(args.kind, _comparison(args), Path(args.out))
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from qapbo.study.pipeline import run_pipeline
    from qapbo.study.storage import redact

    study = _load_study(args)
    res = run_pipeline(study, storage=args.storage, workers=args.workers, progress=_progress(args),
                       synthetic=args.synthetic, rows=args.rows, out=args.out)
    print(res.comparison.to_markdown(wide=args.wide))
    print(f"\nresults in {redact(res.url)} (studies: {', '.join(res.study_names)}); figures in {res.out}/: "
          + ", ".join(p.name for p in res.figures))
    return 0


def _section(section: str, args: argparse.Namespace) -> tuple[Any, list[Any]]:
    """Run one section of the study file the arguments name: (study file, its Optuna studies)."""
    from qapbo.study.pipeline import run_section

    study = _load_study(args)
    # a `qapbo worker` on another machine must not replay the proposals of the others
    worker = os.getpid() if args.command == "worker" else 0
    return study, [s for replica in study.replicas() for s in run_section(
        section, replica, storage=args.storage, workers=getattr(args, "workers", 1), progress=_progress(args),
        n_trials=getattr(args, "n_trials", None), timeout=getattr(args, "timeout", None), synthetic=args.synthetic,
        rows=args.rows, worker=worker)]


def cmd_search(args: argparse.Namespace) -> int:
    from qapbo.study.storage import redact, storage_url

    study, studies = _section("search", args)
    for ostudy in studies:
        front = ostudy.best_trials
        states = [t.state.name for t in ostudy.get_trials(deepcopy=False)]
        print(f"search {ostudy.study_name}: {states.count('COMPLETE')} COMPLETE trials, {states.count('PRUNED')} "
              f"stopped early (PRUNED), {len(front)} on the AUC front ({'+'.join(study.search.costs)}), in "
              f"{redact(storage_url(study, args.storage))}")
    return 0


def cmd_qap(args: argparse.Namespace) -> int:
    from qapbo.study.storage import redact, storage_url

    study, studies = _section("qap", args)
    for ostudy in studies:
        n = len(ostudy.get_trials(deepcopy=False))
        print(f"qap {study.name}: {n} levels stored in study {ostudy.study_name!r} at "
              f"{redact(storage_url(study, args.storage))}")
    return 0


def cmd_refine(args: argparse.Namespace) -> int:
    from qapbo.study.storage import redact, storage_url

    study, studies = _section("refine", args)
    for ostudy in studies:
        front = ostudy.best_trials
        print(f"refine {study.name}: {len(ostudy.get_trials(deepcopy=False))} levels stored in study "
              f"{ostudy.study_name!r} ({len(front)} on its front) at {redact(storage_url(study, args.storage))}")
    return 0


def cmd_hgq(args: argparse.Namespace) -> int:
    from optuna.trial import TrialState

    from qapbo.study.storage import redact, storage_url

    study, studies = _section("hgq", args)
    for ostudy in studies:
        done = ostudy.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        print(f"hgq {study.name}: {len(done)} checkpoints stored in study {ostudy.study_name!r} "
              f"({len(ostudy.best_trials)} on its AUC-LUTs front) at {redact(storage_url(study, args.storage))}")
    return 0


def cmd_learned(args: argparse.Namespace) -> int:
    from optuna.trial import TrialState

    from qapbo.study.storage import redact, storage_url

    study, studies = _section("learned", args)
    for ostudy in studies:
        done = ostudy.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        print(f"learned {study.name}: {len(done)} checkpoints stored in study {ostudy.study_name!r} "
              f"({len(ostudy.best_trials)} on its AUC-{ostudy.metric_names[1]} front) at "
              f"{redact(storage_url(study, args.storage))}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from qapbo.export.qonnx import export_trial

    study = _load_study(args)
    rep = export_trial(study, args.trial, out=args.out, study_name=args.study_name, storage=args.storage,
                       precision=args.precision, check_with_hls4ml=args.check_hls4ml, strategy=args.strategy)
    if hasattr(rep, "keras_path"):  # an HGQ2 checkpoint
        print(f"wrote {rep.keras_path} (Keras, HGQ2), {rep.hls4ml_path} (hls4ml hls_config, strategy {rep.strategy}) "
              f"and {rep.json_path}: trial {rep.trial} of {rep.study_name}; da4ml's logic bit-exact on "
              f"{rep.rows_checked} test rows")
        if rep.hls4ml_check is not None:
            _print_hls4ml_check(rep.hls4ml_check)
        return 0
    print(f"wrote {rep.onnx_path} (QONNX) and {rep.json_path}: trial {rep.trial} of {rep.study_name}; "
          f"qonnx executor on {rep.rows_checked} test rows: max logit difference {rep.max_abs_diff:.2g}, "
          f"same class {rep.same_predictions}/{rep.rows_checked}")
    if rep.hls4ml_path is None:
        print(rep.hls4ml_note)
    else:
        print(f"wrote {rep.hls4ml_path} (hls4ml hls_config, strategy {rep.strategy}, {rep.precision}-bit relative "
              f"precision, {rep.hls4ml_note})")
    if rep.hls4ml_check is not None:
        _print_hls4ml_check(rep.hls4ml_check)
    return 0


def _print_hls4ml_check(c: Any) -> None:
    kernels = f"; hls4ml's DA kernels: {c.da_kernel_luts:.0f} LUTs (da4ml)" if c.da_kernel_luts is not None else ""
    print(f"hls4ml C++ emulation on {c.rows} test rows ({c.strategy}, from the file as written): same class "
          f"{c.same_class}/{c.rows}, max logit difference {c.max_abs_diff:.2g} (tolerance {c.tolerance:g}){kernels}")


def cmd_costs(args: argparse.Namespace) -> int:
    from qapbo.study.backfill import backfill_costs

    study = _load_study(args)
    done = backfill_costs(study, storage=args.storage, say=lambda m: print(m, file=sys.stderr, flush=True))
    print("measured missing costs: " + (", ".join(f"{k} {v} trial(s)" for k, v in done.items()) or "no studies"))
    return 0


def cmd_data_generate(args: argparse.Namespace) -> int:
    from qapbo.data import pythia as jetgen

    if args.rows <= 0:
        raise QapboError(f"--rows {args.rows}: ask for a positive number of jets")
    classes = args.classes or jetgen.CLASSES
    settings = jetgen.GenSettings(seed=args.seed, classes=classes,
                                  chunk_size=args.chunk_size or jetgen.default_chunk_size(max(args.rows, 1), len(classes)),
                                  **jetgen.options({k: getattr(args, k) for k in jetgen.OPTIONS}))
    settings.validate()
    out = args.out or str(jetgen.set_dir(settings))
    say = _generation_progress(out, _progress(args))
    try:
        manifest = jetgen.generate_set(out, args.rows, settings, workers=args.workers, progress=say)
    finally:
        say.close()
    counts = ", ".join(f"{c} {n}" for c, n in manifest["counts"].items())
    fills, dropped = sum(manifest["fills"].values()), sum(manifest["dropped"].values())
    print(f"pythia-jets set in {out}: {counts} jets ({fills} with a filled ratio feature, {dropped} dropped for "
          f"undefined ratios), {manifest['seconds']:.0f} s of generation; {settings.note}")
    return 0


class _generation_progress:
    """Jets per class: a bar (``bars``), one line per finished chunk (``lines``) or nothing."""

    def __init__(self, out: str, mode: str):
        from qapbo.progress import bar

        self.out, self.mode, self.bar = out, mode, None
        self._make = lambda total: bar(mode, total=total, unit="jet", desc="pythia-jets")

    def __call__(self, p: Any) -> None:
        text = "  ".join(f"{c} {p.done[c]}/{p.wanted[c]}" for c in p.wanted)
        if self.mode == "bars":
            self.bar = self.bar or self._make(sum(p.wanted.values()))
            self.bar.n = sum(p.done.values())
            self.bar.set_postfix_str(text)
        elif self.mode == "lines":
            print(f"pythia-jets {self.out}: {text}  ({p.seconds:.0f} s)", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def cmd_train(args: argparse.Namespace) -> int:
    from qapbo.data.split import load_data
    from qapbo.errors import SpecError
    from qapbo.nn.spec import ModelSpec
    from qapbo.train.config import TrainConfig
    from qapbo.train.measure import train_and_measure

    hidden = tuple(args.hidden)
    learned = {k: v for k, v in (("beta", args.beta), ("init_bits", args.init_bits), ("bits_lr", args.bits_lr))
               if v is not None}
    spec = ModelSpec(hidden=hidden, weight_bits=_one_or_many(args.bits), act_bits=_one_or_many(args.act_bits),
                     input_bits=args.input_bits, bn=args.bn, precision=args.precision, **learned)
    if spec.learned and args.l1:
        raise SpecError("--l1 does not apply to --precision learned: its cost penalty is --beta (x EBOPs); drop --l1")
    l1 = 0.0 if spec.learned else (TrainConfig.l1 if args.l1 is None else args.l1)
    config = TrainConfig(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, l1=l1,
                         patience=args.patience, seed=args.seed, threads=args.threads)
    data = load_data(_data_config(args, test_path=args.test_path, label_column=args.label_column))
    spec = spec.sized_for(data.n_features, data.n_classes)
    if data.source not in ("hdf5", "openml"):
        print(f"note: training on {data.label} ({data.sizes})", file=sys.stderr)
    from qapbo.progress import EPOCH_SUMMARY_EVERY
    from qapbo.progress import bar as progress_bar

    mode = _progress(args)
    bar = progress_bar(mode, total=config.epochs, desc=spec.describe(), unit="epoch", leave=False)

    def progress(log: Any) -> None:
        bar.update(1)
        bar.set_postfix(val_loss=f"{log.val_loss:.4f}", best=f"{log.best_val_loss:.4f}")
        if mode == "lines" and log.epoch % EPOCH_SUMMARY_EVERY == 0:
            print(f"epoch {log.epoch:4d}/{config.epochs}  val_loss {log.val_loss:.4f}  best {log.best_val_loss:.4f}",
                  file=sys.stderr, flush=True)

    try:
        result = train_and_measure(data, spec, config, callback=progress)
    finally:
        bar.close()
    rec = result.record
    if mode == "lines":
        print(f"trained {rec['epochs']} epochs (best {rec['best_epoch']}) in {rec['seconds']:.1f} s", file=sys.stderr)
    if args.json:
        print(json.dumps(rec, indent=2, sort_keys=True))
    else:
        print(format_record(rec))
    return 0


def _one_or_many(values: Sequence[int] | None) -> int | tuple[int, ...] | None:
    if values is None:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def format_record(rec: dict[str, Any]) -> str:
    """A small human table of one measured model."""
    rows = [
        ("data", f"{rec.get('data_note', rec['data']['source'])}  fingerprint {rec['data_fingerprint']}"),
        ("model", rec["model_name"]),
        ("AUC (macro)", f"{rec['auc']:.4f}"),
        ("AUC per class", "  ".join(f"{k} {v:.4f}" for k, v in rec["auc_per_class"].items())),
        ("bkg eff @ 50% sig", "  ".join(f"{k} {v:.4f}" for k, v in rec["bkg_eff_at_sig50"].items())),
        ("accuracy", f"{rec['accuracy']:.4f}"),
        ("BOPs", f"{rec['bops']:,.0f}  ({rec['bops_definition']})"),
        *[(name, f"{rec[key]:,.0f}  ({rec[key + '_definition']})") for key, name in
          (("ebops", "EBOPs"), ("luts", "LUTs (da4ml)"), ("latency", "latency (adders)")) if rec.get(key) is not None],
        ("sparsity", f"{rec['sparsity']:.2%}  per layer "
                     + " ".join(f"{s:.1%}" for s in rec["sparsity_per_layer"])),
        *([("learned bits", "  ".join(f"{k} {v['mean']:.2f} (max {v['max']})" for k, v in rec["learned_bits"].items()))]
          if rec.get("learned_bits") else []),
        ("epochs", f"{rec['epochs']} (best {rec['best_epoch']})"),
        ("seconds", f"{rec['seconds']:.1f}"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _write_failure(exc: BaseException) -> str | None:
    """A one-line reason if ``exc`` (or its cause) is a full disk or a read-only storage, else None."""
    import errno

    seen: BaseException | None = exc
    while seen is not None:
        text = str(seen).strip().splitlines()[0] if str(seen).strip() else type(seen).__name__
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EACCES):
            return text
        low = text.lower()
        if "disk is full" in low or "readonly database" in low or "read-only file system" in low:
            return text
        seen = seen.__cause__ or seen.__context__
    return None


def main(argv: Sequence[str] | None = None) -> int:
    warnings.filterwarnings("ignore", module="brevitas")
    parser = build_parser()
    args = parser.parse_args(argv)  # --help and argument errors end here, before anything heavy is imported
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # qapbo prints its own progress and trial failures
    try:
        return int(args.func(args) or 0)
    except QapboError as exc:
        print(f"qapbo {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except TrainingError as exc:
        print(f"qapbo {args.command}: training failed: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # a full disk or a read-only storage is the user's to fix, not a crash
        reason = _write_failure(exc)
        if reason is None:
            raise
        from qapbo.study.storage import redact

        print(f"qapbo {args.command}: error: cannot write results ({redact(reason)}); free disk space or make "
              "the storage and its artifact directory writable, then rerun the same command: stored trials "
              "are kept", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        hint = "; rerun the same command to resume" if args.command != "train" else ""
        print(f"qapbo {args.command}: interrupted{hint}", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
