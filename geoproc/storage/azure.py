"""Azure Blob credentials: one chain that feeds both adlfs (listing, upload) and GDAL (``/vsiaz/`` reads).

The chain is resolved once, on the driver, from the environment (:func:`resolve_azure`), and the
resulting options travel to the workers with each task (``TaskContext.storage_options["az"]``): worker
processes never need Azure variables. In order of precedence:

==================  =====================================================================  =================
kind                environment                                                            options
==================  =====================================================================  =================
connection string   ``AZURE_STORAGE_CONNECTION_STRING`` (``UseDevelopmentStorage=true``    ``connection_string``
                    is expanded, GDAL does not understand it)
account + key       ``AZURE_STORAGE_ACCOUNT[_NAME]`` + ``AZURE_STORAGE_[ACCOUNT_]KEY``      ``account_name``, ``account_key``
SAS token           ``AZURE_STORAGE_ACCOUNT[_NAME]`` + ``AZURE_STORAGE_SAS_TOKEN``           ``account_name``, ``sas_token``
Azure AD            ``AZURE_STORAGE_ACCOUNT[_NAME]`` + managed / workload identity or a     ``account_name``, ``token``,
                    service principal (azure-identity ``DefaultAzureCredential``), or       ``expires_on``
                    ``GEOPROC_AZURE_AUTH=identity``
anonymous           ``AZURE_STORAGE_ACCOUNT[_NAME]`` only (public containers)               ``account_name``, ``anon``
==================  =====================================================================  =================

``AZURE_STORAGE_BLOB_ENDPOINT`` (e.g. ``http://127.0.0.1:10000/devstoreaccount1``) overrides the
endpoint for the key, SAS and token kinds. Azure AD hands GDAL an access token
(``AZURE_STORAGE_ACCESS_TOKEN``); a worker refreshes a token that is about to expire with its own
identity when it has one.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any

from ..errors import StorageNotConfigured

DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
DEV_CONNECTION_STRING = (f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
                         f"BlobEndpoint=http://127.0.0.1:10000/{DEV_ACCOUNT};")
STORAGE_SCOPE = "https://storage.azure.com/.default"
_IDENTITY_HINTS = ("AZURE_FEDERATED_TOKEN_FILE", "IDENTITY_ENDPOINT", "MSI_ENDPOINT", "AZURE_CLIENT_SECRET",
                   "AZURE_CLIENT_CERTIFICATE_PATH")
# Option keys that are secrets: never logged, never in results.
SECRET_KEYS = frozenset({"connection_string", "account_key", "sas_token", "token"})


def parse_connection_string(cs: str) -> dict[str, str]:
    """``Key=Value;...`` pairs of a connection string (values may contain ``=``)."""
    out = {}
    for part in cs.split(";"):
        if "=" in part:
            k, v = part.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def expand_connection_string(cs: str) -> str:
    """Replace ``UseDevelopmentStorage=true`` by the explicit Azurite string with a ``BlobEndpoint``."""
    parts = parse_connection_string(cs)
    if parts.get("UseDevelopmentStorage", "").lower() == "true":
        proxy = parts.get("DevelopmentStorageProxyUri")
        if proxy:
            return DEV_CONNECTION_STRING.replace("http://127.0.0.1:10000", proxy.rstrip("/"))
        return DEV_CONNECTION_STRING
    return cs


def resolve_azure(env: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    """The Azure options found in ``env`` (default: ``os.environ``), or None when there are none.

    Raises:
        StorageNotConfigured: when Azure AD was asked for but no identity could give a token.
    """
    env = os.environ if env is None else env
    auth = env.get("GEOPROC_AZURE_AUTH", "auto").lower()
    cs = env.get("AZURE_STORAGE_CONNECTION_STRING")
    if cs and auth in ("auto", "connection_string"):
        return {"connection_string": expand_connection_string(cs)}
    account = env.get("AZURE_STORAGE_ACCOUNT_NAME") or env.get("AZURE_STORAGE_ACCOUNT")
    if not account:
        return None
    opts: dict[str, Any] = {"account_name": account}
    endpoint = env.get("AZURE_STORAGE_BLOB_ENDPOINT")
    if endpoint:
        opts["blob_endpoint"] = endpoint.rstrip("/")
    key = env.get("AZURE_STORAGE_ACCOUNT_KEY") or env.get("AZURE_STORAGE_KEY") or env.get("AZURE_STORAGE_ACCESS_KEY")
    sas = env.get("AZURE_STORAGE_SAS_TOKEN")
    if key and auth in ("auto", "key"):
        return {**opts, "account_key": key}
    if sas and auth in ("auto", "sas"):
        return {**opts, "sas_token": sas.lstrip("?")}
    if auth == "identity" or (auth == "auto" and any(env.get(k) for k in _IDENTITY_HINTS)):
        token, expires_on = identity_token()
        return {**opts, "token": token, "expires_on": expires_on}
    if auth in ("auto", "anonymous"):
        return {**opts, "anon": True}
    raise StorageNotConfigured(
        f"GEOPROC_AZURE_AUTH={auth!r} but the matching credential is not set; choose one of "
        "auto, connection_string, key, sas, identity, anonymous and set its variables.")


def identity_token() -> tuple[str, int]:
    """An Azure AD access token for Blob Storage from ``DefaultAzureCredential`` (token, expires_on)."""
    try:
        from azure.identity import DefaultAzureCredential
    except ImportError:  # pragma: no cover - azure-identity is a dependency
        raise StorageNotConfigured("Azure AD authentication needs azure-identity: pip install azure-identity") from None
    try:
        cred = DefaultAzureCredential(exclude_interactive_browser_credential=True)
        tok = cred.get_token(STORAGE_SCOPE)
    except Exception as exc:  # noqa: BLE001 - azure-identity raises several unrelated types
        raise StorageNotConfigured(
            f"Azure AD authentication failed ({type(exc).__name__}); configure a managed or workload "
            "identity, or set AZURE_STORAGE_CONNECTION_STRING / an account key / a SAS token.") from None
    return tok.token, int(tok.expires_on)


def fresh(opts: dict[str, Any], margin: float = 300.0) -> dict[str, Any]:
    """``opts`` with an access token that is valid for at least ``margin`` more seconds.

    A worker that has its own identity (pods with workload identity) refreshes an expiring token;
    otherwise the shipped token is used as is and an expired one shows up as a 403.
    """
    if "token" not in opts or opts.get("expires_on", 0) - time.time() > margin:
        return opts
    try:
        token, expires_on = identity_token()
    except StorageNotConfigured:
        return opts
    return {**opts, "token": token, "expires_on": expires_on}


def endpoint_of(opts: Mapping[str, Any]) -> str:
    """The blob endpoint URL (``https://acct.blob.core.windows.net`` unless overridden)."""
    if "connection_string" in opts:
        parts = parse_connection_string(opts["connection_string"])
        if parts.get("BlobEndpoint"):
            return parts["BlobEndpoint"].rstrip("/")
        proto = parts.get("DefaultEndpointsProtocol", "https")
        suffix = parts.get("EndpointSuffix", "core.windows.net")
        return f"{proto}://{parts.get('AccountName')}.blob.{suffix}"
    return opts.get("blob_endpoint") or f"https://{opts['account_name']}.blob.core.windows.net"


def gdal_options(opts: Mapping[str, Any]) -> dict[str, str]:
    """GDAL configuration options that let ``/vsiaz/`` use these credentials."""
    if "connection_string" in opts:
        return {"AZURE_STORAGE_CONNECTION_STRING": opts["connection_string"]}
    out = {"AZURE_STORAGE_ACCOUNT": opts["account_name"]}
    if opts.get("blob_endpoint"):
        out["CPL_AZURE_ENDPOINT"] = opts["blob_endpoint"]
        out["CPL_AZURE_USE_HTTPS"] = "NO" if opts["blob_endpoint"].startswith("http://") else "YES"
    if "account_key" in opts:
        out["AZURE_STORAGE_ACCESS_KEY"] = opts["account_key"]
    elif "sas_token" in opts:
        out["AZURE_STORAGE_SAS_TOKEN"] = opts["sas_token"]
    elif "token" in opts:
        out["AZURE_STORAGE_ACCESS_TOKEN"] = opts["token"]
    else:
        out["AZURE_NO_SIGN_REQUEST"] = "YES"
    return out


class _AsyncStaticToken:
    """An async token credential that hands out one access token obtained on the driver."""

    def __init__(self, token: str, expires_on: int):
        from azure.core.credentials import AccessToken

        self._tok = AccessToken(token, int(expires_on))

    async def get_token(self, *scopes: str, **kwargs: Any):
        return self._tok

    async def close(self) -> None:
        return None

    async def __aenter__(self):
        return self

    async def __aexit__(self, *args: Any) -> None:
        return None


def _client(opts: Mapping[str, Any]):
    """An async BlobServiceClient for ``opts`` with a short retry policy.

    The Azure SDK's default policy waits 15 s, 18 s, 24 s... and retries refused connections several
    times, so an unreachable account would hang a task for minutes. geoproc retries whole tasks with
    its own backoff; the SDK only retries throttling and server errors, not refused connections.
    """
    from azure.storage.blob.aio import BlobServiceClient, ExponentialRetry

    kw: dict[str, Any] = {"retry_policy": ExponentialRetry(initial_backoff=1, increment_base=2, retry_total=3,
                                                           random_jitter_range=1, retry_connect=0),
                          "connection_timeout": 10, "read_timeout": 120}
    if "connection_string" in opts:
        return BlobServiceClient.from_connection_string(opts["connection_string"], **kw)
    url = endpoint_of(opts)
    if "account_key" in opts:
        return BlobServiceClient(account_url=url, credential={"account_name": opts["account_name"],
                                                              "account_key": opts["account_key"]}, **kw)
    if "sas_token" in opts:
        return BlobServiceClient(account_url=f"{url}?{opts['sas_token']}", **kw)
    if "token" in opts:
        cred = _AsyncStaticToken(opts["token"], opts.get("expires_on") or int(time.time()) + 3600)
        return BlobServiceClient(account_url=url, credential=cred, **kw)
    return BlobServiceClient(account_url=url, **kw)


def _fs_class():
    from adlfs import AzureBlobFileSystem

    class GeoprocAzureBlobFileSystem(AzureBlobFileSystem):
        """adlfs, connected from geoproc's resolved options only (never from this process's env)."""

        def do_connect(self) -> None:
            self.service_client = _client(self.kwargs["geoproc_options"])

    return GeoprocAzureBlobFileSystem


_FS_CLASS = None


def filesystem(opts: Mapping[str, Any]):
    """An adlfs filesystem for these options (cached per process and options, like fsspec's own)."""
    global _FS_CLASS
    if _FS_CLASS is None:
        _FS_CLASS = _fs_class()
    opts = dict(opts)
    # anon=True stops adlfs from building a DefaultAzureCredential of its own; the client is ours.
    return _FS_CLASS(account_name=opts.get("account_name") or "geoproc", anon=True, geoproc_options=opts,
                     skip_instance_cache="token" in opts)
