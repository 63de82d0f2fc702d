"""Where the chunk files between steps live: this machine's data folder, or object storage.

``CHUNK_STORE`` names the store. Empty (the default): the chunks stay in
``<DATAPROC_DATA_DIR>/runs/<run_id>/<step>`` on the machine that wrote them, as before. An
``s3://bucket/prefix`` URL: S3-compatible object storage (AWS S3, MinIO, GCS in interoperability
mode) that every worker reaches, so that a step may run on another machine than the step that
wrote its input. A step still writes its chunks into its local folder first; the finished files
are then uploaded to ``<prefix>/<run_id>/<step>/`` and the local folder removed. A step that
reads them downloads them into the same folder of its own data folder when they are not there.

The client is boto3 (``pip install dataproc-dagster[s3]``), with ``CHUNK_STORE_ENDPOINT_URL``,
``CHUNK_STORE_REGION`` and the ``CHUNK_STORE_ACCESS_KEY_ID`` / ``CHUNK_STORE_SECRET_ACCESS_KEY``
pair (else boto3's usual chain: ``AWS_*`` variables, ``~/.aws``, an instance role). The secret
key is registered for masking; no URL or message here holds it.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterable, Sequence
from contextlib import suppress
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dataproc_dagster.core.errors import ConfigError, SourceError
from dataproc_dagster.core.redaction import register_secret
from dataproc_dagster.core.settings import FrameworkSettings, get_settings

SCHEME = "s3://"
# Step outputs (pickled chunk handles) when the store is on S3; not a run's folder.
IO_FOLDER = "_io"


def store_root(settings: FrameworkSettings | None = None) -> str:
    """The configured store URL (``s3://bucket/prefix``), or ``""`` for the local folder."""
    return (settings or get_settings()).chunk_store


def split_url(url: str) -> tuple[str, str]:
    """``s3://bucket/a/b`` -> (``bucket``, ``a/b``)."""
    parts = urlsplit(url)
    return parts.netloc, parts.path.strip("/")


def _join(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p.strip("/"))


@lru_cache(maxsize=4)
def _client(endpoint: str, region: str, key_id: str, secret: str) -> Any:
    try:
        import boto3
        from botocore.config import Config
    except ImportError:  # pragma: no cover - the s3 extra is missing
        raise ConfigError(
            "CHUNK_STORE is an s3:// URL but boto3 is not installed",
            source="CHUNK_STORE",
            fix="pip install 'dataproc-dagster[s3]' on every worker, or unset CHUNK_STORE",
        ) from None
    register_secret(secret or None)
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint or None,
        region_name=region or None,
        aws_access_key_id=key_id or None,
        aws_secret_access_key=secret or None,
        config=Config(retries={"max_attempts": 5, "mode": "standard"}),
    )


def s3_client(settings: FrameworkSettings | None = None) -> Any:
    """The boto3 S3 client of the store settings (one per process and settings)."""
    s = settings or get_settings()
    return _client(
        s.chunk_store_endpoint_url,
        s.chunk_store_region,
        s.chunk_store_access_key_id,
        s.chunk_store_secret_access_key.get_secret_value(),
    )


def upload_folder(directory: Path, files: Sequence[str]) -> str:
    """Copy a step's chunk files to the store and remove the local folder.

    ``directory`` is ``<runs_dir>/<run_id>/<step>``; the files go to
    ``<CHUNK_STORE>/<run_id>/<step>/``.

    Returns:
        The store URL of the folder, or ``""`` when the store is the local folder (nothing done).
    """
    root = store_root()
    if not root:
        return ""
    relative = _relative_folder(directory)
    url = f"{root}/{relative}"
    bucket, prefix = split_url(url)
    client = s3_client()
    for name in files:
        client.upload_file(str(directory / name), bucket, _join(prefix, name))
    shutil.rmtree(directory, ignore_errors=True)
    with suppress(OSError):  # the run's folder, once its last step folder is gone
        directory.parent.rmdir()
    return url


def local_folder(url: str) -> Path:
    """This machine's folder for the chunks stored at ``url`` (``<runs_dir>/<run_id>/<step>``)."""
    run_id, step = url.rstrip("/").split("/")[-2:]
    return get_settings().runs_dir / run_id / step


def fetch_folder(url: str, directory: Path, files: Sequence[str]) -> Path:
    """The local folder holding the chunk files stored at ``url``, downloaded when missing.

    The folder where they were written (``directory``) is used when it still holds them (same
    machine, before upload or cleanup); else they are downloaded into :func:`local_folder`.

    Raises:
        SourceError: When a file is in neither place (its run was cleaned up or pruned).
    """
    if all((directory / name).is_file() for name in files):
        return directory
    folder = local_folder(url)
    missing = [name for name in files if not (folder / name).is_file()]
    if not missing:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    bucket, prefix = split_url(url)
    client = s3_client()
    for name in missing:
        part = folder / f"{name}.download"
        try:
            client.download_file(bucket, _join(prefix, name), str(part))
        except Exception as exc:
            part.unlink(missing_ok=True)
            if _is_not_found(exc):
                raise SourceError(
                    f"chunk file {name} is gone from the chunk store ({url})",
                    source=url,
                    fix="the chunks of a run are removed once it has loaded them (and after 7 "
                    "days for failed runs); run the whole job again instead of re-executing "
                    "this step",
                ) from None
            raise SourceError(
                f"cannot read chunk file {name} from the chunk store ({url}): "
                f"{type(exc).__name__}: {exc}",
                source=url,
                fix="check CHUNK_STORE_ENDPOINT_URL and the store's credentials on this worker",
            ) from exc
        part.rename(folder / name)
    return folder


def drop_local_copy(url: str) -> None:
    """Remove this machine's downloaded copy of the chunks stored at ``url``."""
    if url:
        folder = local_folder(url)
        shutil.rmtree(folder, ignore_errors=True)
        with suppress(OSError):  # the run's folder, once its last step folder is gone
            folder.parent.rmdir()


def remove_runs(run_ids: Iterable[str], url: str = "") -> list[str]:
    """Remove the stored chunks of ``run_ids`` (and of the run that wrote ``url``).

    Returns:
        The run ids whose stored chunks were removed; nothing when the store is local.
    """
    root = store_root()
    if not root:
        return []
    ids = set(run_ids)
    if url.startswith(root + "/"):
        ids.add(url[len(root) + 1 :].split("/")[0])
    bucket, prefix = split_url(root)
    client = s3_client()
    for run_id in ids:
        runs_dir = get_settings().runs_dir
        shutil.rmtree(runs_dir / run_id, ignore_errors=True)
        _delete_prefix(client, bucket, _join(prefix, run_id) + "/")
        _delete_prefix(client, bucket, _join(prefix, IO_FOLDER, "storage", run_id) + "/")
    return sorted(ids)


def prune_runs(max_age_days: float) -> list[str]:
    """Remove stored runs whose newest chunk file is older than ``max_age_days``."""
    root = store_root()
    if not root:
        return []
    bucket, prefix = split_url(root)
    client = s3_client()
    cutoff = time.time() - max_age_days * 86_400
    newest: dict[str, float] = {}
    base = _join(prefix) + "/" if prefix else ""
    outputs = f"{base}{IO_FOLDER}/storage/"
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=base):
        for item in page.get("Contents", []):
            key = item["Key"]
            # A run's chunks (<run_id>/...) and its step outputs (_io/storage/<run_id>/...).
            rest = key[len(outputs) :] if key.startswith(outputs) else key[len(base) :]
            run_id = rest.split("/")[0]
            if run_id == IO_FOLDER:  # asset outputs: the latest of each asset, kept
                continue
            stamp = item["LastModified"].timestamp()
            newest[run_id] = max(newest.get(run_id, 0.0), stamp)
    old = sorted(run_id for run_id, stamp in newest.items() if stamp < cutoff)
    for run_id in old:
        _delete_prefix(client, bucket, base + run_id + "/")
        _delete_prefix(client, bucket, outputs + run_id + "/")
    return old


def stored_files(url: str | None = None) -> list[str]:
    """Keys of every stored chunk file under ``url`` (default: the whole store)."""
    target = url or store_root()
    if not target:
        return []
    bucket, prefix = split_url(target)
    client = s3_client()
    keys: list[str] = []
    base = prefix + "/" if prefix else ""
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=base):
        keys.extend(item["Key"] for item in page.get("Contents", []))
    return keys


def _delete_prefix(client: Any, bucket: str, prefix: str) -> None:
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})


def _relative_folder(directory: Path) -> str:
    runs = get_settings().runs_dir.resolve()
    try:
        return directory.resolve().relative_to(runs).as_posix()
    except ValueError:
        # A folder outside the runs folder (tests, custom code): keyed by its last two parts.
        return "/".join(directory.resolve().parts[-2:])


def _is_not_found(exc: Exception) -> bool:
    response = getattr(exc, "response", None)
    code = str((response or {}).get("Error", {}).get("Code", ""))
    return code in ("404", "NoSuchKey", "NotFound")
