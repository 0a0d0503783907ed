"""qapbo: quantization-aware pruning versus multi-objective Bayesian optimization for jet taggers.

Run a study file and compare its studies (:func:`load_study_file`, :func:`run_pipeline`, or one
section with :func:`run_section`; :func:`compare_stored` and :func:`plot_all` for stored results),
take a trial to hardware (:func:`export_trial`), or train one network (:func:`load_data`,
:class:`ModelSpec`, :class:`TrainConfig`, :func:`train_and_measure`). The subpackages (data, nn,
cost, train, study, compare, export) hold the rest. Names load on first use: ``import qapbo`` is
cheap and the command line starts at once.
"""

from qapbo._lazy import lazy_names
from qapbo._version import __version__

_NAMES = {
    "StudyFile": "qapbo.study.file",
    "load_study_file": "qapbo.study.file",
    "parse_study": "qapbo.study.file",
    "run_pipeline": "qapbo.study.pipeline",
    "run_section": "qapbo.study.pipeline",
    "PipelineResult": "qapbo.study.pipeline",
    "run_search": "qapbo.study.search",
    "run_qap": "qapbo.study.qap",
    "run_refine": "qapbo.study.refine",
    "run_hgq": "qapbo.study.hgq",
    "load_results": "qapbo.compare.results",
    "StudyResult": "qapbo.compare.results",
    "compare_stored": "qapbo.compare.report",
    "Comparison": "qapbo.compare.report",
    "plot_all": "qapbo.compare.figures",
    "export_trial": "qapbo.export.qonnx",
    "FEATURES": "qapbo.data.config",
    "CLASSES": "qapbo.data.config",
    "DataConfig": "qapbo.data.config",
    "JetData": "qapbo.data.split",
    "load_data": "qapbo.data.split",
    "ModelSpec": "qapbo.nn.spec",
    "JetTagger": "qapbo.nn.models",
    "build_model": "qapbo.nn.models",
    "classification_metrics": "qapbo.nn.metrics",
    "evaluate": "qapbo.nn.metrics",
    "sparsity": "qapbo.nn.metrics",
    "TrainConfig": "qapbo.train.config",
    "EpochLog": "qapbo.train.loop",
    "TrainResult": "qapbo.train.loop",
    "Measurement": "qapbo.train.measure",
    "train_and_measure": "qapbo.train.measure",
    "BOPS_DEFINITION": "qapbo.cost.definitions",
    "FLOPS_DEFINITION": "qapbo.cost.definitions",
    "training_flops": "qapbo.cost.flops",
    "BopsReport": "qapbo.cost.bops",
    "linear_bops": "qapbo.cost.bops",
    "model_bops": "qapbo.cost.bops",
    "measure_costs": "qapbo.cost.measure",
    "QapboError": "qapbo.errors",
    "DataError": "qapbo.errors",
    "SpecError": "qapbo.errors",
    "TrainingError": "qapbo.errors",
    "StudyFileError": "qapbo.errors",
    "StorageError": "qapbo.errors",
    "ExportError": "qapbo.errors",
}
__all__ = [*_NAMES, "__version__"]
__getattr__, __dir__ = lazy_names(__name__, _NAMES)
