"""Where results live: an Optuna RDB storage (SQLite by default) and an artifact store beside it.

Trials carry every metric as user attributes; model checkpoints (state dict with masks and the
model spec) go to Optuna's file-system artifact store, so any stored point can be reloaded.
A study remembers the canonical study file it was created from and refuses a changed one.
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

from qapbo.errors import StorageError, StudyFileError
from qapbo.nn.models import JetTagger, build_model
from qapbo.nn.spec import ModelSpec
from qapbo.records import ATTR_CONFIG, ATTR_FILE, ATTR_HASH, ATTR_KIND, ATTR_MIN_AUC, DEFAULT_MIN_AUC
from qapbo.study.file import StudyFile, config_hash, describe_changes


def redact(url: str) -> str:
    """The URL with any password replaced by ``***`` (safe to print and log)."""
    return re.sub(r"(://[^/:@]+:)[^@/]*@", r"\1***@", url)


def storage_url(study: StudyFile, override: str | None = None) -> str:
    return override or study.storage or f"sqlite:///runs/{study.name}.db"


def artifact_dir(study: StudyFile, url: str) -> Path:
    """Artifacts beside a SQLite file (``runs/x.db`` -> ``runs/x.artifacts``), else as configured."""
    if study.artifacts:
        return Path(study.artifacts)
    if url.startswith("sqlite:///"):
        db = Path(url[len("sqlite:///"):])
        return db.with_name(db.stem + ".artifacts")
    return Path("runs") / f"{study.name}.artifacts"


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
) -> optuna.Study:
    """Load the study named after ``study`` or create it; refuse a changed study file.

    The comparison covers the sections that define results (``sections`` plus the seed), not
    the storage URL or the description.
    """
    name = study_name or study.name
    wanted = study.section(*sections)
    try:
        existing = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        existing = None
    if existing is not None:
        attrs = existing.user_attrs
        stored = _before_min_auc(attrs.get(ATTR_CONFIG))
        if stored is None and not existing.trials:  # a creation that was interrupted: finish it
            _stamp(existing, study, kind, wanted)
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
        return existing
    try:
        created = optuna.create_study(study_name=name, storage=storage, directions=list(directions))
    except optuna.exceptions.DuplicatedStudyError:  # another worker created it a moment ago
        time.sleep(0.5)
        return open_study(storage, study, kind, sections, directions, study_name)
    _stamp(created, study, kind, wanted)
    return created


def stored_changes(existing: optuna.Study, study: StudyFile, sections: Sequence[str]) -> list[str]:
    """What differs between the settings ``existing`` was created with and ``study``'s (empty: the same).

    Readers of another part's results (refine reads the search) check with this without writing.
    """
    stored = _before_min_auc(existing.user_attrs.get(ATTR_CONFIG))
    wanted = study.section(*sections)
    return [] if stored == wanted else describe_changes(stored or {}, wanted)


def _before_min_auc(stored: dict[str, Any] | None) -> dict[str, Any] | None:
    """A config stored before qapbo had min_auc resumes under the default (its trials get it when compared)."""
    if stored is None:
        return None
    stored = json.loads(json.dumps(stored))
    for sec in ("qap", "objectives"):
        if isinstance(stored.get(sec), dict):
            stored[sec].setdefault("min_auc", DEFAULT_MIN_AUC)
    return stored


def _stamp(s: optuna.Study, study: StudyFile, kind: str, wanted: dict[str, Any]) -> None:
    s.set_user_attr(ATTR_MIN_AUC, study.min_auc)
    s.set_user_attr(ATTR_KIND, kind)
    s.set_user_attr(ATTR_FILE, study.text)
    s.set_user_attr(ATTR_HASH, config_hash(wanted))
    s.set_user_attr(ATTR_CONFIG, wanted)  # last: its presence marks a complete creation


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
