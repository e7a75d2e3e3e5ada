"""URL helpers: protocol of a URL, its canonical spelling, the GDAL path that reads it, joining, redaction.

Every location in geoproc is an fsspec URL. GDAL reads remote data through its virtual file systems
with HTTP range requests, so a header is read without downloading the file: ``az://c/p`` becomes
``/vsiaz/c/p``, ``https://...`` becomes ``/vsicurl/https://...``.
"""

from __future__ import annotations

import os
import posixpath
import re
from typing import Annotated
from urllib.parse import urlsplit, urlunsplit

from pydantic import AfterValidator

AZURE_PROTOCOLS = frozenset({"az", "abfs", "abfss"})
LOCAL_PROTOCOLS = frozenset({"file", "local"})

_ABFSS_HOST = re.compile(r"^(?P<container>[^@/]+)@(?P<account>[^.]+)\.(?:dfs|blob)\.core\.windows\.net$")


def protocol_of(url: str) -> str:
    """The fsspec protocol of ``url``: ``file`` for plain paths, ``az`` for every Azure spelling."""
    if "://" not in url:
        return "file"
    proto = url.split("://", 1)[0].lower()
    return "az" if proto in AZURE_PROTOCOLS else proto


def is_local(url: str) -> bool:
    """Whether ``url`` names a path on this machine's file system."""
    return protocol_of(url) in LOCAL_PROTOCOLS


def local_path(url: str) -> str:
    """The plain file system path of a local URL (``file:///x`` → ``/x``)."""
    return url.split("://", 1)[1] if "://" in url else url


def azure_parts(url: str) -> tuple[str | None, str, str]:
    """(account or None, container, blob path) of an Azure URL.

    ``az://container/path`` and ``abfs://container/path`` carry no account;
    ``abfss://container@account.dfs.core.windows.net/path`` does.
    """
    rest = url.split("://", 1)[1] if "://" in url else url
    head, _, path = rest.partition("/")
    m = _ABFSS_HOST.match(head)
    if m:
        return m.group("account"), m.group("container"), path
    return None, head, path


def canonical(url: str) -> str:
    """The one spelling of a location that job ids are computed from (and jobs run with).

    A relative local path names different data in different directories, and one Azure container has
    several spellings, so a job id taken from the text as typed would merge different jobs and split
    equal ones. Local paths (plain or ``file://``) become absolute and normalised, ``~`` expanded;
    ``az://`` and ``abfs://`` become ``az://container/path``; ``abfss://c@account...`` keeps its
    account (another account is other data) with the host spelled ``.dfs.core.windows.net``; every
    other URL gets a lower-case scheme and no doubled or trailing ``/`` in its path. HTTP(S) URLs keep
    their path and query as given (a signed URL is signed over them).
    """
    url = url.strip()
    if not url:
        return url
    proto = protocol_of(url)
    if proto in LOCAL_PROTOCOLS:
        return os.path.abspath(os.path.expanduser(local_path(url)))
    scheme, rest = url.split("://", 1)
    scheme = scheme.lower()
    if scheme in ("http", "https"):
        parts = urlsplit(url)
        return urlunsplit((scheme, parts.netloc.lower(), parts.path, parts.query, parts.fragment))
    path = "/".join(p for p in rest.split("/") if p)
    if proto == "az":
        account, container, blob = azure_parts(url)
        blob = "/".join(p for p in blob.split("/") if p)
        if scheme == "abfss" and account:
            return f"abfss://{container}@{account.lower()}.dfs.core.windows.net/{blob}".rstrip("/")
        return f"az://{container}/{blob}".rstrip("/")
    return f"{scheme}://{path}"


#: a location parameter: validated into its :func:`canonical` spelling, so that the job id (and the
#: run) see the same location whichever spelling or working directory the user started from
Location = Annotated[str, AfterValidator(canonical)]


def gdal_path(url: str) -> str:
    """The path GDAL opens for ``url``: ``/vsiaz/`` for Azure, ``/vsicurl/`` for HTTP, else unchanged.

    ``memory://`` URLs have no GDAL equivalent; callers copy such inputs to a local temp file first
    (see :func:`geoproc.storage.local_copy`).
    """
    proto = protocol_of(url)
    if proto == "az":
        _, container, path = azure_parts(url)
        return f"/vsiaz/{container}/{path}".rstrip("/")
    if proto in ("http", "https"):
        return f"/vsicurl/{url}"
    if proto == "s3":
        return "/vsis3/" + url.split("://", 1)[1]
    if proto in ("gs", "gcs"):
        return "/vsigs/" + url.split("://", 1)[1]
    if proto in LOCAL_PROTOCOLS:
        return local_path(url)
    return url


def gdal_readable(url: str) -> bool:
    """Whether GDAL can read ``url`` directly (local file or a GDAL virtual file system)."""
    return protocol_of(url) in ({"az", "http", "https", "s3", "gs", "gcs"} | LOCAL_PROTOCOLS)


def redact(url: str) -> str:
    """``url`` without anything that may be a secret: query string (SAS tokens) and user info."""
    if "://" not in url:
        return url
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1] if "@" in parts.netloc and parts.scheme in ("http", "https") \
        else parts.netloc
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def join(prefix: str, *parts: str) -> str:
    """``prefix`` + ``/`` + each of ``parts`` for URLs and plain paths alike (``join(u, "a", "b.tif")``)."""
    return "/".join([prefix.rstrip("/"), *(p.lstrip("/") for p in parts)])


def strip_protocol(url: str) -> str:
    """``url`` without ``proto://`` (Azure: ``container/path``)."""
    if protocol_of(url) == "az":
        _, container, path = azure_parts(url)
        return f"{container}/{path}".rstrip("/")
    return local_path(url) if "://" in url else url


def with_protocol(url_like: str, path: str) -> str:
    """Rebuild a URL of the same protocol as ``url_like`` for a protocol-less ``path``."""
    if "://" not in url_like:
        return path
    proto = url_like.split("://", 1)[0]
    if proto == "abfss":
        account, _, _ = azure_parts(url_like)
        container, _, rest = path.partition("/")
        return f"abfss://{container}@{account}.dfs.core.windows.net/{rest}"
    if proto == "file":
        return f"file://{path}"
    return f"{proto}://{path.lstrip('/')}"


def safe_relative(relative: str) -> str:
    """Normalize a relative path and refuse anything that would escape its prefix.

    Raises:
        ValueError: if ``relative`` is absolute, empty, or contains ``..`` components.
    """
    rel = relative.replace("\\", "/")
    if rel.startswith("/") or re.match(r"^[A-Za-z]:", rel):
        raise ValueError(f"path {relative!r} is absolute")
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if not parts or any(p == ".." for p in parts):
        raise ValueError(f"path {relative!r} is empty or leaves its prefix ('..')")
    return posixpath.join(*parts)
