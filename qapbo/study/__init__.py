"""Running studies: study files and search spaces, storage, the search (with early stopping), QAP, refine, the HGQ2 contender, the learned-precision chain, workers and the pipeline.

Public names load their module on first use, so importing the package is free.
"""

from qapbo._lazy import lazy_names

_NAMES = {
    "StudyFile": "qapbo.study.file",
    "load_study_file": "qapbo.study.file",
    "parse_study": "qapbo.study.file",
    "open_storage": "qapbo.study.storage",
    "storage_url": "qapbo.study.storage",
    "artifact_dir": "qapbo.study.storage",
    "artifact_store": "qapbo.study.storage",
    "load_checkpoint": "qapbo.study.storage",
    "run_search": "qapbo.study.search",
    "run_qap": "qapbo.study.qap",
    "run_refine": "qapbo.study.refine",
    "run_hgq": "qapbo.study.hgq",
    "run_learned": "qapbo.study.learned",
    "run_workers": "qapbo.study.workers",
    "run_chain_workers": "qapbo.study.workers",
    "run_pipeline": "qapbo.study.pipeline",
    "run_section": "qapbo.study.pipeline",
    "PipelineResult": "qapbo.study.pipeline",
    "SECTIONS": "qapbo.study.pipeline",
}
__all__ = [*_NAMES]
__getattr__, __dir__ = lazy_names(__name__, _NAMES)
