"""Where results live: an Optuna RDB storage (SQLite by default) and an artifact store beside it.

Trials carry every metric as user attributes; model checkpoints (state dict with masks and the
model spec) go to Optuna's file-system artifact store, so any stored point can be reloaded.
A study remembers the canonical study file it was created from and refuses a changed one.

Optuna's own tools read the storage: the study file is kept once, in one study system attribute
(:data:`qapbo.records.ATTR_STUDY_FILE`), so the user attributes ``optuna studies`` prints on every
row stay short (kind, min_auc, the settings' hash), and the objectives are named
(``study.metric_names``, e.g. ``["auc", "bops"]``) for ``trials_dataframe``, the plots and
optuna-dashboard. Studies stored before, with the file in user attributes, are read and resumed as
they are.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import quote

import optuna
import torch

from qapbo.data.pythia import legacy_options
from qapbo.errors import StorageError, StudyFileError
from qapbo.nn.models import JetTagger, build_model
from qapbo.nn.spec import ModelSpec
from qapbo.records import (
    ATTR_CONFIG,
    ATTR_FILE,
    ATTR_HASH,
    ATTR_KIND,
    ATTR_MIN_AUC,
    ATTR_REPLICATE,
    ATTR_STUDY_FILE,
    DEFAULT_MIN_AUC,
)
from qapbo.study.file import StudyFile, config_hash, describe_changes


def redact(url: str) -> str:
    """The URL with any password replaced by ``***`` (safe to print and log)."""
    return re.sub(r"(://[^/:@]+:)[^@/]*@", r"\1***@", url)


def storage_url(study: StudyFile, override: str | None = None) -> str:
    """The storage a study file's results go to: every replicate's into the file's own (``runs/NAME.db``)."""
    return override or study.storage or f"sqlite:///runs/{study.base_name or study.name}.db"


def artifact_dir(study: StudyFile, url: str) -> Path:
    """Artifacts beside a SQLite file (``runs/x.db`` -> ``runs/x.artifacts``), else as configured."""
    if study.artifacts:
        return Path(study.artifacts)
    if url.startswith("sqlite:///"):
        db = Path(url[len("sqlite:///"):])
        return db.with_name(db.stem + ".artifacts")
    return Path("runs") / f"{study.base_name or study.name}.artifacts"


def open_storage(url: str, read_only: bool = False, **rdb_kwargs: Any) -> optuna.storages.RDBStorage:
    """An RDBStorage for ``url``; a clear :class:`StorageError` if it cannot be reached.

    ``read_only=True`` (compare, plot, export) never creates or changes anything: a missing or
    empty SQLite file is an error instead of a new database, the file is opened with SQLite's
    ``mode=ro`` and Optuna is told not to create tables.
    """
    if url.startswith("sqlite:///"):
        # Workers share the file: wait up to a minute for another writer's lock instead of SQLite's
        # 5 s default, so a busy moment never fails a trial with "database is locked".
        rdb_kwargs.setdefault("engine_kwargs", {"connect_args": {"timeout": 60}})
        db = Path(url[len("sqlite:///"):])
        _check_sqlite_path(db, url, read_only)
        if read_only:
            rdb_kwargs["skip_table_creation"] = True
            target = f"sqlite:///file:{quote(str(db.resolve()))}?mode=ro&uri=true"
            return _rdb(target, url, rdb_kwargs, read_only)
        if db.parent and not db.parent.exists():
            try:
                db.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StorageError(f"cannot create {db.parent} for the storage ({exc.strerror}); "
                                   "pass --storage with a writable path") from None
    elif read_only:
        rdb_kwargs["skip_table_creation"] = True
    return _rdb(url, url, rdb_kwargs, read_only)


def _check_sqlite_path(db: Path, url: str, read_only: bool) -> None:
    """Name what is wrong with a SQLite path before SQLite reports it as "unable to open"."""
    if db.is_dir():
        raise StorageError(f"storage {redact(url)}: {db} is a directory; name a database file, "
                           f"e.g. sqlite:///{db / 'results.db'}")
    for parent in db.parents:
        if parent.exists():
            if not parent.is_dir():
                raise StorageError(f"storage {redact(url)}: {parent} is a file, not a directory; "
                                   "pass --storage with a path inside a directory")
            break
    if read_only and not db.exists():
        raise StorageError(f"no storage at {redact(url)}: {db} does not exist; check --storage (this command "
                           "only reads results; `qapbo run`, `qapbo search` or `qapbo qap` write them)")
    if read_only and db.stat().st_size == 0:
        raise StorageError(f"storage {redact(url)}: {db} is an empty file, not an Optuna database; check "
                           "--storage (this command only reads results)")
    if read_only:
        with open(db, "rb") as f:
            if f.read(16) != b"SQLite format 3\x00":
                raise StorageError(f"storage {redact(url)}: {db} is not a SQLite database; check --storage")


def _rdb(target: str, url: str, rdb_kwargs: dict[str, Any], read_only: bool) -> optuna.storages.RDBStorage:
    for attempt in range(3):
        try:
            with warnings.catch_warnings():  # heartbeat arguments are "experimental" since Optuna 2.x
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(target, **rdb_kwargs)
        except ModuleNotFoundError as exc:  # the database driver
            raise StorageError(f"cannot open storage {redact(url)}: the driver {exc.name!r} is not installed; "
                               "for PostgreSQL: pip install 'qapbo[postgres]'") from None
        except Exception as exc:  # sqlalchemy OperationalError/ArgumentError ...
            if attempt < 2 and _is_creation_race(exc):  # another worker is creating the tables right now
                time.sleep(1.0 + attempt)
                continue
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if read_only and url.startswith("sqlite:///"):
                raise StorageError(f"cannot read storage {redact(url)} ({redact(first)}); is it an Optuna "
                                   "database written by qapbo or optuna?") from None
            raise StorageError(f"cannot open storage {redact(url)} ({redact(first)}); check the URL, "
                               "that the server is running and reachable, and the credentials") from None
    raise AssertionError("unreachable")


def _is_creation_race(exc: Exception) -> bool:
    text = str(exc).lower()
    return "already exists" in text or "duplicate" in text or "unique" in text


def open_study(
    storage: optuna.storages.BaseStorage,
    study: StudyFile,
    kind: str,
    sections: Sequence[str],
    directions: Sequence[str],
    study_name: str | None = None,
    metric_names: Sequence[str] | None = None,
) -> optuna.Study:
    """Load the study named after ``study`` or create it; refuse a changed study file.

    The comparison covers the sections that define results (``sections`` plus the seed), not
    the storage URL or the description. ``metric_names`` (one per direction, e.g. ``("auc", "bops")``)
    name the objectives, on creation and on a study stored before qapbo named them.
    """
    name = study_name or study.name
    wanted = study.section(*sections)
    try:
        existing = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        existing = None
    if existing is not None:
        attrs = existing.user_attrs
        stored = _as_today(stored_config(existing))
        if stored is None and not existing.trials:  # a creation that was interrupted: finish it
            _stamp(existing, study, kind, wanted, metric_names)
            return existing
        if attrs.get(ATTR_KIND) != kind:
            raise StudyFileError(f"study {name!r} in this storage is a {attrs.get(ATTR_KIND, 'foreign')} study, "
                                 f"not a {kind} study; choose another name")
        changes = stored_changes(existing, study, sections)
        if changes:
            raise StudyFileError(
                f"study file {study.path} changed since study {name!r} started: " + "; ".join(changes)
                + ". Restore the original settings to resume, or give the study a new name"
            )
        if attrs.get(ATTR_MIN_AUC) != study.min_auc:  # a study from before min_auc existed
            existing.set_user_attr(ATTR_MIN_AUC, study.min_auc)
        if metric_names is not None:
            name_metrics(existing, metric_names)
        return existing
    try:
        created = optuna.create_study(study_name=name, storage=storage, directions=list(directions))
    except optuna.exceptions.DuplicatedStudyError:  # another worker created it a moment ago
        time.sleep(0.5)
        return open_study(storage, study, kind, sections, directions, study_name, metric_names)
    _stamp(created, study, kind, wanted, metric_names)
    return created


def stored_changes(existing: optuna.Study, study: StudyFile, sections: Sequence[str]) -> list[str]:
    """What differs between the settings ``existing`` was created with and ``study``'s (empty: the same).

    Readers of another part's results (refine reads the search) check with this without writing.
    """
    raw = stored_config(existing)
    stored = _as_today(raw)
    wanted = study.section(*sections)
    if stored == wanted:
        return []
    changes = describe_changes(stored or {}, wanted)
    unnamed = [k for k in legacy_options() if k not in ((raw or {}).get("data") or {})
               and (stored or {}).get("data", {}).get(k) != wanted.get("data", {}).get(k)]
    if unnamed and "data" in (stored or {}) and "data" in wanted:
        changes.append("pythia-jets' defaults changed since this study was stored; to resume it on its own "
                       "jets write " + ", ".join(f"{k} = {json.dumps(stored['data'][k])}" for k in unnamed)
                       + " in [data]")
    return changes


def _study_system_attrs(s: optuna.Study) -> dict[str, Any]:
    # Optuna 5 has no public reader of a study's system attributes; its own metric_names reads them so
    return s._storage.get_study_system_attrs(s._study_id)


def stored_config(s: optuna.Study) -> dict[str, Any] | None:
    """The canonical settings ``s`` was created with (None if its creation never finished).

    Read from :data:`~qapbo.records.ATTR_STUDY_FILE`, or from the user attribute of a study stored before it.
    """
    stored = _study_system_attrs(s).get(ATTR_STUDY_FILE)
    if stored is not None:
        return stored["config"]
    return s.user_attrs.get(ATTR_CONFIG)


def stored_study_text(s: optuna.Study) -> str | None:
    """The text of the study file ``s`` was created from, wherever it is stored (None if unknown)."""
    stored = _study_system_attrs(s).get(ATTR_STUDY_FILE)
    if stored is not None:
        return stored["text"]
    return s.user_attrs.get(ATTR_FILE)


def name_metrics(s: optuna.Study, names: Sequence[str]) -> None:
    """Name the objectives of ``s`` (Optuna's ``metric_names``) unless they are named already.

    Workers that race here write the same value; Optuna's storage ignores the loser's duplicate row.
    """
    if s.metric_names is None:
        with warnings.catch_warnings():  # set_metric_names is "experimental" since Optuna 3.2
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            s.set_metric_names(list(names))


def _as_today(stored: dict[str, Any] | None) -> dict[str, Any] | None:
    """A config as today's code writes it. Stored before qapbo had min_auc, it resumes under the
    default (its trials get it when compared); pythia-jets options it leaves out were made with their
    earlier defaults, which today's canonical form spells out (:func:`qapbo.data.pythia.effective_options`)."""
    if stored is None:
        return None
    stored = json.loads(json.dumps(stored))
    for sec in ("qap", "objectives"):
        if isinstance(stored.get(sec), dict):
            stored[sec].setdefault("min_auc", DEFAULT_MIN_AUC)
    data = stored.get("data")
    if isinstance(data, dict) and data.get("source") == "pythia-jets":
        stored["data"] = {**legacy_options(), **data}
    return stored


def _stamp(s: optuna.Study, study: StudyFile, kind: str, wanted: dict[str, Any],
           metric_names: Sequence[str] | None) -> None:
    s.set_user_attr(ATTR_MIN_AUC, study.min_auc)
    s.set_user_attr(ATTR_KIND, kind)
    s.set_user_attr(ATTR_HASH, config_hash(wanted))
    if study.replicates > 1 or study.replicate:  # which replicate of which file: what compare groups by
        s.set_user_attr(ATTR_REPLICATE, {"of": study.base_name or study.name, "index": study.replicate})
    if metric_names is not None:
        name_metrics(s, metric_names)
    # last: its presence marks a complete creation
    s._storage.set_study_system_attr(s._study_id, ATTR_STUDY_FILE, {"text": study.text, "config": wanted})


def artifact_store(path: Path, create: bool = True) -> optuna.artifacts.FileSystemArtifactStore:
    """The artifact store in ``path``; readers pass ``create=False`` so they never make the directory."""
    if not create and not path.is_dir():
        raise StorageError(f"no artifact directory at {path}: the checkpoints of this storage are missing; "
                           "copy the .artifacts directory that was written beside the database")
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return optuna.artifacts.FileSystemArtifactStore(str(path))


def save_checkpoint(
    store: optuna.artifacts.FileSystemArtifactStore,
    study_or_trial: optuna.Study | optuna.Trial,
    model: JetTagger,
    meta: dict[str, Any],
) -> str:
    """Upload the model (spec, state dict with masks, ``meta``) as an artifact; returns its id."""
    payload = {"spec": model.spec.to_dict(), "state_dict": model.state_dict(), "meta": json.dumps(meta)}
    fd, tmp = tempfile.mkstemp(suffix=".pt", prefix="qapbo-ckpt-")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        return optuna.artifacts.upload_artifact(artifact_store=store, file_path=tmp,
                                                study_or_trial=study_or_trial,
                                                mimetype="application/x-pytorch")
    finally:
        os.unlink(tmp)


def load_checkpoint(store: optuna.artifacts.FileSystemArtifactStore, artifact_id: str) -> tuple[JetTagger, dict]:
    """Rebuild the stored model (masks included) and return it with its metadata."""
    fd, tmp = tempfile.mkstemp(suffix=".pt", prefix="qapbo-ckpt-")
    os.close(fd)
    os.unlink(tmp)  # download_artifact refuses to overwrite
    try:
        optuna.artifacts.download_artifact(artifact_store=store, file_path=tmp, artifact_id=artifact_id)
        payload = torch.load(tmp, weights_only=True)
    except Exception as exc:
        raise StorageError(f"cannot load checkpoint {artifact_id} ({type(exc).__name__}: {exc}); "
                           "is the artifact directory beside the database complete?") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    model = build_model(ModelSpec.from_dict(payload["spec"]))
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return model, json.loads(payload["meta"])
